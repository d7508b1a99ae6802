"""Every clusterer behind the scikit-learn estimator API, in one registry.

``ESTIMATORS[name]`` is an :class:`EstimatorSpec`: the estimator class, whether it needs
k, whether its memory grows as n_samples**2, the defaults :func:`make` passes and a small
hyper-parameter grid that :func:`select_params` searches with an internal criterion
(never the labels).

Every estimator has ``fit``, ``fit_predict``, ``labels_`` (int ndarray of shape
(n_samples,); ``-1`` marks noise for ``dbscan`` and ``hdbscan``), ``get_params`` /
``set_params`` and works with ``sklearn.base.clone``; float32 input is accepted. The
stochastic ones (``spec.seeded``) take the pipeline's one seed as ``random_state``; the
others are deterministic and have no such parameter (``make`` passes it only where used).

Registry (name: class; needs k; memory ~ n**2; grid searched by ``select_params``):

- ``kmeans``: sklearn KMeans (n_init 10); k; linear; ``init``
- ``minibatch_kmeans``: sklearn MiniBatchKMeans; k; linear; ``batch_size`` (large collections)
- ``fcm``: :class:`FuzzyCMeans` (scikit-fuzzy); k; linear; ``m`` (``auto``: :func:`fuzzifier_for`, 1.5, 2)
- ``gmm``: :class:`GaussianMixtureClustering`; k; linear; ``covariance_type``
- ``agglomerative``: sklearn AgglomerativeClustering; k; quadratic; ``linkage``
- ``spectral``: sklearn SpectralClustering (nearest-neighbour graph); k; quadratic; ``n_neighbors``
- ``birch``: :class:`BirchClustering` (scale-free threshold); k; linear; ``threshold`` (large collections)
- ``dbscan``: :class:`KneeDBSCAN` (eps from the k-distance knee); no k; linear; ``min_samples``
- ``hdbscan``: :class:`HDBSCANClustering`; no k; linear memory, time ~n**2 or worse in many
  dimensions; ``min_cluster_size``
- ``affinity_propagation``: sklearn AffinityPropagation; no k; quadratic; ``damping``

Selection (:func:`select_params`)
    Every grid point is fitted on all samples and scored by the criterion; points whose
    partition is degenerate (:func:`audioclust.metrics.degenerate`: fewer than two
    clusters, fewer than asked for, a tiny split-off cluster, one cluster per sample; for
    Fuzzy C-Means also memberships all about 1/c: :func:`uniform_memberships`) or
    whose criterion is NaN rank last. The internal scores use every sample except the
    silhouette (a seeded sample of ``sample_size``).

Stability criterion (:func:`stability_gain`)
    ``stability = S(X) - S(G)``: S is :func:`audioclust.metrics.stability` (mean ARI
    between the partition of the data and the partitions of ``n_resamples`` seeded
    half-samples, each clustered anew with the same algorithm, parameters and k), G is
    :func:`audioclust.metrics.gaussian_reference` (one Gaussian with the data's mean and
    covariance). Both are computed on a seeded sample of at most ``max_samples`` rows (the
    data's partition is then re-fitted on that sample). Being an ARI, it is comparable
    across views and algorithms; subtracting the reference removes the stability that
    elongation alone gives (K-Means cuts a cigar-shaped cloud the same way every time).
    About 0: no more reproducible than on structure-less data; 1: perfectly reproducible
    groups where the reference has none. A density clusterer (DBSCAN, HDBSCAN) that finds
    fewer than two clusters in the reference gets as S(G) the stability of K-Means on G
    with as many clusters as it found in the data: what the shape alone gives a partition
    into that many groups (two groups are easier to reproduce than seven). Cost: 1 + 2 x
    ``n_resamples`` extra fits on at most ``max_samples`` rows per grid point.
"""

from __future__ import annotations

import itertools
import logging
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import skfuzzy
from scipy.spatial.distance import cdist
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import (DBSCAN, HDBSCAN, AffinityPropagation, AgglomerativeClustering, Birch,
                             KMeans, MiniBatchKMeans, SpectralClustering, kmeans_plusplus)
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .config import ClusterConfig
from .errors import AudioclustError, ConfigError
from .kselect import knee
from .metrics import (CRITERIA, HIGHER_IS_BETTER, NOISE, degenerate, gaussian_reference, internal_scores,
                      partition_coefficient, partition_entropy, stability)

