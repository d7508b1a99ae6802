"""`make`'s one-process compile of librosa's cached numba kernels writes the caches parallel runs would race for."""

from __future__ import annotations

import os
import subprocess
import sys


def test_compile_kernels_writes_the_guvectorize_caches_onset_detection_uses(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-m", "audioclust.dsp.numba_cache"], env=env, check=True, timeout=300)
    written = {p.name for p in tmp_path.rglob("*.nbc")}
    for kernel in ("__peak_pick", "_localmax", "_localmin"):
        assert any(f".{kernel}-" in name for name in written), (kernel, sorted(written))
