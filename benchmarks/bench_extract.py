"""Stage 03 side by side with the seed study's method (notebook 03), on the same FSDD recordings.

Usage::

    .venv/bin/python benchmarks/bench_extract.py [--small 210] [--large N] [--baseline-files 210]
                                                 [--repeat 3] [--out results.json]

Builds a throw-away project in a temporary folder (FSDD recordings symlinked into
``datasets/fsdd/<digit>/``, read from ``../shared/datasets/fsdd/recordings``), runs stages 01 and
02 once on the large set (default: all 3,000 recordings), and times two sets of the same
stage-02 WAVs: a small one (every k-th recording, 210 by default: the size at which starting
worker processes matters) and the large one. Side by side on each set:

- **the seed study's method** (notebook 03: librosa per feature, specshow + savefig per image):
  per file, each feature from its own librosa call (``y=`` each time, so one STFT per feature),
  drawn with ``librosa.display.specshow`` on a matplotlib figure, saved with ``savefig`` and
  closed, in one process. On at most ``--baseline-files`` files of the set (every k-th, so all
  digits and speakers); its files/s are taken as the whole set's;
- **stage 03** (``audioclust.stages.extract.run``, which also writes NPY files, the descriptors,
  completion markers and the packed feature store): with 1 job, with the default 2 jobs and
  fresh worker processes (as a new ``audioclust extract`` process runs it), and with 2 jobs whose
  workers are kept from the previous run (as inside ``audioclust run`` or a notebook).

The set runs in ``--repeat`` rounds, each a share of the seed method's files followed by the
three stage-03 runs, so that both methods meet the same load on a shared machine. The seed
method's row sums its shares; each stage-03 row is the median of its runs, each on a fresh
output folder. A run's outputs are moved aside and deleted at the start of the next round,
untimed, before the seed method's share: deleting 30,000 files slows the file creation that
follows for a while on some file systems (ext4 mounted with ``discard``), which would otherwise
be charged to the next stage-03 run.

Both methods are timed after a warm-up on one file in this process, so neither pays the
import and first-call loading of librosa, matplotlib and numba that any process pays once.
CPU is user + system time of this process and its workers (steadier than wall time on a shared
machine); peak RSS sums the processes, so it counts shared library pages once per process.
Prints a Markdown table; ``--out`` also writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
FSDD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fsdd" / "recordings"
sys.path.insert(0, str(REPO / "src"))

from usage import Usage  # noqa: E402

from audioclust.config import Config, load_config  # noqa: E402
from audioclust.core.paths import ProjectPaths  # noqa: E402
from audioclust.stages import extract, metadata, transform  # noqa: E402

SEED_METHOD = "the seed study's method (notebook 03: librosa per feature, specshow + savefig per image)"


def every_kth(items: list, n: int | None) -> list:
    """``n`` items spread evenly over ``items`` (sorted), so a subset still covers all digits and speakers."""
    if n is None or n >= len(items):
        return list(items)
    return items[:: len(items) // n][:n]


def build_project(root: Path, files: list[Path]) -> tuple[Config, ProjectPaths]:
    """Dataset ``fsdd``: the recordings linked into ``datasets/fsdd/<digit>/``, through stages 01 and 02."""
    (root / "configs").mkdir(parents=True)
    shutil.copy(REPO / "configs" / "default.yaml", root / "configs" / "default.yaml")
    paths = ProjectPaths(root, "fsdd")
    for f in files:
        digit = f.name.split("_")[0]
        (paths.raw / digit).mkdir(parents=True, exist_ok=True)
        (paths.raw / digit / f.name).symlink_to(f)
    cfg = load_config(root, "fsdd")
    metadata.run(cfg, paths)
    transform.run(cfg, paths)
    return cfg, paths


def subset_dataset(root: Path, source: ProjectPaths, name: str, n: int) -> tuple[Config, ProjectPaths]:
    """Dataset ``name`` listing ``n`` of ``source``'s stage-02 rows (every k-th): the same WAVs, no second stage 02."""
    paths = ProjectPaths(root, name)
    table = pd.read_csv(source.transformed_csv, dtype=str, keep_default_na=False)
    rows = every_kth(list(range(len(table))), n)
    paths.metadata.mkdir(parents=True, exist_ok=True)
    table.iloc[rows].to_csv(paths.transformed_csv, index=False)
    return load_config(root, name), paths


def shutdown_workers() -> None:
    """Stop joblib's reusable worker processes, so the next run starts fresh ones."""
    from joblib.externals.loky import get_reusable_executor
    get_reusable_executor().shutdown(wait=True)


