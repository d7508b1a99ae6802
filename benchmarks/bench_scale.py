"""Scaling: wall time, files per second and peak memory of every stage against the number of files.

Usage::

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000 10000 50000] [--dask-workers 1 2]
        [--dask-limit 1=10000] [--clip-seconds 0.5] [--root DIR] [--out scale.json]
        [--plot docs/scaling.png]

For each size it generates a seeded synthetic corpus of short clips in a temporary folder
(the sounds of :func:`audioclust.stages.prepare.generate_demo`: 7 families, 16 kHz PCM, so stage 02
resamples to 22,050 Hz as it would for most speech corpora), then runs every stage as its
own ``audioclust`` process, exactly as a user would:

* ``local``: stages 01–04 with the defaults (2 worker processes) — stage 04 with the settings
  for large collections below;
* ``dask-N``: stages 02 and 03 again on fresh output folders, through ``--scheduler`` on a
  ``distributed.LocalCluster`` of N single-threaded worker processes on loopback.

Peak memory is the highest sum of the resident memory of the stage's process, its worker
processes and (for ``dask-N``) the cluster's processes, sampled every 200 ms (shared library
pages count once per process, so it overstates a little). The slope of log(time) against
log(files) between the smallest and the largest size is 1 for a linear stage.

Stage 04 runs with ``views.features=[mel, mfcc]``, ``views.sources=[npy]`` (4 views) and the
algorithms that scale (MiniBatchKMeans, BIRCH, Gaussian mixture), figures on (t-SNE and
k-selection on seeded samples): the defaults' quadratic algorithms would be skipped above
``cluster.max_samples_quadratic`` anyway.

Prints a Markdown table for the README and writes the log–log plot (``--plot``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from joblib import Parallel, delayed

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from usage import Usage  # noqa: E402

from audioclust.dsp.decode import write_wav
from audioclust.dsp.synth import DEMO_FAMILIES, demo_sound
from audioclust.stages._shared import views_settings

log = logging.getLogger("bench_scale")
AUDIOCLUST = Path(sys.executable).with_name("audioclust")
DATASET = "scale"
STAGES = ["metadata", "transform", "extract", "cluster"]
PER_FILE_STAGES = ["transform", "extract"]
CLUSTER_SETTINGS = ["views.features=[mel, mfcc]", "views.sources=[npy]",
                    "cluster.algorithms=[minibatch_kmeans, birch, gmm]"]


def write_family(folder: Path, family: str, n: int, seconds: float) -> None:
    """The files of one demo family, as :func:`audioclust.stages.prepare.generate_demo` names and makes them
    (a corpus already there, as with ``--root``, is kept: the same seed makes the same files)."""
    for i in range(n):
        path = folder / family / f"{family}_{i:03d}.wav"
        if not path.is_file():
            write_wav(path, demo_sound(family, i, seed=0, sr=16000, seconds=seconds), sr=16000, subtype="PCM_16")


def make_project(root: Path, n_files: int, clip_seconds: float) -> int:
    """A project under ``root`` with ``n_files`` generated clips (rounded down to 7 families); returns the count."""
    (root / "configs").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "configs" / "default.yaml", root / "configs" / "default.yaml")
    n = max(1, n_files // 7)
    Parallel(n_jobs=-1)(delayed(write_family)(root / "datasets" / DATASET, family, n, clip_seconds)
                        for family in DEMO_FAMILIES)  # generation is not measured: use every core
    return n * len(DEMO_FAMILIES)


def run_stage(root: Path, stage: str, extra: list[str], watch: list[int]) -> dict:
    """One stage as its own process; wall time and peak memory (of it and of ``watch``'s process trees)."""
    cmd = [str(AUDIOCLUST), stage, "--root", str(root), "--dataset", DATASET, *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with Usage([proc.pid, *watch]) as use:
        _, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(use.cpu, 1), "peak_mib": round(use.peak / 2**20)}


class Cluster:
    """A ``distributed.LocalCluster`` of ``n`` single-threaded worker processes, in its own process."""

    def __init__(self, n_workers: int) -> None:
        code = ("import time\nfrom dask.distributed import LocalCluster\n"
                f"c = LocalCluster(n_workers={n_workers}, threads_per_worker=1, processes=True, "
                "host='127.0.0.1', dashboard_address=None)\n"
                "print(c.scheduler_address, flush=True)\ntime.sleep(10**6)\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.address = self.proc.stdout.readline().strip()  # type: ignore[union-attr]
        if not self.address.startswith("tcp://"):
            raise RuntimeError("the LocalCluster did not start")

    def close(self) -> None:
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            child.kill()
        self.proc.kill()
        self.proc.wait()


def wipe_outputs(root: Path, everything: bool = False) -> None:
    """Remove stage 02/03 outputs (markers included), or every stage's, so the next run computes everything again."""
    folders = [root / "datasets" / f"{DATASET}_wav", root / "features" / DATASET,
               root / "metadata" / DATASET / ".transform_done"]
    if everything:
        folders += [root / "metadata" / DATASET, root / "results" / DATASET]
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def bench_size(root: Path, n_files: int, clip_seconds: float, dask_workers: list[int]) -> dict:
    start = time.perf_counter()
    n = make_project(root, n_files, clip_seconds)
    wipe_outputs(root, everything=True)
    out: dict = {"files": n, "generate_s": round(time.perf_counter() - start, 1), "runs": {}}
    log.info("%d files generated in %.0f s", n, out["generate_s"])
    local = out["runs"]["local"] = {}
    for stage in STAGES:
        extra = CLUSTER_SETTINGS if stage == "cluster" else []
        local[stage] = run_stage(root, stage, [f"--set={s}" for s in extra], [])
        log.info("local %s: %s", stage, local[stage])
    out["load_view"] = store_vs_files(root)
    log.info("one view of every file: %s", out["load_view"])
    for workers in dask_workers:
        wipe_outputs(root)
        cluster = Cluster(workers)
        try:
            run = out["runs"][f"dask-{workers}"] = {}
            for stage in PER_FILE_STAGES:
                run[stage] = run_stage(root, stage, ["--scheduler", cluster.address], [cluster.proc.pid])
                log.info("dask-%d %s: %s", workers, stage, run[stage])
        finally:
            cluster.close()
    for run in out["runs"].values():
        for stats in run.values():
            stats["files_per_s"] = round(n / stats["wall_s"], 1)
    return out


def store_vs_files(root: Path) -> dict:
    """Seconds to load the raw matrix of one view (``mel.image.npy``) for every file: from the packed
    store, and from the per-file NPY arrays as stage 04 did before the store (page cache warm for both)."""
    from audioclust import results as ac_results
    from audioclust.config import load_config
    from audioclust.core.paths import ProjectPaths
    from audioclust.represent import views
    from audioclust.represent.store import FeatureStore

    cfg = load_config(root, DATASET)
    paths = ProjectPaths(root, DATASET)
    table = ac_results.read_table(paths)
    spec = views.ViewSpec("mel", "image", "npy")
    keys = [f"{lab or 'unlabelled'}/{stem}" for lab, stem in zip(table["label"], table["stem"])]
    start = time.perf_counter()
    from_store = FeatureStore.open(paths.feature_store).matrix(spec.name, views.settings_key(views_settings(cfg), spec), keys)
    store_s = time.perf_counter() - start
    start = time.perf_counter()
    from_files = views._raw_matrices(views_settings(cfg), paths, table, [spec])[spec]
    files_s = time.perf_counter() - start
    assert np.array_equal(from_store, from_files)
    return {"store_s": round(store_s, 3), "files_s": round(files_s, 2)}


def long_recording(root: Path, seconds: float) -> dict:
    """Stages 02 and 03 on one recording of ``seconds`` (44.1 kHz stereo, 16-bit: tones in noise)."""
    import soundfile as sf
    (root / "configs").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "configs" / "default.yaml", root / "configs" / "default.yaml")
    path = root / "datasets" / DATASET / "field" / "long.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    rng, sr = np.random.default_rng(0), 44100
    with sf.SoundFile(path, "w", samplerate=sr, channels=2, subtype="PCM_16") as out:
        for minute in range(math.ceil(seconds / 60)):
            n = int(min(60, seconds - 60 * minute) * sr)
            t = np.arange(n) / sr
            tone = 0.3 * np.sin(2 * np.pi * (220 + 10 * minute) * t)
            out.write(np.clip(0.1 * rng.standard_normal((n, 2)) + tone[:, None], -1, 1).astype(np.float32))
    out = {"seconds": seconds, "file_mib": round(path.stat().st_size / 2**20)}
    for stage in ("metadata", "transform", "extract"):
        out[stage] = run_stage(root, stage, [], [])
    return out


def slopes(results: list[dict]) -> dict[tuple[str, str], float]:
    """Slope of log(wall time) against log(files) over every size that has the stage."""
    out = {}
    for run in {r for res in results for r in res["runs"]}:
        for stage in STAGES:
            pts = [(res["files"], res["runs"][run][stage]["wall_s"]) for res in results
                   if stage in res["runs"].get(run, {})]
            if len(pts) >= 2:
                x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
                out[run, stage] = float(np.polyfit(x, y, 1)[0])
    return out


def markdown(results: list[dict]) -> str:
    slope = slopes(results)
    lines = ["| run | stage | " + " | ".join(f"{r['files']:,} files: s · files/s · peak MiB" for r in results)
             + " | slope |", "|---|---|" + "---:|" * (len(results) + 1)]
    runs = sorted({r for res in results for r in res["runs"]}, key=lambda r: (r != "local", r))
    for run in runs:
        for stage in STAGES:
            cells = []
            for res in results:
                s = res["runs"].get(run, {}).get(stage)
                cells.append("—" if s is None else f"{s['wall_s']:.1f} · {s['files_per_s']:.0f} · {s['peak_mib']}")
            if all(c == "—" for c in cells):
                continue
            fit = slope.get((run, stage))
            lines.append(f"| {run} | {stage} | " + " | ".join(cells) + f" | {'—' if fit is None else f'{fit:.2f}'} |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colours = dict(zip(STAGES, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    styles = {"local": "-", "dask-1": ":", "dask-2": "--"}
    for run in sorted({r for res in results for r in res["runs"]}):
        for stage in STAGES:
            pts = [(res["files"], res["runs"][run][stage]["wall_s"]) for res in results
                   if stage in res["runs"].get(run, {})]
            if pts:
                ax.loglog(*zip(*pts), styles.get(run, "-."), marker="o", color=colours[stage],
                          label=f"{stage} ({run})")
    n = np.array([results[0]["files"], results[-1]["files"]], dtype=float)
    ref = results[0]["runs"]["local"]["extract"]["wall_s"]
    ax.loglog(n, ref * n / n[0], color="0.6", lw=0.8, label="slope 1")
    ax.set_xlabel("files")
    ax.set_ylabel("wall time (s)")
    ax.set_title(f"audioclust stages on {os.cpu_count()} cores")
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)


def save(path: Path | None, results: list[dict], extra: dict) -> None:
    if path:
        path.write_text(json.dumps({"machine": platform.platform(), "cores": os.cpu_count(), "results": results,
                                    **extra}, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--dask-workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--dask-limit", nargs="*", default=[], metavar="WORKERS=FILES",
                        help="run the LocalCluster of WORKERS workers only up to FILES files (e.g. 1=10000)")
    parser.add_argument("--clip-seconds", type=float, default=0.5)
    parser.add_argument("--long-recording", type=float, default=3600.0, metavar="SECONDS",
                        help="also run stages 01-03 on one recording this long (0: skip)")
    parser.add_argument("--root", type=Path, help="keep the projects here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="write the numbers as JSON")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "scaling.png")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    base = args.root or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    results: list[dict] = []
    extra: dict = {}
    try:
        for size in sorted(args.sizes):
            limits = {int(w): int(n) for w, n in (item.split("=") for item in args.dask_limit)}
            dask = [w for w in args.dask_workers if size <= limits.get(w, size)]
            results.append(bench_size(base / f"n{size}", size, args.clip_seconds, dask))
            save(args.out, results, extra)
        if args.long_recording:
            extra["long_recording"] = long_recording(base / "long", args.long_recording)
            log.info("long recording: %s", extra["long_recording"])
            save(args.out, results, extra)
    finally:
        if args.root is None:
            shutil.rmtree(base, ignore_errors=True)
    print(markdown(results))
    print("\nOne view (mel image, Arrays) of every file: " + "; ".join(
        f"{r['files']:,} files: {r['load_view']['store_s']:.2f} s from the store, {r['load_view']['files_s']:.1f} s "
        "from the per-file NPY" for r in results))
    if "long_recording" in extra:
        lr = extra["long_recording"]
        print(f"\nOne recording of {lr['seconds']:.0f} s ({lr['file_mib']} MiB, 44.1 kHz stereo): "
              + ", ".join(f"{s} {lr[s]['wall_s']:.0f} s, peak {lr[s]['peak_mib']} MiB" for s in
                          ("metadata", "transform", "extract")))
    if results:
        plot(results, args.plot)
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
