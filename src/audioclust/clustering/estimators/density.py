"""Density-based clusterers: DBSCAN with its radius from the k-distance knee, and HDBSCAN."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN, HDBSCAN
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import validate_data

from audioclust.clustering.estimators import _FLOATS
from audioclust.clustering.kselect import knee
from audioclust.clustering.metrics import NOISE

log = logging.getLogger(__name__)


def knee_eps(X, min_samples: int, metric: str = "euclidean") -> float:
    """DBSCAN radius from the knee of the sorted k-distance curve.

    The k-distance of a sample is its distance to its ``min_samples``-th nearest
    neighbour counting itself (so a sample is a core point exactly when its k-distance
    is <= eps). Sorted ascending, the curve is flat inside clusters and rises steeply for
    outliers; eps is its value at the knee (:func:`audioclust.clustering.kselect.knee`: the point
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
