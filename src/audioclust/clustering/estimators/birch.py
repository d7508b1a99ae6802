"""BIRCH with a fixed number of clusters."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import AgglomerativeClustering, Birch, KMeans
from sklearn.utils.validation import validate_data

from audioclust.clustering.estimators import _FLOATS

log = logging.getLogger(__name__)


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
