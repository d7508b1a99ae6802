"""storage.py: what a killed run leaves behind is removed by the next run, and only that."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import soundfile as sf
from conftest import tone

from audioclust.config import load_config
from audioclust.core.paths import ProjectPaths
from audioclust.core.storage import CsvStream, atomic_path, remove_stale_temps
from audioclust.stages import metadata

# A process that opens every kind of temporary file a stage writes, then is killed -9 mid-write.
_KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from audioclust.represent.store import StoreWriter
    from audioclust.core.storage import CsvStream, atomic_path
    features = Path(sys.argv[1])
    writer = StoreWriter(features / "store", {"mel.stats": "k"})
    stream = CsvStream(features / "features.csv", ["stem"])
    npy = atomic_path(features / "mel" / "a" / "x.npy")
    npy.__enter__().write_bytes(b"half an array")
    (features.parent.parent / "checkpoints" / "ds" / f"dcec_z10_s0_abc.tmp{os.getpid()}").mkdir(parents=True)
    print("written", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def _temps(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if ".tmp" in p.name)


def test_temporary_files_of_a_killed_run_are_removed_by_the_next_one(project):
    features = project / "features" / "ds"
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(features)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL and "written" in proc.stdout
    left = _temps(project)
    assert len(left) == 5, left  # store vectors, store index, features.csv, an npy, a checkpoint staging folder
    # a run still in progress (this process) writes beside them: its files must survive
    with CsvStream(features / "features.csv", ["stem"]) as live, atomic_path(features / "mel" / "a" / "y.npy") as tmp:
        tmp.write_bytes(b"being written")
        (project / "datasets" / "ds").mkdir(parents=True)
        sf.write(project / "datasets" / "ds" / "a.wav", tone(440.0, 0.2), 22050)
        cfg = load_config(project, "ds", overrides={"parallel.n_jobs": 1})
        metadata.run(cfg, ProjectPaths(project, "ds"))  # any stage cleans up first
        assert _temps(project) == sorted([Path(live._tmp).relative_to(project).as_posix(),
                                          tmp.relative_to(project).as_posix()])
        live.write(pd.DataFrame({"stem": ["a"]}))
    assert _temps(project) == []
    assert (features / "features.csv").read_text() == "stem\na\n" and (features / "mel" / "a" / "y.npy").is_file()
    assert remove_stale_temps(project / "features", project / "absent") == 0