log = logging.getLogger(__name__)

_FLOATS = [np.float64, np.float32]


# --------------------------------------------------------------------------- estimators

def fuzzifier_for(n_samples: int, n_features: int) -> float:
    """The fuzzifier m that Schwämmle & Jensen (Bioinformatics 26, 2010) fitted to the data's size.

    ``m = 1 + (1418 / N + 22.05) d**-2 + (12.33 / N + 0.243) d**(-0.0406 ln N - 0.1134)``:
    the smallest m at which Fuzzy C-Means finds no clusters in random data of N samples
    and d dimensions (a smaller m partitions noise too). In many dimensions, distances to
    every centre become alike and the textbook m = 2 gives every sample the membership
    1/c to every cluster even where there are groups
    (FSDD speakers, whitened mel statistics of 76 dimensions: NMI 0.09 at m = 1.5, 0.85
    at this m = 1.04). Capped at the textbook 2: in a few dimensions (d < ~6) the fit
    climbs far above it, where FCM's memberships carry little.
    """
    n, d = float(max(n_samples, 2)), float(max(n_features, 1))
    m = 1 + (1418 / n + 22.05) * d ** -2 + (12.33 / n + 0.243) * d ** (-0.0406 * np.log(n) - 0.1134)
    return float(min(m, 2.0))


