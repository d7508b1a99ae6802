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
    partition is degenerate (:func:`audioclust.clustering.selection.degenerate`: fewer than two
    clusters, fewer than asked for, a tiny split-off cluster, one cluster per sample; for
    Fuzzy C-Means also memberships all about 1/c: :func:`uniform_memberships`) or
    whose criterion is NaN rank last. The internal scores use every sample except the
    silhouette (a seeded sample of ``sample_size``).

Stability criterion (:func:`stability_gain`)
    ``stability = S(X) - S(G)``: S is :func:`audioclust.clustering.selection.stability` (mean ARI
    between the partition of the data and the partitions of ``n_resamples`` seeded
    half-samples, each clustered anew with the same algorithm, parameters and k), G is
    :func:`audioclust.clustering.selection.gaussian_reference` (one Gaussian with the data's mean and
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

import logging
from dataclasses import dataclass, field
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.cluster import (
    AffinityPropagation,
    AgglomerativeClustering,
    KMeans,
    MiniBatchKMeans,
    SpectralClustering,
)

from audioclust.clustering.estimators.birch import BirchClustering
from audioclust.clustering.estimators.density import (
    HDBSCANClustering,
    KneeDBSCAN,
)
from audioclust.clustering.estimators.fuzzy import FuzzyCMeans
from audioclust.clustering.estimators.mixture import (
    GaussianMixtureClustering,
)
from audioclust.core.errors import AudioclustError, ConfigError

log = logging.getLogger(__name__)


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
