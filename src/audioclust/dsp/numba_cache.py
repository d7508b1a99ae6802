"""Compile librosa's cached numba kernels once, in one process (``python -m audioclust.dsp.numba_cache``).

librosa caches its numba kernels next to its code. Two processes that compile the same ``guvectorize`` kernel
(local maxima and minima, peak picking, zero crossings, pitch interpolation: numba compiles them when their
module is first imported) at the same moment can write cache files that do not match, and every later call
through them jumps to a null pointer: a segfault (numba issue #10128). A fresh ``.venv`` has no cache, and test
workers, notebook kernels or two stages run side by side compiled them together: ``make`` runs this right after
installing, so the cache exists before anything runs in parallel. Stages whose worker processes call librosa
load the kernels in their own process first (:func:`load_kernels`), so that an install made without ``make``
writes the cache once, before the workers start.
"""

from __future__ import annotations

import importlib

import numpy as np

#: librosa's modules whose ``guvectorize`` kernels numba compiles, or loads from its cache, when they are imported
KERNEL_MODULES = ("librosa.util.utils", "librosa.core.audio", "librosa.core.pitch")


def load_kernels() -> None:
    """Import :data:`KERNEL_MODULES` in this process: compiled and cached here when the cache is empty."""
    for name in KERNEL_MODULES:
        importlib.import_module(name)


def compile_kernels() -> None:
    """Load :data:`KERNEL_MODULES`, then run onset detection with backtracking (a kernel compiled on first call) on
    a short noise."""
    import librosa

    load_kernels()
    y = np.random.default_rng(0).standard_normal(8192)
    for signal in (y.astype(np.float32), y):
        librosa.onset.onset_detect(y=signal, sr=8000, hop_length=128, backtrack=True)
        librosa.util.localmax(signal)
        librosa.util.localmin(signal)


if __name__ == "__main__":
    compile_kernels()