class FuzzyCMeans(ClusterMixin, BaseEstimator):
    """Fuzzy C-Means (Bezdek) through ``skfuzzy.cluster.cmeans``.

    Parameters
    ----------
    n_clusters : int
        Number of clusters c.
    m : float or "auto"
        Fuzzifier (> 1); larger gives fuzzier memberships. ``"auto"``: :func:`fuzzifier_for`
        the data's number of samples and dimensions.
    error : float
        Stop when the Frobenius norm of the membership change is below this.
    maxiter : int
        Iteration limit.
    random_state : int, RandomState or None
        Seeds the k-means++ choice of the initial centres; the initial memberships follow
        from them by the FCM update (random memberships would start every centre near the
        data's mean, from where FCM in many dimensions does not separate them).

    Attributes
    ----------
    m_ : float
        The fuzzifier used.
    u_ : ndarray of shape (n_clusters, n_samples)
        Final memberships; each column sums to 1.
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : ndarray of shape (n_samples,)
        ``argmax`` of the memberships.
    partition_coefficient_, partition_entropy_ : float
        Bezdek's PC and PE of ``u_`` (see :mod:`audioclust.metrics`).
    n_iter_ : int
    objective_ : float
        Final objective J_m = sum u**m d**2.

    Notes
    -----
    skfuzzy works on data of shape (n_features, n_samples); the transposition is done here.
    Computation is in float64.
    """

    def __init__(self, n_clusters: int = 3, m: float | str = "auto", error: float = 1e-5, maxiter: int = 1000,
                 random_state=None):
        self.n_clusters = n_clusters
        self.m = m
        self.error = error
        self.maxiter = maxiter
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit on X of shape (n_samples, n_features); ``y`` is ignored."""
        X = validate_data(self, X, dtype=_FLOATS).astype(np.float64)
        if self.m == "auto":
            self.m_ = fuzzifier_for(*X.shape)
        elif isinstance(self.m, (int, float)) and self.m > 1:
            self.m_ = float(self.m)
        else:
            raise ConfigError(f"FuzzyCMeans fuzzifier m = {self.m!r} must be a number > 1 or 'auto'")
        if not 1 <= self.n_clusters <= X.shape[0]:
            raise ValueError(f"n_clusters = {self.n_clusters} must be between 1 and n_samples = {X.shape[0]}")
        centres, _ = kmeans_plusplus(X, self.n_clusters, random_state=check_random_state(self.random_state))
        cntr, u, _, _, jm, n_iter, _ = skfuzzy.cluster.cmeans(
            X.T, c=self.n_clusters, m=self.m_, error=self.error, maxiter=self.maxiter,
            init=self._memberships(X, centres))
        self.cluster_centers_ = cntr
        self.u_ = u
        self.labels_ = np.argmax(u, axis=0)
        self.partition_coefficient_ = partition_coefficient(u)
        self.partition_entropy_ = partition_entropy(u)
        self.n_iter_ = int(n_iter)
        self.objective_ = float(jm[-1])
        return self

    def _memberships(self, X: np.ndarray, centres: np.ndarray) -> np.ndarray:
        """FCM memberships of X to fixed centres, shape (n_clusters, n_samples) (log-space: m near 1 is safe)."""
        d = cdist(centres, X)
        logits = -(2.0 / (self.m_ - 1.0)) * np.log(np.fmax(d, np.finfo(np.float64).tiny))
        u = np.exp(logits - logits.max(axis=0, keepdims=True))
        return u / u.sum(axis=0, keepdims=True)

    def predict_memberships(self, X) -> np.ndarray:
        """Memberships of new samples to the fitted centres, shape (n_clusters, n_samples) (deterministic)."""
        check_is_fitted(self, "cluster_centers_")
        X = validate_data(self, X, dtype=_FLOATS, reset=False)
        return self._memberships(X.astype(np.float64), self.cluster_centers_)

    def predict(self, X) -> np.ndarray:
        """Cluster of each new sample (argmax membership), shape (n_samples,)."""
        return np.argmax(self.predict_memberships(X), axis=0)


class GaussianMixtureClustering(ClusterMixin, BaseEstimator):
    """``sklearn.mixture.GaussianMixture`` as a clusterer: ``n_clusters`` components, ``labels_``.

    Attributes
    ----------
    mixture_ : GaussianMixture
        The fitted mixture (float64).
    labels_ : ndarray of shape (n_samples,)
        Most probable component of each sample.
    bic_ : float
        Bayesian information criterion on the training data (lower is better).
    """

    def __init__(self, n_clusters: int = 1, covariance_type: str = "full", n_init: int = 1, max_iter: int = 100,
                 reg_covar: float = 1e-6, random_state=None):
        self.n_clusters = n_clusters
        self.covariance_type = covariance_type
        self.n_init = n_init
        self.max_iter = max_iter
        self.reg_covar = reg_covar
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit on X of shape (n_samples, n_features); ``y`` is ignored."""
        X = validate_data(self, X, dtype=np.float64)
        self.mixture_ = GaussianMixture(
            n_components=self.n_clusters, covariance_type=self.covariance_type, n_init=self.n_init,
            max_iter=self.max_iter, reg_covar=self.reg_covar, random_state=self.random_state).fit(X)
        self.labels_ = self.mixture_.predict(X)
        self.bic_ = float(self.mixture_.bic(X))
        return self

    def predict(self, X) -> np.ndarray:
        """Most probable component of each sample, shape (n_samples,)."""
        check_is_fitted(self, "mixture_")
        return self.mixture_.predict(validate_data(self, X, dtype=np.float64, reset=False))

    def predict_proba(self, X) -> np.ndarray:
        """Posterior probability of each component, shape (n_samples, n_clusters)."""
        check_is_fitted(self, "mixture_")
        return self.mixture_.predict_proba(validate_data(self, X, dtype=np.float64, reset=False))


def knee_eps(X, min_samples: int, metric: str = "euclidean") -> float:
    """DBSCAN radius from the knee of the sorted k-distance curve.

    The k-distance of a sample is its distance to its ``min_samples``-th nearest
    neighbour counting itself (so a sample is a core point exactly when its k-distance
    is <= eps). Sorted ascending, the curve is flat inside clusters and rises steeply for
    outliers; eps is its value at the knee (:func:`audioclust.kselect.knee`: the point
    farthest from the chord).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    min_samples : int
    metric : str
        Distance of the neighbour search (as DBSCAN's ``metric``).

    Returns
    -------
    float
        > 0 (a zero knee, from duplicated samples, becomes float32 eps).
    """
    X = np.asarray(X)
    n_neighbors = max(1, min(int(min_samples), X.shape[0]))
    dist, _ = NearestNeighbors(n_neighbors=n_neighbors, metric=metric).fit(X).kneighbors(X)
    kdist = np.sort(dist[:, -1])
    return max(float(kdist[knee(kdist)]), float(np.finfo(np.float32).eps))


