"""Clustering scores: external (against labels), internal (from the data) and fuzzy.

External scores compare a partition with the researcher's labels and are used only to
*report* results; internal scores, the fuzzy validity indices and the stability of a
partition under sub-sampling need no labels and are what chooses hyper-parameters and k
(DESIGN principle 4).

Stability (:func:`stability`, :func:`gaussian_reference`)
    How well a clusterer reproduces its own partition on seeded half-samples of the data:
    the mean adjusted Rand index between the partition of the whole (restricted to the
    half-sample) and the partition of the half-sample alone. ARI is scale-free, so the
    value can be compared across views of different scale and dimension (silhouettes
    cannot: a whitened 70-dimensional view always scores lower than a 16-dimensional one).
    A clusterer can also be stable on data without any groups (K-Means slicing an
    elongated cloud the same way every time); :func:`gaussian_reference` gives the
    structure-less reference of the same shape (one Gaussian with the data's mean and
    covariance) whose stability is subtracted by ``estimators.stability_gain``.

Degenerate partitions (:func:`degenerate`)
    One rule, used wherever a partition is chosen: fewer than two clusters (noise
    excluded), one label per sample, most samples left as noise, fewer clusters than
    asked for, or a smallest cluster below a share of the mean cluster size (a few
    split-off outliers score a high silhouette, and are perfectly stable, but are no groups).

Noise
    DBSCAN and HDBSCAN give noise points the label ``-1``. Every score here treats ``-1``
    as one more cluster (the "noise cluster"), exactly as scikit-learn's metrics do: noise
    is neither dropped (which would flatter a clusterer that rejects hard points) nor
    matched for free. In ACC and purity the noise cluster can be matched to a class like
    any other cluster; in the internal scores its scattered points lower the silhouette.

Every function takes 1-D label arrays of equal length ``n_samples``; labels may be any
hashable values (strings for classes, ints for clusters).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm

from audioclust.core.errors import AudioclustError

NOISE = -1

"""Label of noise points (DBSCAN, HDBSCAN)."""

EXTERNAL = ("nmi", "acc", "ari", "homogeneity", "completeness", "v_measure", "purity")

"""Keys of :func:`external_scores`, in table order."""

INTERNAL = ("silhouette", "calinski_harabasz", "davies_bouldin")

"""Internal criteria of :func:`internal_scores`."""

CRITERIA = (*INTERNAL, "stability")

"""Label-free criteria that can choose hyper-parameters and the selected row (``cluster.criterion``)."""

HIGHER_IS_BETTER = {"silhouette": True, "calinski_harabasz": True, "davies_bouldin": False, "stability": True}

"""Direction of each criterion."""


def oriented(scores, criterion: str) -> pd.Series:
    """A column of ``criterion`` values as numbers (anything else NaN), turned so that higher is better
    (:data:`HIGHER_IS_BETTER`: ``davies_bouldin`` is negated)."""
    values = pd.to_numeric(pd.Series(scores), errors="coerce")
    return values if HIGHER_IS_BETTER[criterion] else -values


# --------------------------------------------------------------------------- external

def _pair(labels_true, labels_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(labels_true).ravel()
    y_pred = np.asarray(labels_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise AudioclustError(
            f"labels_true has {y_true.size} entries but labels_pred has {y_pred.size}: "
            "pass one true label and one cluster label per sample")
    if y_true.size == 0:
        raise AudioclustError("no samples to score: pass at least one labelled sample")
    return y_true, y_pred


def contingency(labels_true, labels_pred) -> pd.DataFrame:
    """Counts of samples per (class, cluster).

    Parameters
    ----------
    labels_true : array-like of shape (n_samples,)
        Class of each sample.
    labels_pred : array-like of shape (n_samples,)
        Cluster of each sample (``-1``: noise, kept as a column of its own).

    Returns
    -------
    DataFrame of shape (n_classes, n_clusters)
        Integer counts; index ``class`` and columns ``cluster`` sorted as by ``np.unique``.
    """
    y_true, y_pred = _pair(labels_true, labels_pred)
    classes, ti = np.unique(y_true, return_inverse=True)
    clusters, pi = np.unique(y_pred, return_inverse=True)
    table = np.zeros((classes.size, clusters.size), dtype=np.int64)
    np.add.at(table, (ti, pi), 1)
    return pd.DataFrame(table, index=pd.Index(classes, name="class"),
                        columns=pd.Index(clusters, name="cluster"))


def acc(labels_true, labels_pred) -> float:
    """Clustering accuracy: the best one-to-one matching of clusters to classes.

    The Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) maximises the
    matched counts of the contingency table; ACC = matched / n_samples. When the number
    of clusters differs from the number of classes, each class gets at most one cluster
    and vice versa: samples of unmatched clusters (or unmatched classes) count as errors.

    Returns
    -------
    float in [0, 1]
    """
    table = contingency(labels_true, labels_pred).to_numpy()
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def purity(labels_true, labels_pred) -> float:
    """Fraction of samples that belong to the majority class of their cluster.

    Purity rises to 1 as clusters get smaller (every sample alone is pure): read it with
    ACC or NMI, never alone.
    """
    table = contingency(labels_true, labels_pred).to_numpy()
    return float(table.max(axis=0).sum() / table.sum())


def nmi(labels_true, labels_pred) -> float:
    """Normalised mutual information, I(Y;C) / mean(H(Y), H(C)) (arithmetic mean, natural log)."""
    return float(skm.normalized_mutual_info_score(*_pair(labels_true, labels_pred)))


def ari(labels_true, labels_pred) -> float:
    """Adjusted Rand index (0 for a random partition, 1 for the classes themselves)."""
    return float(skm.adjusted_rand_score(*_pair(labels_true, labels_pred)))


def homogeneity(labels_true, labels_pred) -> float:
    """1 - H(Y|C)/H(Y): 1 when every cluster holds a single class."""
    return float(skm.homogeneity_score(*_pair(labels_true, labels_pred)))


def completeness(labels_true, labels_pred) -> float:
    """1 - H(C|Y)/H(C): 1 when every class falls into a single cluster."""
    return float(skm.completeness_score(*_pair(labels_true, labels_pred)))


def v_measure(labels_true, labels_pred) -> float:
    """Harmonic mean of homogeneity and completeness (equals NMI with the arithmetic mean)."""
    return float(skm.v_measure_score(*_pair(labels_true, labels_pred)))


def external_scores(y_true, y_pred) -> dict[str, float]:
    """Every external score of one partition.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Classes (strings or ints). Drop unlabelled samples before calling.
    y_pred : array-like of shape (n_samples,)
        Clusters; ``-1`` (noise) is one more cluster.

    Returns
    -------
    dict
        Keys :data:`EXTERNAL`: ``nmi, acc, ari, homogeneity, completeness, v_measure, purity``.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    h, c, v = skm.homogeneity_completeness_v_measure(y_true, y_pred)
    return {
        "nmi": nmi(y_true, y_pred),
        "acc": acc(y_true, y_pred),
        "ari": ari(y_true, y_pred),
        "homogeneity": float(h),
        "completeness": float(c),
        "v_measure": float(v),
        "purity": purity(y_true, y_pred),
    }