def move_aside(paths: ProjectPaths) -> None:
    """Move the dataset's stage-03 outputs out of the way (:func:`empty_trash` deletes them later)."""
    if paths.features.exists():
        trash = paths.root / ".trash"
        trash.mkdir(exist_ok=True)
        paths.features.rename(trash / f"{paths.dataset}-{time.time_ns()}")


def empty_trash(root: Path) -> None:
    """Delete what earlier runs moved aside."""
    shutil.rmtree(root / ".trash", ignore_errors=True)


def time_stage03(cfg: Config, paths: ProjectPaths, n_jobs: int, fresh_workers: bool) -> dict:
    """One stage-03 run on a fresh output folder."""
    cfg.parallel.n_jobs = n_jobs
    if fresh_workers:
        shutdown_workers()
    move_aside(paths)
    with Usage() as use:
        start = time.perf_counter()
        table = extract.run(cfg, paths)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu": use.cpu, "peak": use.peak, "files": len(table),
            "ok": int((table["status"] == "ok").sum())}


def seed_method(wavs: list[Path], out: Path) -> None:
    """The seed study's notebook 03: a librosa call per feature and a matplotlib figure per image."""
    import librosa
    import librosa.display
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf

    out.mkdir(parents=True, exist_ok=True)
    for wav in wavs:
        y, file_sr = sf.read(wav, dtype="float32")
        images = {
            "spectrogram": librosa.amplitude_to_db(np.abs(librosa.stft(y=y)), ref=np.max),
            "mel": librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=file_sr), ref=np.max),
            "chroma": librosa.feature.chroma_stft(y=y, sr=file_sr),
            "mfcc": librosa.feature.mfcc(y=y, sr=file_sr, n_mfcc=20),
        }
        images["mfcc_no_c0"] = images["mfcc"][1:]
        for kind, array in images.items():
            fig, ax = plt.subplots(figsize=(4, 3))
            librosa.display.specshow(array, sr=file_sr, x_axis="time", ax=ax)
            fig.savefig(out / f"{wav.stem}_{kind}.png")
            plt.close(fig)


def seed_files(paths: ProjectPaths, n_files: int) -> list[Path]:
    """``n_files`` of the dataset's WAVs for the seed study's method (every k-th, in table order)."""
    table = pd.read_csv(paths.transformed_csv, dtype=str, keep_default_na=False)
    return every_kth([paths.abs(p) for p in table.loc[table["status"] == "ok", "path"]], n_files)


def time_seed_method(root: Path, wavs: list[Path]) -> dict:
    """The seed study's method on ``wavs``, its images written under ``root/.trash``."""
    out = root / ".trash" / f"seed-{time.time_ns()}"
    with Usage() as use:
        start = time.perf_counter()
        seed_method(wavs, out)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu": use.cpu, "peak": use.peak, "files": len(wavs), "ok": len(wavs)}


def warm_up(root: Path, source: ProjectPaths) -> None:
    """Load what each method loads on first use (librosa's submodules and numba functions, matplotlib's
    fonts, the stage's imports) on one file, outside the timings."""
    cfg, paths = subset_dataset(root, source, "warm_up", 1)
    cfg.parallel.n_jobs = 1
    extract.run(cfg, paths)
    time_seed_method(root, seed_files(paths, 1))


#: the stage-03 rows of each set: 1 job first (no idle workers in its RSS), then fresh workers,
#: then the same workers again
STAGE03_RUNS = [("stage 03, 1 job", 1, True),
                ("stage 03, 2 jobs (default), fresh worker processes", 2, True),
                ("stage 03, 2 jobs, warm workers", 2, False)]


def bench_set(name: str, cfg: Config, paths: ProjectPaths, baseline_files: int, repeat: int) -> dict:
    """``repeat`` rounds on one set, each: a share of the seed study's files, then stage 03 three ways.

    Interleaved so that both methods see the same load over time on a shared machine. The seed
    method's row sums its shares; each stage-03 row is the median of its runs.
    """
    n = len(pd.read_csv(paths.transformed_csv, usecols=["path"]))
    wavs = seed_files(paths, min(baseline_files, n))
    seed_runs, stage_runs = [], {label: [] for label, _, _ in STAGE03_RUNS}
    for i in range(repeat):
        sys.stderr.write(f"{name} set ({n} files), round {i + 1} of {repeat}\n")
        shutdown_workers()  # idle workers of the previous round would count in its peak RSS
        empty_trash(paths.root)
        seed_runs.append(time_seed_method(paths.root, wavs[i::repeat]))
        for label, jobs, fresh in STAGE03_RUNS:
            stage_runs[label].append(time_stage03(cfg, paths, jobs, fresh))
    seed = _row(SEED_METHOD, 1, seed_runs, total=True)
    seed["extrapolated"] = seed["files"] < n
    rows = [seed]
    for label, jobs, _ in STAGE03_RUNS:
        row = _row(label, jobs, stage_runs[label], total=False)
        row.update(x_seed=row["files_per_s"] / seed["files_per_s"],
                   cpu_x_seed=seed["cpu_ms_per_file"] / row["cpu_ms_per_file"])
        rows.append(row)
    return {"set": name, "files": n, "runs": rows}