class KneeDBSCAN(ClusterMixin, BaseEstimator):
    """DBSCAN whose ``eps`` defaults to the knee of the k-distance curve (:func:`knee_eps`).

    Parameters
    ----------
    eps : float or None
        Neighbourhood radius; None: :func:`knee_eps` of the training data.
    min_samples : int
        Neighbours (the sample included) within eps that make a core point.
    metric : str
        Distance (sklearn's DBSCAN ``metric``), also used for the automatic eps.
    n_jobs : int or None

    Attributes
    ----------
    eps_ : float
        The radius used.
    labels_ : ndarray of shape (n_samples,)
        Cluster per sample; noise keeps -1.
    n_noise_ : int
        Number of noise samples.
    n_clusters_ : int
        Number of clusters, noise excluded.
    core_sample_indices_ : ndarray of shape (n_core_samples,)
    """

    def __init__(self, eps: float | None = None, min_samples: int = 5, metric: str = "euclidean",
                 n_jobs: int | None = None):
        self.eps = eps
        self.min_samples = min_samples
        self.metric = metric
        self.n_jobs = n_jobs

    def fit(self, X, y=None):
        """Fit on X of shape (n_samples, n_features); ``y`` is ignored."""
        X = validate_data(self, X, dtype=_FLOATS)
        self.eps_ = float(self.eps) if self.eps is not None else knee_eps(X, self.min_samples, self.metric)
        db = DBSCAN(eps=self.eps_, min_samples=self.min_samples, metric=self.metric, n_jobs=self.n_jobs).fit(X)
        self.labels_ = db.labels_
        self.core_sample_indices_ = db.core_sample_indices_
        self.n_noise_ = int(np.sum(self.labels_ == NOISE))
        self.n_clusters_ = int(np.setdiff1d(np.unique(self.labels_), [NOISE]).size)
        return self


class HDBSCANClustering(HDBSCAN):
    """``sklearn.cluster.HDBSCAN`` that also reports ``n_noise_`` and ``n_clusters_``.

    Noise keeps label -1. Parameters are sklearn's; :func:`make` passes ``copy=True``.
    """

    def fit(self, X, y=None):
        """Fit on X of shape (n_samples, n_features); ``y`` is ignored."""
        super().fit(X, y)
        self.n_noise_ = int(np.sum(self.labels_ == NOISE))
        self.n_clusters_ = int(np.setdiff1d(np.unique(self.labels_), [NOISE]).size)
        return self


