"""Stage-03 speed on FSDD, against the common notebook approach (one matplotlib figure per image).

Usage::

    .venv/bin/python benchmarks/bench_extract.py [--limit N] [--baseline-files 100] [--out results.json]

Builds a throw-away project in a temporary folder (FSDD recordings symlinked into
``datasets/fsdd/<digit>/``, read from ``../shared/datasets/fsdd``), runs stage 01 and 02,
then stage 03 with ``n_jobs`` 1 and 2 on fresh output folders, and reports files/s,
seconds of audio per second, CPU milliseconds per file (all processes; steadier than wall
time on a busy machine) and peak memory (summed RSS of this process and its workers, which
counts shared library pages once per process).
With 2 jobs it runs twice: *cold* (fresh worker processes, which import librosa first)
and *warm* (workers kept from the previous call, as in ``audioclust run`` or a notebook).

The baseline is what many notebooks do: per file, compute each feature with its own
librosa call (``y=`` each time, so several STFTs), draw it with ``librosa.display.specshow``
on a matplotlib figure, ``savefig`` a PNG and close the figure, in one process.
Prints a Markdown table for the README; ``--out`` also writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FSDD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fsdd" / "recordings"
sys.path.insert(0, str(REPO / "src"))

from usage import Usage  # noqa: E402

from audioclust.config import Config, load_config
from audioclust.core.paths import ProjectPaths
from audioclust.stages import extract

log = logging.getLogger("bench_extract")


def pick_files(limit: int | None) -> list[Path]:
    """Every k-th recording (sorted), so a subset still covers all digits and speakers."""
    files = sorted(FSDD.glob("*.wav"))
    if limit is not None and limit < len(files):
        files = files[:: len(files) // limit][:limit]
    return files


def build_project(root: Path, files: list[Path]) -> tuple[Config, ProjectPaths]:
    (root / "configs").mkdir(parents=True)
    shutil.copy(REPO / "configs" / "default.yaml", root / "configs" / "default.yaml")
    paths = ProjectPaths(root, "fsdd")
    for f in files:
        digit = f.name.split("_")[0]
        (paths.raw / digit).mkdir(parents=True, exist_ok=True)
        (paths.raw / digit / f.name).symlink_to(f)
    return load_config(root, "fsdd"), paths


def stage_01_02(cfg: Config, paths: ProjectPaths) -> dict:
    """Stage 01 + 02 with the package; without them (not written yet) WAVs made here."""
    start = time.perf_counter()
    try:
        from audioclust.stages import metadata, transform
    except ImportError:
        made_by = "benchmark (soundfile + librosa.resample; no low-pass)"
        _fallback_stage02(cfg, paths)
    else:
        made_by = "audioclust.stages.metadata + audioclust.stages.transform"
        metadata.run(cfg, paths)
        transform.run(cfg, paths)
    return {"made_by": made_by, "seconds": time.perf_counter() - start}


def _fallback_stage02(cfg: Config, paths: ProjectPaths) -> None:
    import librosa
    import pandas as pd
    import soundfile as sf

    rows = []
    for src in sorted(paths.raw.rglob("*.wav")):
        label = src.parent.name
        y, sr = sf.read(src, dtype="float32")
        y = librosa.resample(y=y, orig_sr=sr, target_sr=cfg.audio.sample_rate).astype(np.float32)
        out = paths.wav / label / src.name
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, y, cfg.audio.sample_rate, subtype="FLOAT")
        rows.append({"name": src.name, "label": label, "stem": src.stem, "source_path": paths.rel(src),
                     "path": paths.rel(out), "duration": len(y) / cfg.audio.sample_rate,
                     "sample_rate": cfg.audio.sample_rate, "status": "ok", "reason": ""})
    paths.metadata.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(paths.transformed_csv, index=False)


def shutdown_workers() -> None:
    """Stop joblib's reusable worker processes, so the next run starts fresh ones."""
    from joblib.externals.loky import get_reusable_executor
    get_reusable_executor().shutdown(wait=True)


