"""Two dimensions for the eye: the one projection of a matrix, and the seeded sample the report maps."""

from __future__ import annotations

import logging
import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from audioclust.core.cache import MemoFolder, content_hash

log = logging.getLogger(__name__)


def embed_2d(X: np.ndarray, method: str = "pca", random_state: int = 0) -> np.ndarray:
    """The one 2-D projection of a matrix: scatter figures, the sound map, segment scatters.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_dims)
    method : ``pca`` (first two components), ``tsne`` (sklearn t-SNE, PCA-initialised, perplexity
        min(30, (n - 1) / 3), seeded) or ``umap`` (umap-learn, 15 neighbours, seeded; PCA below 4
        samples or 3 dimensions).
    random_state : the seed.

    Returns
    -------
    ndarray of shape (n_samples, 2), float32; a one-column ``X`` gives that column and zeros.
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    if X.shape[1] < 2:
        return np.column_stack([X[:, 0], np.zeros(n)]).astype(np.float32)
    if method == "umap" and n > 3 and X.shape[1] > 2:
        import umap as umap_learn  # heavy import (numba), only when asked for
        with warnings.catch_warnings():  # "n_jobs overridden by setting random_state": seeded is the point
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            Y = umap_learn.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=random_state).fit_transform(
                X.astype(np.float32))
        return np.asarray(Y, dtype=np.float32)
    if method in ("pca", "umap"):
        return PCA(n_components=2, random_state=random_state).fit_transform(X).astype(np.float32)
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state).fit_transform(
        X).astype(np.float32)


def project(X: np.ndarray, method: str = "tsne", seed: int = 0, memo: MemoFolder | None = None) -> np.ndarray:
    """The one 2-D projection of a matrix for the eye: :func:`embed_2d`, remembered by content.

    Stage 04's scatter figures and the report's sound map share ``results/<name>/.projections/``
    (:attr:`~audioclust.core.paths.ProjectPaths.projections`), so a t-SNE of the same matrix is
    computed once for both.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_dims)
    method : ``tsne``, ``pca`` or ``umap`` (:func:`embed_2d`); t-SNE falls back to PCA below 5 samples.
    seed : random state.
    memo : where projections are kept, under the hash of ``X``, ``method`` and ``seed``; None: not kept.

    Returns
    -------
    ndarray of shape (n_samples, 2), float32
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    key = f"{method}-{content_hash([X, method, seed], 24)}"
    if memo is not None and (kept := memo.get(key)) is not None:
        return kept["Y"]
    n = X.shape[0]
    if n < 2:
        Y = np.zeros((n, 2), np.float32)
    elif method == "tsne" and n >= 5:
        # one OpenMP thread: on a busy machine t-SNE's threads spin at every one of its 1000
        # iterations (21 points: 35 s with 2 threads under load, 0.1 s with one)
        with threadpool_limits(limits=1, user_api="openmp"):
            Y = embed_2d(X, "tsne", seed)
    else:
        Y = embed_2d(X, "umap" if method == "umap" else "pca", seed)
    if memo is not None:
        memo.put(key, Y=Y)
    return Y


def sample_positions(clusters: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """At most ``n`` positions, a seeded sample with every cluster in proportion to its size (at least one each).

    Parameters
    ----------
    clusters : ndarray of shape (n_files,), int
    n : int

    Returns
    -------
    ndarray of sorted positions into ``clusters``.
    """
    rng = np.random.default_rng(seed)
    ids, sizes = np.unique(clusters, return_counts=True)
    quota = np.maximum(1, np.floor(sizes * n / len(clusters)).astype(int))
    keep = [rng.choice(np.flatnonzero(clusters == c), size=min(q, s), replace=False)
            for c, q, s in zip(ids, quota, sizes)]
    return np.sort(np.concatenate(keep))


def _normalise(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both axes into [0, 1] with one scale (distances keep their proportions), centred."""
    Y = np.asarray(Y, dtype=np.float64)
    if len(Y) == 0:
        return np.zeros(0), np.zeros(0)
    lo, hi = Y.min(axis=0), Y.max(axis=0)
    span = float(max(hi - lo)) or 1.0
    Z = (Y - lo) / span + (1.0 - (hi - lo) / span) / 2.0
    return np.round(Z[:, 0], 4), np.round(Z[:, 1], 4)