def _row(label: str, n_jobs: int, runs: list[dict], total: bool) -> dict:
    """One table row from runs: their sums (the seed method's shares) or their medians (repeats)."""
    if total:
        files, seconds, cpu = (sum(r[k] for r in runs) for k in ("files", "seconds", "cpu"))
    else:
        files = runs[0]["files"]
        seconds, cpu = (statistics.median(r[k] for r in runs) for k in ("seconds", "cpu"))
    return {"run": label, "n_jobs": n_jobs, "files": files, "ok": sum(r["ok"] for r in runs) if total else runs[0]["ok"],
            "seconds": seconds, "seconds_all": [r["seconds"] for r in runs], "files_per_s": files / seconds,
            "cpu_ms_per_file": 1000 * cpu / files, "peak_rss_mib": max(r["peak"] for r in runs) / 2**20,
            "x_seed": 1.0, "cpu_x_seed": 1.0}


def markdown(results: dict) -> str:
    lines = ["| set | method | jobs | files timed | wall (s) | files/s | CPU ms/file | × seed method (files/s) "
             "| peak RSS (MiB) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in results["sets"]:
        for r in s["runs"]:
            files = f"{r['files']}" + (" ¹" if r.get("extrapolated") else "")
            lines.append(f"| {s['set']} ({s['files']}) | {r['run']} | {r['n_jobs']} | {files} | {r['seconds']:.2f} | "
                         f"{r['files_per_s']:.1f} | {r['cpu_ms_per_file']:.1f} | {r['x_seed']:.1f}× | "
                         f"{r['peak_rss_mib']:.0f} |")
    lines += ["",
              "¹ the seed study's method ran on this many files of the set (every k-th); its files/s are "
              "taken as the set's.",
              f"{results['repeat']} rounds per set, each a share of the seed method's files and one run of each "
              f"stage-03 row (median shown), on a fresh output folder. {results['machine']}."]
    threshold = results.get("parallel_min_files")
    if threshold:
        lines.append(f"Stage 03 starts worker processes only for a chunk of at least {threshold} files to compute; "
                     "below that it runs in its own process (its 2-job rows on smaller sets are in-process).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=210, help="files of the small set (default 210)")
    parser.add_argument("--large", type=int, default=None, help="files of the large set (default: all 3000)")
    parser.add_argument("--baseline-files", type=int, default=210,
                        help="at most this many files per set for the seed study's method (default 210)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds per set: the seed method's files are shared out over them, each stage-03 row "
                             "runs once per round and shows the median (default 3)")
    parser.add_argument("--out", type=Path, help="also write the numbers to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project folder")
    args = parser.parse_args(argv)
    if not FSDD.is_dir():
        sys.stderr.write(f"FSDD recordings not found at {FSDD}: put the Free Spoken Digit Dataset's "
                         "recordings/ folder there (../shared/datasets/fsdd/recordings from the repository)\n")
        return 1

    files = every_kth(sorted(FSDD.glob("*.wav")), args.large)
    root = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    load_before = os.getloadavg()[0]
    try:
        start = time.perf_counter()
        large_cfg, large = build_project(root, files)
        stage02 = time.perf_counter() - start
        small_cfg, small = subset_dataset(root, large, "fsdd_small", args.small)
        warm_up(root, large)
        sets = [bench_set("small", small_cfg, small, args.baseline_files, args.repeat),
                bench_set("large", large_cfg, large, args.baseline_files, args.repeat)]
        shutdown_workers()
        results = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                       f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after",
            "stage01_02_seconds": stage02,
            "repeat": args.repeat,
            "parallel_min_files": getattr(extract, "PARALLEL_MIN_FILES", None),
            "sets": sets,
        }
        sys.stdout.write(markdown(results) + "\n")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1))
    finally:
        if not args.keep:  # after the table: deleting the runs' outputs takes a while
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