def time_stage03(cfg: Config, paths: ProjectPaths, n_jobs: int, label: str) -> dict:
    cfg.parallel.n_jobs = n_jobs
    shutil.rmtree(paths.features, ignore_errors=True)
    with Usage() as use:
        start = time.perf_counter()
        table = extract.run(cfg, paths)
        seconds = time.perf_counter() - start
    ok = table[table["status"] == "ok"]
    return {"run": label, "n_jobs": n_jobs, "files": len(table), "ok": len(ok), "seconds": seconds,
            "files_per_s": len(ok) / seconds, "audio_s_per_s": float(ok["duration"].sum()) / seconds,
            "cpu_ms_per_file": 1000 * use.cpu / len(table), "peak_rss_mib": use.peak / 2**20}


def baseline(paths: ProjectPaths, n_files: int, sr: int) -> dict:
    """The notebook way: a librosa call per feature and a matplotlib figure per image."""
    import librosa
    import librosa.display
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf

    wavs = sorted(paths.wav.rglob("*.wav"))[:n_files]
    out = paths.root / "baseline_png"
    out.mkdir()
    with Usage() as use:
        start = time.perf_counter()
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
        seconds = time.perf_counter() - start
    return {"run": "baseline: librosa per feature + matplotlib savefig", "n_jobs": 1, "files": len(wavs),
            "ok": len(wavs), "seconds": seconds, "files_per_s": len(wavs) / seconds,
            "cpu_ms_per_file": 1000 * use.cpu / len(wavs), "peak_rss_mib": use.peak / 2**20}


def markdown(results: dict) -> str:
    lines = ["| run | jobs | files | time (s) | files/s | audio s/s | CPU ms/file | peak RSS (MiB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["runs"]:
        audio = f"{r['audio_s_per_s']:.0f}" if "audio_s_per_s" in r else "–"
        lines.append(f"| {r['run']} | {r['n_jobs']} | {r['ok']} | {r['seconds']:.2f} | {r['files_per_s']:.0f} | "
                     f"{audio} | {r['cpu_ms_per_file']:.1f} | {r['peak_rss_mib']:.0f} |")
    s = results["speedup"]
    lines.append("")
    lines.append(f"Speed-up over the matplotlib baseline: {s['warm_2_jobs']:.0f}x with 2 jobs (warm), "
                 f"{s['one_job']:.0f}x on one core. {results['machine']}; stage 02 by {results['stage02']['made_by']}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="use N recordings (default: all 3000)")
    parser.add_argument("--baseline-files", type=int, default=100, help="files for the matplotlib baseline")
    parser.add_argument("--out", type=Path, help="also write the numbers to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not FSDD.is_dir():
        sys.stderr.write(f"FSDD not found at {FSDD}\n")
        return 1

    files = pick_files(args.limit)
    root = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    load_before = os.getloadavg()[0]
    try:
        cfg, paths = build_project(root, files)
        stage02 = stage_01_02(cfg, paths)
        runs = []
        shutdown_workers()
        runs.append(time_stage03(cfg, paths, 1, "stage 03"))
        shutdown_workers()
        runs.append(time_stage03(cfg, paths, 2, "stage 03, cold workers"))
        runs.append(time_stage03(cfg, paths, 2, "stage 03, warm workers"))
        runs.append(baseline(paths, min(args.baseline_files, len(files)), cfg.audio.sample_rate))
        base = runs[-1]["files_per_s"]
        results = {
            "files": len(files),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                       f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after",
            "stage02": stage02,
            "runs": runs,
            "speedup": {"warm_2_jobs": runs[2]["files_per_s"] / base, "cold_2_jobs": runs[1]["files_per_s"] / base,
                        "one_job": runs[0]["files_per_s"] / base},
        }
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    sys.stdout.write(markdown(results) + "\n")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
