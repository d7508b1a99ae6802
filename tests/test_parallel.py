"""parallel.py and streaming: in-order lazy maps, small chunks, and a Dask LocalCluster on loopback."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audioclust.config import load_config
from audioclust.core.parallel import Workers, close_clients, parallel_imap, parallel_map
from audioclust.core.paths import ProjectPaths
from audioclust.represent.store import FeatureStore
from audioclust.stages import extract, metadata, transform
from audioclust.stages.prepare import generate_demo

SMALL = {"features.n_fft": 512, "features.hop_length": 256, "features.n_mels": 32, "features.n_mfcc": 13,
         "views.features": ["mel", "mfcc"], "views.sources": ["npy"]}


def slow_square(x: int) -> int:
    time.sleep(0.02 * (x % 3))  # later items may finish first
    return x * x


def die_once(x: int, flag: str) -> int:
    """Kill the worker process the first time item 3 is seen (as a crash or an OOM kill would)."""
    if x == 3 and not os.path.exists(flag):
        Path(flag).touch()
        os._exit(1)
    return -x


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_parallel_imap_keeps_order_and_consumes_lazily(n_jobs):
    workers = Workers(n_jobs=n_jobs)
    taken = []

    def items():
        for i in range(40):
            taken.append(i)
            yield i

    results = parallel_imap(slow_square, items(), workers, desc=None)
    assert next(results) == 0
    assert len(taken) < 40                      # not the whole input up front
    assert [0, *results] == [i * i for i in range(40)]


GROWING_WORKERS = """
import os, sys, time
import numpy as np
from audioclust.core.parallel import Workers, parallel_map

def grow(i):
    time.sleep(0.3)
    if i in (2, 3):   # each worker's second item keeps 400 MB in the worker: loky replaces it afterwards
        sys.__dict__.setdefault("kept", []).append(np.ones(50_000_000))
        time.sleep(1.2)
    return i, os.getpid()

print(parallel_map(grow, list(range(12)), Workers(n_jobs=2), desc=None))
"""


def test_a_worker_that_loky_replaces_costs_no_result_and_no_warning(tmp_path):
    script = tmp_path / "grow.py"
    script.write_text(GROWING_WORKERS)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True)
    results = ast.literal_eval(done.stdout.strip())
    assert [i for i, _ in results] == list(range(12))
    first, later = {pid for _, pid in results[:4]}, {pid for _, pid in results[4:]}
    assert len(first) == 2 and not first & later     # both workers were replaced after their growing item
    assert "A worker stopped" not in done.stderr, done.stderr


@pytest.mark.parametrize("n_jobs, items, called", [(2, [1, 2, 3], 1), (2, [], 0), (1, [1, 2, 3], 0)])
def test_prepare_runs_here_once_only_before_worker_processes_start(n_jobs, items, called):
    """`prepare` (e.g. librosa's numba kernels loaded before workers would compile them at once) runs in this
    process when worker processes start, not when the map runs here or has nothing to map."""
    calls = []
    results = parallel_map(slow_square, items, Workers(n_jobs=n_jobs), desc=None, prepare=lambda: calls.append(1))
    assert results == [i * i for i in items]
    assert len(calls) == called


def build(root: Path, n_per_class: int = 3, **overrides) -> tuple[ProjectPaths, dict]:
    """Stages 01–03 of a small demo set under ``root``; returns the paths and every output's bytes."""
    paths = ProjectPaths(root, "demo")
    if not paths.raw.is_dir():
        generate_demo(paths.raw, n_per_class=n_per_class, seconds=0.4)
    cfg = load_config(root, "demo", overrides={**SMALL, **overrides})
    for stage in (metadata, transform, extract):
        stage.run(cfg, paths)
    outputs = {p.relative_to(root).as_posix(): _content(p)
               for folder in (paths.metadata, paths.wav, paths.features) for p in sorted(folder.rglob("*"))
               if p.is_file() and ".transform_done" not in p.parts and ".extract_done" not in p.parts}
    return paths, outputs


def _content(path: Path) -> bytes:
    """A file's bytes; a WAV's samples (libsndfile stamps the time into a float WAV's PEAK chunk)."""
    if path.suffix == ".wav":
        return sf.read(path, dtype="float32")[0].tobytes()
    return path.read_bytes()


def test_small_chunks_give_the_same_outputs(project, tmp_path, monkeypatch):
    _, whole = build(project, **{"parallel.n_jobs": 1})
    other = tmp_path / "chunked"
    (other / "configs").mkdir(parents=True)
    (other / "configs" / "default.yaml").write_bytes((project / "configs" / "default.yaml").read_bytes())
    monkeypatch.setattr(metadata, "PROBE_CHUNK", 4)
    monkeypatch.setattr(metadata, "PARALLEL_MIN_FILES", 1)    # probes in worker processes too
    monkeypatch.setattr(transform, "CHUNK_ROWS", 5)
    monkeypatch.setattr(extract, "CHUNK_ROWS", 3)
    _, chunked = build(other, **{"parallel.n_jobs": 2})
    assert sorted(chunked) == sorted(whole) and len(whole) > 3 * 7 * 5
    assert [k for k in whole if whole[k] != chunked[k]] == []


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=50) as local:
        yield local
        close_clients()  # before the cluster goes: a connected client would try to reconnect


def test_dask_cluster_gives_outputs_identical_to_the_local_run(project, tmp_path, cluster):
    _, local = build(project, **{"parallel.n_jobs": 2})
    other = tmp_path / "on_dask"
    (other / "configs").mkdir(parents=True)
    (other / "configs" / "default.yaml").write_bytes((project / "configs" / "default.yaml").read_bytes())
    paths, remote = build(other, **{"parallel.scheduler": cluster.scheduler_address, "parallel.batch_size": 4})
    assert sorted(remote) == sorted(local)
    assert [k for k in local if local[k] != remote[k]] == []
    store = FeatureStore.open(paths.feature_store)
    assert store.n_rows == 21 and len(store.views) == 7  # 4 views + the autoencoder images of mel, mfcc, spectrogram
    table = pd.read_csv(paths.features_csv)
    assert (table["status"] == "ok").all()


def test_dask_task_of_a_dead_worker_is_retried(tmp_path, cluster):
    workers = Workers(scheduler=cluster.scheduler_address, batch_size=2)
    flag = str(tmp_path / "died")
    results = parallel_map(partial(die_once, flag=flag), range(10), workers, desc=None)
    assert os.path.exists(flag)                 # a worker did die
    assert results == [-i for i in range(10)]   # and its batch ran again elsewhere


def test_unreachable_scheduler_is_a_clear_error():
    from audioclust.core.errors import ConfigError
    workers = Workers(scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ConfigError, match="no Dask scheduler answers"):
        parallel_map(slow_square, [1], workers, desc=None)


def test_metadata_streams_in_sorted_path_order(project):
    raw = project / "datasets" / "order"
    names = ["c.wav", "c/x.wav", "cd.wav", "b/a.wav", "b.wav", "a/b/c.wav", "a/b.wav", "Z.wav"]
    for name in names:
        path = raw / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.zeros(100, np.float32) + 0.1, 8000)
    found = [p.relative_to(raw).as_posix() for p in metadata.iter_audio_files(raw, {"wav"})]
    assert found == sorted(names)
    assert found[:3] == ["Z.wav", "a/b.wav", "a/b/c.wav"]
