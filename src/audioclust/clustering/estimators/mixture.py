"""Gaussian mixtures as a clusterer: hard labels from the most probable component."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.mixture import GaussianMixture
from sklearn.utils.validation import check_is_fitted, validate_data

log = logging.getLogger(__name__)


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
