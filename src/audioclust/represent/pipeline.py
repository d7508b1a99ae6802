"""The dataset-wide transform of a view: impute, scale, clip, PCA (optionally whitened), UMAP."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.decomposition import PCA

log = logging.getLogger(__name__)


#: fewer samples than this are not embedded by UMAP (its spectral start needs a few more than its dimensions)
UMAP_MIN_SAMPLES = 16


# --------------------------------------------------------------------------- matrix steps

def impute_column_means(X: np.ndarray) -> np.ndarray:
    """Replace non-finite entries by their column's mean over the finite ones (0 when none is finite).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_dims)

    Returns
    -------
    ndarray of shape (n_samples, n_dims), float64 (a copy)
    """
    X = np.array(X, dtype=np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        counts = (~bad).sum(axis=0)
        sums = np.where(bad, 0.0, X).sum(axis=0)
        means = np.divide(sums, counts, out=np.zeros(X.shape[1]), where=counts > 0)
        X[bad] = np.take(means, np.nonzero(bad)[1])
    return X


def n_components_for(ratio: np.ndarray, pca: float) -> int:
    """Components kept for ``pca``: ``int(pca)`` when >= 1, else the fewest reaching that variance fraction.

    Parameters
    ----------
    ratio : ndarray of shape (n_all,)
        Explained-variance ratios, decreasing.
    pca : float

    Returns
    -------
    int in [1, n_all]
    """
    if pca >= 1:
        return max(1, min(int(pca), ratio.size))
    cumulative = np.cumsum(ratio)
    # tolerance: a cumulative sum that should reach 1.0 may stop at 0.9999999
    return max(1, min(int(np.searchsorted(cumulative, pca - 1e-9) + 1), ratio.size))


def transform(
    raw: np.ndarray,
    scale: str = "standard",
    clip: float | None = None,
    pca: float | None = None,
    whiten: bool = False,
    umap: int | None = None,
    umap_neighbors: int = 50,
    umap_min_dist: float = 0.0,
    umap_max_samples: int | None = None,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """Impute, scale, reduce.

    Parameters
    ----------
    raw : ndarray of shape (n_samples, n_dims)
    scale : ``standard`` | ``minmax`` | ``none``
    clip : float or None
        With ``standard`` scaling, z-scores beyond ±clip are set to ±clip, so that one
        far-out file cannot take a cluster (or a principal component) for itself.
    pca : float or None
        See :func:`n_components_for`; None: no PCA.
    whiten : bool
        Divide each kept component by its standard deviation.
    umap : int or None
        UMAP output dimensions (after PCA); None: no UMAP. Skipped, with a warning, below
        :data:`UMAP_MIN_SAMPLES` samples.
    umap_neighbors, umap_min_dist : UMAP parameters.
    umap_max_samples : int or None
        Above this many samples UMAP is fitted on a seeded sample of this size and the
        other samples are placed with its ``transform`` (the fit grows faster than n).
    random_state : int
        Seeds UMAP and its sample.

    Returns
    -------
    X : ndarray of shape (n_samples, n_out), float32
    explained_variance_ratio : ndarray of shape (min(n_samples, n_dims),) or None
    n_components : int or None
    """
    X = impute_column_means(raw)
    if scale == "standard":
        std = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
        if clip is not None:
            X = np.clip(X, -clip, clip)
    elif scale == "minmax":
        lo, span = X.min(axis=0), np.ptp(X, axis=0)
        X = (X - lo) / np.where(span > 0, span, 1.0)
    ratio, n_keep = None, None
    if pca is not None and X.shape[0] >= 2:
        # every component, for the explained-variance curve; the eigen-decomposition of the
        # covariance is the cheaper exact route when there are many more samples than dimensions
        solver = "covariance_eigh" if X.shape[0] >= 2 * X.shape[1] else "full"
        model = PCA(n_components=None, svd_solver=solver).fit(X)
        ratio = np.nan_to_num(model.explained_variance_ratio_)
        n_keep = n_components_for(ratio, pca)
        X = model.transform(X)[:, :n_keep]
        if whiten:
            sd = np.sqrt(model.explained_variance_[:n_keep])
            X = X / np.where(sd > 1e-12, sd, 1.0)
    if umap is not None:
        X = _umap(X, umap, umap_neighbors, umap_min_dist, umap_max_samples, random_state)
    return X.astype(np.float32), ratio, n_keep


def _umap(X: np.ndarray, n_components: int, n_neighbors: int, min_dist: float, max_samples: int | None,
          random_state: int) -> np.ndarray:
    """UMAP of ``X`` (see :func:`transform`); ``X`` unchanged when there are too few samples."""
    n = X.shape[0]
    if n < UMAP_MIN_SAMPLES:
        log.warning("UMAP skipped: %d samples, it needs at least %d", n, UMAP_MIN_SAMPLES)
        return X
    import umap as umap_learn  # heavy import (numba), only when asked for
    model = umap_learn.UMAP(n_components=min(n_components, n - 2), n_neighbors=min(n_neighbors, n - 1),
                            min_dist=min_dist, random_state=random_state)
    if max_samples is None or n <= max_samples:
        return model.fit_transform(X)
    fit = np.sort(np.random.default_rng(random_state).choice(n, max_samples, replace=False))
    out = np.empty((n, model.n_components), dtype=np.float32)
    out[fit] = model.fit_transform(X[fit])
    rest = np.setdiff1d(np.arange(n), fit)
    out[rest] = model.transform(X[rest])
    return out
