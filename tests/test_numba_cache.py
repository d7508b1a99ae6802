"""librosa's numba kernels are compiled by one process: `make`'s warm-up, and a stage's own process before its workers."""

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


PARENT_LOADS = """
import sys
import numpy as np, soundfile as sf
from pathlib import Path
from audioclust.config import load_config
from audioclust.core.paths import ProjectPaths
from audioclust.stages import metadata, transform
root = Path(sys.argv[1])
for i in range(3):
    path = root / "datasets" / "ds" / "a" / f"{i}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.sin(np.arange(44100) * 0.05 * (i + 1)).astype(np.float32), 44100)
cfg = load_config(root, "ds", overrides={"parallel.n_jobs": 2})
paths = ProjectPaths(root, "ds")
metadata.run(cfg, paths)
assert (transform.run(cfg, paths)["status"] == "ok").all()
print(sorted(name for name in ("librosa.util.utils", "librosa.core.audio", "librosa.core.pitch") if name in sys.modules))
"""


def test_stage_02_loads_librosas_kernels_before_its_workers_resample(project):
    """Stage 02's workers resample with librosa, whose kernels numba compiles on import: the stage's own process
    loads them first, so that on an install made without `make` one process writes the cache, not two at once."""
    out = subprocess.run([sys.executable, "-c", PARENT_LOADS, str(project)], capture_output=True, text=True,
                         check=True, timeout=300).stdout
    assert out.strip().splitlines()[-1] == "['librosa.core.audio', 'librosa.core.pitch', 'librosa.util.utils']"