# --------------------------------------------------------------------------- internal

def _valid_partition(labels: np.ndarray) -> bool:
    """Internal scores need 2 <= n_labels <= n_samples - 1."""
    n_labels = np.unique(labels).size
    return 2 <= n_labels <= labels.size - 1


def _prepare(X, labels) -> tuple[np.ndarray, np.ndarray]:
    # float64: Calinski-Harabasz and Davies-Bouldin sum many squares
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels).ravel()
    if X.ndim != 2 or X.shape[0] != labels.size:
        raise AudioclustError(
            f"X must have shape (n_samples, n_features) with n_samples = {labels.size} labels; "
            f"got shape {X.shape}")
    return X, labels


def _guarded(func, X: np.ndarray, labels: np.ndarray) -> float:
    if not _valid_partition(labels):
        return float("nan")
    with warnings.catch_warnings():
        # e.g. Davies-Bouldin divides by zero when clusters coincide: the NaN/inf is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(func(X, labels))


def silhouette(X, labels, sample_size: int | None = None, random_state: int = 0) -> float:
    """Mean silhouette coefficient in [-1, 1] (higher is better), Euclidean.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    sample_size : int or None
        When smaller than ``n_samples``, the score is computed on this many samples drawn
        without replacement by ``numpy.random.default_rng(random_state)`` (memory and time
        grow as n_samples**2).
    random_state : int
        Seed of that sample.

    Returns
    -------
    float
        NaN when the (sampled) partition has one cluster or every point is its own cluster.
    """
    X, labels = _prepare(X, labels)
    if sample_size is not None and sample_size < labels.size:
        idx = np.sort(np.random.default_rng(random_state).choice(labels.size, size=sample_size, replace=False))
        X, labels = X[idx], labels[idx]
    return _guarded(skm.silhouette_score, X, labels)