class BirchClustering(ClusterMixin, BaseEstimator):
    """BIRCH with a threshold relative to the data's spread and a global step that stays linear in memory.

    sklearn's ``Birch`` takes an absolute subcluster radius, which means something else in
    every view (scaled, PCA-reduced, whitened), and groups its subclusters with Ward
    agglomerative clustering, whose memory grows as n_subclusters**2: in a 40-dimensional
    view nearly every sample can become its own subcluster, and 50,000 of them exhaust
    memory. Here the radius is ``threshold`` x the spread of the data and the global step
    switches to K-Means above ``max_subclusters`` subclusters.

    Parameters
    ----------
    n_clusters : int
        Clusters of the global step.
    threshold : float
        Largest subcluster radius as a share of sqrt(mean squared distance of the samples
        to their mean).
    branching_factor : int
        Most subclusters per CF-tree node (sklearn's).
    max_subclusters : int
        Ward agglomerative global step up to this many subclusters, K-Means above.
    random_state : int, RandomState or None
        Seeds the K-Means global step.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
    threshold_ : float
        The absolute radius used.
    subcluster_centers_ : ndarray of shape (n_subclusters, n_features)
    subcluster_labels_ : ndarray of shape (n_subclusters,)
        Global cluster of each subcluster.
    global_step_ : ``"agglomerative"``, ``"kmeans"`` or ``"none"`` (no more subclusters than clusters).
    """

    def __init__(self, n_clusters: int = 3, threshold: float = 0.25, branching_factor: int = 50,
                 max_subclusters: int = 5000, random_state=None):
        self.n_clusters = n_clusters
        self.threshold = threshold
        self.branching_factor = branching_factor
        self.max_subclusters = max_subclusters
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit on X of shape (n_samples, n_features); ``y`` is ignored."""
        X = validate_data(self, X, dtype=_FLOATS)
        spread = float(np.sqrt(np.mean(np.sum((X - X.mean(axis=0)) ** 2, axis=1))))
        self.threshold_ = max(self.threshold * spread, float(np.finfo(np.float32).eps))
        # n_clusters=None: the tree only; labels_ = index of each sample's nearest subcluster
        tree = Birch(threshold=self.threshold_, branching_factor=self.branching_factor, n_clusters=None).fit(X)
        self.subcluster_centers_ = tree.subcluster_centers_
        n_sub = self.subcluster_centers_.shape[0]
        if n_sub <= self.n_clusters:
            self.global_step_ = "none"
            self.subcluster_labels_ = np.arange(n_sub)
        elif n_sub <= self.max_subclusters:
            self.global_step_ = "agglomerative"
            self.subcluster_labels_ = AgglomerativeClustering(n_clusters=self.n_clusters).fit_predict(
                self.subcluster_centers_)
        else:
            self.global_step_ = "kmeans"
            self.subcluster_labels_ = KMeans(n_clusters=self.n_clusters, n_init=3, random_state=self.random_state
                                             ).fit_predict(self.subcluster_centers_)
        self.labels_ = self.subcluster_labels_[tree.labels_]
        return self


# --------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class EstimatorSpec:
    """One registry entry (treat the dicts as read-only).

    Attributes
    ----------
    name : registry key.
    cls : estimator class; ``make`` calls ``cls(**defaults, **params)``.
    needs_k : whether it takes ``n_clusters``.
    quadratic : whether memory grows as n_samples**2 (skip above ``cluster.max_samples_quadratic``).
    slow : whether time grows as n_samples**2 or faster on many-dimensional data (skip above
        ``cluster.max_samples_slow``): HDBSCAN's tree-based neighbour searches degrade to brute force in 40 dimensions.
    seeded : whether it takes ``random_state``.
    large : suited to large collections (mini-batch / streaming).
    defaults : parameters ``make`` passes unless overridden.
    grid : parameter -> values tried by ``select_params``.
    """

    name: str
    cls: type
    needs_k: bool
    quadratic: bool
    seeded: bool
    slow: bool = False
    large: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)


ESTIMATORS: dict[str, EstimatorSpec] = {s.name: s for s in [
    EstimatorSpec("kmeans", KMeans, needs_k=True, quadratic=False, seeded=True,
                  defaults={"n_init": 10}, grid={"init": ["k-means++", "random"]}),
    EstimatorSpec("minibatch_kmeans", MiniBatchKMeans, needs_k=True, quadratic=False, seeded=True, large=True,
                  defaults={"n_init": 3, "batch_size": 1024}, grid={"batch_size": [256, 1024]}),
    EstimatorSpec("fcm", FuzzyCMeans, needs_k=True, quadratic=False, seeded=True,
                  defaults={"m": "auto", "error": 1e-5, "maxiter": 1000}, grid={"m": ["auto", 1.5, 2.0]}),
    EstimatorSpec("gmm", GaussianMixtureClustering, needs_k=True, quadratic=False, seeded=True,
                  defaults={"covariance_type": "full", "n_init": 1},
                  grid={"covariance_type": ["full", "tied", "diag", "spherical"]}),
    EstimatorSpec("agglomerative", AgglomerativeClustering, needs_k=True, quadratic=True, seeded=False,
                  defaults={"linkage": "ward"}, grid={"linkage": ["ward", "complete", "average", "single"]}),
    EstimatorSpec("spectral", SpectralClustering, needs_k=True, quadratic=True, seeded=True,
                  defaults={"affinity": "nearest_neighbors", "n_neighbors": 10, "n_init": 10},
                  grid={"n_neighbors": [5, 10, 20]}),
    EstimatorSpec("birch", BirchClustering, needs_k=True, quadratic=False, seeded=True, large=True,
                  defaults={"threshold": 0.25, "branching_factor": 50}, grid={"threshold": [0.1, 0.25, 0.5]}),
    EstimatorSpec("dbscan", KneeDBSCAN, needs_k=False, quadratic=False, seeded=False,
                  defaults={"eps": None, "min_samples": 5}, grid={"min_samples": [3, 5, 10]}),
    EstimatorSpec("hdbscan", HDBSCANClustering, needs_k=False, quadratic=False, seeded=False, slow=True,
                  defaults={"min_cluster_size": 5, "copy": True}, grid={"min_cluster_size": [5, 10, 20]}),
    EstimatorSpec("affinity_propagation", AffinityPropagation, needs_k=False, quadratic=True, seeded=True,
                  defaults={"damping": 0.9, "max_iter": 500}, grid={"damping": [0.5, 0.7, 0.9]}),
]}


def get_spec(name: str) -> EstimatorSpec:
    """Registry entry of ``name``; ConfigError naming the allowed names otherwise."""
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise ConfigError(f"unknown clustering algorithm {name!r}; allowed: {', '.join(ESTIMATORS)}") from None


def check_params(name: str, params: dict[str, Any]) -> None:
    """Raise ConfigError if ``params`` holds a key the estimator ``name`` does not take.

    ``n_clusters`` and ``random_state`` are refused too: they come from :func:`make`'s own
    arguments (k and the pipeline's seed). Call it before any work to fail early.
    """
    spec = get_spec(name)
    allowed = set(spec.cls().get_params(deep=False)) - {"n_clusters", "random_state"}
    bad = sorted(set(params) - allowed)
    if bad:
        raise ConfigError(f"estimator {name!r} has no parameter {bad[0]!r} (n_clusters and random_state are "
                          f"set from k and seed); allowed: {', '.join(sorted(allowed))}")


def make(name: str, n_clusters: int | None = None, random_state: int | None = 0, **params: Any) -> BaseEstimator:
    """A new, unfitted estimator from the registry.

    Parameters
    ----------
    name : str
        Registry key (see :data:`ESTIMATORS`).
    n_clusters : int or None
        k; required when ``spec.needs_k``, ignored otherwise.
    random_state : int or None
        The pipeline's seed; passed only to estimators with ``spec.seeded``.
    **params
        Overrides of ``spec.defaults`` (checked by :func:`check_params`).

    Returns
    -------
    estimator
        ``spec.cls(**defaults, **params)`` with n_clusters / random_state set.
    """
    spec = get_spec(name)
    check_params(name, params)
    kwargs = {**spec.defaults, **params}
    if spec.needs_k:
        if n_clusters is None:
            raise AudioclustError(f"estimator {name!r} needs n_clusters (set cluster.k to a number, or auto to estimate it)")
        kwargs["n_clusters"] = int(n_clusters)
    if spec.seeded:
        kwargs["random_state"] = random_state
    return spec.cls(**kwargs)


def params_from_config(cfg: ClusterConfig) -> dict[str, dict[str, Any]]:
    """Fixed parameters per algorithm from the ``cluster`` config section (for ``make``/``select_params``)."""
    return {
        "kmeans": {"n_init": cfg.n_init},
        "gmm": {"n_init": cfg.n_init},
        "spectral": {"n_init": cfg.n_init},
        "fcm": {"m": cfg.fcm_m, "error": cfg.fcm_error, "maxiter": cfg.fcm_maxiter},
        "dbscan": {"eps": cfg.dbscan_eps, "min_samples": cfg.dbscan_min_samples},
        "hdbscan": {"min_cluster_size": cfg.hdbscan_min_cluster_size},
        "birch": {"max_subclusters": cfg.max_samples_quadratic},
    }


def grid_from_config(cfg: ClusterConfig, name: str) -> dict[str, list[Any]]:
    """Grid searched for ``name``: ``{}`` when ``cfg.tune`` is false, else ``cfg.grids[name]`` or the built-in one."""
    if not cfg.tune:
        return {}
    grid = cfg.grids.get(name, get_spec(name).grid)
    check_params(name, dict.fromkeys(grid))
    return dict(grid)


# --------------------------------------------------------------------------- selection

def stability_gain(
    name: str,
    X,
    n_clusters: int | None = None,
    random_state: int = 0,
    params: dict[str, Any] | None = None,
    labels=None,
    n_resamples: int = 5,
    max_samples: int | None = 3000,
) -> dict[str, float]:
    """Stability of ``name`` on X above its stability on a structure-less Gaussian of the same shape.

    Parameters
    ----------
    name : str
        Registry key.
    X : array-like of shape (n_samples, n_features)
    n_clusters : int or None
        k for estimators that need it.
    random_state : int
        Seeds the estimators, the sample, the half-samples and the Gaussian reference.
    params : dict or None
        Parameters of every fit (as for :func:`make`).
    labels : array-like of shape (n_samples,) or None
        The partition of all of X by the same estimator, when already fitted (used when X
        is not sampled; saves one fit).
    n_resamples : int
        Half-samples per stability (B).
    max_samples : int or None
        Above this many samples, both stabilities are computed on a seeded sample of this size.

    Returns
    -------
    dict
        ``stability`` (= ``stability_raw - stability_null``), ``stability_raw`` (S of the
        data), ``stability_null`` (S of the Gaussian reference; of K-Means with the number
        of clusters found in the data when the estimator finds fewer than two there).
    """
    X = np.asarray(X, dtype=np.float64)
    params = dict(params or {})
    n = X.shape[0]
    if max_samples is not None and n > max_samples:
        X = X[np.sort(np.random.default_rng(random_state).choice(n, size=max_samples, replace=False))]
        labels = None

    fit_predict = partial(_quiet_fit_predict, name, n_clusters, random_state, params)
    labels = fit_predict(X) if labels is None else np.asarray(labels)
    raw = stability(X, fit_predict, labels=labels, n_resamples=n_resamples, random_state=random_state)
    reference = gaussian_reference(X, random_state)
    ref_labels = fit_predict(reference)
    if np.setdiff1d(ref_labels, [NOISE]).size < 2:
        # a density clusterer rightly finds nothing in the reference; what the shape alone gives a
        # partition into as many groups as it found in the data is measured with K-Means instead
        found = max(2, np.setdiff1d(labels, [NOISE]).size)
        kmeans = partial(_quiet_fit_predict, "kmeans", found, random_state, {})
        null = stability(reference, kmeans, n_resamples=n_resamples, random_state=random_state)
    else:
        null = stability(reference, fit_predict, labels=ref_labels, n_resamples=n_resamples,
                         random_state=random_state)
    return {"stability": raw - null, "stability_raw": raw, "stability_null": null}


#: a fuzzy partition whose partition coefficient is within this share of its floor 1/c to 1 found no groups
UNIFORM_MEMBERSHIPS = 0.05


def uniform_memberships(est: BaseEstimator) -> str:
    """Why a fitted fuzzy partition is no partition (every membership about 1/c), or ``""``.

    Its argmax can still name c clusters of plausible sizes, decided by differences of
    1e-6 in the memberships: Fuzzy C-Means with too large an m in many dimensions.
    """
    if not hasattr(est, "partition_coefficient_"):
        return ""
    c = est.u_.shape[0]
    floor = 1.0 / c
    if (est.partition_coefficient_ - floor) / (1.0 - floor) < UNIFORM_MEMBERSHIPS:
        return f"memberships ~ 1/{c} (partition coefficient {est.partition_coefficient_:.3f}): m too large"
    return ""


def _quiet_fit_predict(name: str, n_clusters: int | None, random_state: int, params: dict[str, Any],
                       X: np.ndarray) -> np.ndarray:
    """A fresh estimator's labels of X, without the convergence warnings of many small fits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(make(name, n_clusters, random_state, **params).fit_predict(X))


def _fit_point(name, X, n_clusters, random_state, params, sample_size):
    """Fit one grid point; return (estimator or None, its labels or None, row of scores)."""
    est = make(name, n_clusters, random_state, **params)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            labels = np.asarray(est.fit_predict(X))
        except (ValueError, np.linalg.LinAlgError) as exc:
            log.debug("%s %s failed: %s", name, params, exc)
            return None, None, {"fit_s": time.perf_counter() - start, "error": f"{type(exc).__name__}: {exc}",
                                "warning": ""}
    row = {"fit_s": time.perf_counter() - start, "error": "",
           "warning": str(caught[0].message) if caught else ""}
    row.update(internal_scores(X, labels, sample_size=sample_size, random_state=random_state))
    return est, labels, row


def select_params(
    name: str,
    X,
    n_clusters: int | None = None,
    random_state: int = 0,
    criterion: str = "silhouette",
    params: dict[str, Any] | None = None,
    grid: dict[str, list[Any]] | None = None,
    sample_size: int | None = None,
    min_cluster_share: float = 0.0,
    max_noise_share: float = 1.0,
    n_resamples: int = 5,
    stability_max_samples: int | None = 3000,
) -> tuple[BaseEstimator, dict[str, Any], pd.DataFrame]:
    """Fit every grid point and keep the best by a label-free criterion (labels are never seen).

    Parameters
    ----------
    name : str
        Registry key.
    X : array-like of shape (n_samples, n_features)
    n_clusters : int or None
        k for estimators that need it.
    random_state : int
        The pipeline's seed (estimators, the silhouette sample, the stability samples).
    criterion : {"silhouette", "calinski_harabasz", "davies_bouldin", "stability"}
        Higher is better except for Davies-Bouldin; ``stability`` is :func:`stability_gain`.
    params : dict or None
        Fixed parameters for every point (e.g. ``params_from_config(cfg)[name]``).
    grid : dict or None
        Parameter -> values; the points are their Cartesian product, in the given order,
        each overriding ``params``. None: the registry's grid; ``{}``: ``params`` only.
    sample_size : int or None
        Silhouette sample (see :func:`audioclust.metrics.silhouette`).
    min_cluster_share, max_noise_share : float
        See :func:`audioclust.metrics.degenerate`.
    n_resamples, stability_max_samples : int
        Of :func:`stability_gain` (criterion ``stability`` only).

    Returns
    -------
    best_estimator : fitted estimator
    best_params : dict
        The parameters given to :func:`make` for it (fixed + grid point).
    table : DataFrame
        One row per grid point in grid order: the grid's parameters, ``silhouette,
        calinski_harabasz, davies_bouldin, n_clusters, noise_fraction, fit_s, error,
        warning``, with criterion ``stability`` also ``stability, stability_raw,
        stability_null``; ``degenerate`` (why the point is not eligible, ``""`` when it
        is), ``rank`` (1 = best) and ``selected``.

    Notes
    -----
    A point is degenerate when it failed to fit (ValueError or LinAlgError, kept in
    ``error``), its partition is degenerate (:func:`audioclust.metrics.degenerate` with
    ``n_clusters``, ``min_cluster_share`` and ``max_noise_share``) or its criterion is NaN. Degenerate points
    rank after every other (failed ones last); ties keep grid order. If every point
    failed, AudioclustError is raised with the first error.
    """
    if criterion not in CRITERIA:
        raise ConfigError(f"unknown selection criterion {criterion!r}; allowed: {', '.join(CRITERIA)}")
    params = dict(params or {})
    grid = get_spec(name).grid if grid is None else grid
    check_params(name, {**params, **dict.fromkeys(grid)})
    asked = n_clusters if get_spec(name).needs_k else None
    keys = list(grid)
    points = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]

    rows, fitted = [], []
    for point in points:
        est, labels, row = _fit_point(name, X, n_clusters, random_state, {**params, **point}, sample_size)
        reason = "fit failed" if est is None else (degenerate(labels, asked, min_cluster_share, max_noise_share)
                                                   or uniform_memberships(est))
        if criterion == "stability" and not reason:
            try:
                row.update(stability_gain(name, X, n_clusters, random_state, {**params, **point}, labels=labels,
                                          n_resamples=n_resamples, max_samples=stability_max_samples))
            except (ValueError, np.linalg.LinAlgError) as exc:
                log.debug("%s %s: stability failed: %s", name, point, exc)
                row["stability"] = np.nan
        if not reason and np.isnan(row.get(criterion, np.nan)):
            reason = f"{criterion} is NaN"
        row["degenerate"] = reason
        rows.append({**point, **row})
        fitted.append(est)
    table = pd.DataFrame(rows)

    sign = 1.0 if HIGHER_IS_BETTER[criterion] else -1.0
    # failed after degenerate after the rest; best criterion first; ties keep grid order
    order = sorted(range(len(rows)), key=lambda i: (fitted[i] is None, bool(rows[i]["degenerate"]),
                                                    0.0 if rows[i]["degenerate"] else -sign * rows[i][criterion], i))
    table["rank"] = np.argsort(order) + 1
    best = order[0]
    if fitted[best] is None:
        raise AudioclustError(f"{name}: every grid point failed to fit; first error: {rows[0]['error']}")
    if rows[best]["degenerate"]:
        log.warning("%s: every grid point is degenerate (%s)", name, rows[best]["degenerate"])
    table["selected"] = table["rank"] == 1
    best_params = {**params, **points[best]}
    log.info("%s: best of %d grid points by %s: %s", name, len(points), criterion, points[best])
    return fitted[best], best_params, table
