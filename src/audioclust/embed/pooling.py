"""One vector per file from its frame embeddings."""

from __future__ import annotations

import numpy as np

from audioclust.core.vocab import EMBEDDING_POOLINGS
from audioclust.embed.spec import ModelError

#: ways to pool frames: ``mean``, ``meanstd`` (mean then standard deviation), ``max``
POOLINGS: tuple[str, ...] = EMBEDDING_POOLINGS


def pool_frames(frames: np.ndarray, *, mode: str) -> np.ndarray:
    """Pool a file's frame embeddings over time.

    Parameters
    ----------
    frames : ndarray of shape (n_frames, dim), n_frames >= 1.
    mode : ``"mean"``, ``"meanstd"`` (the mean, then the population standard deviation:
        0 for one frame) or ``"max"`` (per dimension).

    Returns
    -------
    ndarray of shape (dim,), or (2 * dim,) for ``meanstd``; float32.

    Raises
    ------
    ModelError
        Unknown mode.
    ValueError
        ``frames`` is not 2-D or has no frame.
    """
    if mode not in POOLINGS:
        raise ModelError(f"pooling {mode!r} is unknown: choose one of {', '.join(POOLINGS)}")
    frames = np.asarray(frames)
    if frames.ndim != 2 or frames.shape[0] == 0:
        raise ValueError(f"frames of shape {frames.shape}: expected (n_frames >= 1, dim)")
    if mode == "max":
        return frames.max(axis=0).astype(np.float32)
    # float64 sums: a long file's thousands of frames would lose digits in float32
    mean = frames.mean(axis=0, dtype=np.float64)
    if mode == "mean":
        return mean.astype(np.float32)
    std = frames.std(axis=0, dtype=np.float64)
    return np.concatenate([mean, std]).astype(np.float32)