def calinski_harabasz(X, labels) -> float:
    """Calinski-Harabasz variance ratio (higher is better); NaN for a degenerate partition."""
    return _guarded(skm.calinski_harabasz_score, *_prepare(X, labels))


def davies_bouldin(X, labels) -> float:
    """Davies-Bouldin index (lower is better, 0 is best); NaN for a degenerate partition."""
    return _guarded(skm.davies_bouldin_score, *_prepare(X, labels))


def internal_scores(X, labels, sample_size: int | None = None, random_state: int = 0) -> dict[str, float]:
    """Internal criteria of one partition, plus its size.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The matrix that was clustered.
    labels : array-like of shape (n_samples,)
        Cluster labels; ``-1`` (noise) counts as one more cluster.
    sample_size, random_state
        Silhouette sample, see :func:`silhouette`.

    Returns
    -------
    dict
        ``silhouette, calinski_harabasz, davies_bouldin`` (NaN when the partition has a
        single label or one label per sample; never raises for that), ``n_clusters``
        (distinct labels other than -1) and ``noise_fraction`` (share of label -1).
    """
    X, labels = _prepare(X, labels)
    return {
        "silhouette": silhouette(X, labels, sample_size=sample_size, random_state=random_state),
        "calinski_harabasz": calinski_harabasz(X, labels),
        "davies_bouldin": davies_bouldin(X, labels),
        "n_clusters": int(np.setdiff1d(np.unique(labels), [NOISE]).size),
        "noise_fraction": float(np.mean(labels == NOISE)) if labels.size else float("nan"),
    }


# --------------------------------------------------------------------------- fuzzy

def _memberships(u) -> np.ndarray:
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 2 or u.shape[1] == 0:
        raise AudioclustError(f"memberships must have shape (n_clusters, n_samples); got {u.shape}")
    return u


def partition_coefficient(u) -> float:
    """Bezdek's partition coefficient PC = (1/n) sum_ij u_ij**2.

    Parameters
    ----------
    u : array-like of shape (n_clusters, n_samples)
        Fuzzy memberships, each column summing to 1.

    Returns
    -------
    float in [1/n_clusters, 1]; 1 for a crisp partition (higher is crisper).
    """
    u = _memberships(u)
    return float(np.sum(u ** 2) / u.shape[1])


def partition_entropy(u) -> float:
    """Bezdek's partition entropy PE = -(1/n) sum_ij u_ij ln u_ij (with 0 ln 0 = 0).

    Parameters
    ----------
    u : array-like of shape (n_clusters, n_samples)

    Returns
    -------
    float in [0, ln n_clusters]; 0 for a crisp partition (lower is crisper).
    """
    u = _memberships(u)
    logs = np.log(u, out=np.zeros_like(u), where=u > 0)
    return float(-np.sum(u * logs) / u.shape[1])
