"""Compile librosa's cached numba kernels once, in one process (``python -m audioclust.dsp.numba_cache``).

librosa caches its numba kernels next to its code. Two processes that compile the same ``guvectorize`` kernel
(local maxima and minima, peak picking: onset detection uses them) at the same moment can write cache files that do
not match, and every later call through them jumps to a null pointer: a segfault (numba issue #10128). A fresh
``.venv`` has no cache, and test workers, notebook kernels or two stages run side by side compiled them together:
``make`` runs this right after installing, so the cache exists before anything runs in parallel.
"""

from __future__ import annotations

import numpy as np


def compile_kernels() -> None:
    """Run the librosa calls whose kernels numba caches (onset detection with backtracking) on a short noise."""
    import librosa

    y = np.random.default_rng(0).standard_normal(8192)
    for signal in (y.astype(np.float32), y):
        librosa.onset.onset_detect(y=signal, sr=8000, hop_length=128, backtrack=True)
        librosa.util.localmax(signal)
        librosa.util.localmin(signal)


if __name__ == "__main__":
    compile_kernels()
