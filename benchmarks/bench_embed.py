"""Speed of the shipped embedding models: each package's own per-file loop against audioclust's batches.

Usage::

    .venv/bin/python benchmarks/bench_embed.py [--wavs ../shared/datasets/fsdd/recordings] [--files 200] \\
        [--batch-size 16] [--files-per-call 64] [--threads 2] [--repeats 2] [--out results/bench/embed.json]

Without ``--wavs`` it writes ``--files`` synthetic 2-4 s WAVs at 22.05 kHz (tones and noise
bursts) into a temporary folder; with it, it takes every k-th WAV of the folder (sorted), so a
subset of FSDD still covers every digit and speaker.

For each shipped model, two runs on the same files, each in a fresh process (so peak RSS is
that run's alone: Python, torch, the model and its work), with ``--threads`` torch threads:

- *package*: the package's own loop, one file at a time. aisfx as its ``main()`` does with
  the librosa spectrogram: ``compute_spectrogram`` (librosa.load at 44.1 kHz, peak
  normalisation, mel, log), ``spectrogram_normalize``, then ``model_get_embedding``'s body
  (``blocking`` and the network) — with the spectrogram transposed to the (frames, mels)
  layout the network reads, and the blocking called directly because ``model_get_embedding``
  asserts files longer than 50 frames (1.16 s), which FSDD's are not. resemblyzer:
  ``preprocess_wav(path)`` and ``embed_utterance(wav, return_partials=True)``.
- *audioclust*: each WAV decoded once with soundfile, resampled to the model's rate with soxr
  (HQ), and :meth:`~audioclust.embed.base.EmbeddingModel.embed` called on ``--files-per-call``
  files at a time with ``--batch-size`` blocks or windows per forward pass.

Both load their model and embed the first file once before the clock starts (a first forward
pass pays one-off set-up costs). The two loops alternate ``--repeats`` times and each keeps its
fastest run, the one least disturbed by other work on the machine. Reported per loop: files/s,
real-time factor (seconds of audio per wall second), CPU milliseconds per file (all threads;
steadier than wall time on a busy machine), peak RSS, and the speed-up by wall and by CPU time;
also on how many files the two loops' frame embeddings agree (max abs difference <= 1e-4), which
says both computed the same thing. (resemblyzer differs by design where ``preprocess_wav`` trims
a file to nothing: the package then embeds silence, audioclust the untrimmed file; 3 of 200
FSDD files.) Prints a Markdown table; ``--out`` also writes the numbers (and the load average
before and after) as JSON.

On a machine busy with other work, torch's OpenMP threads spin at every barrier and wait for a
time slice when one of them is descheduled; the LSTM meets a barrier at each of its 3 x 160
sequential steps, so a one-window forward pass can take seconds instead of milliseconds (large
batches suffer much less). ``OMP_WAIT_POLICY=PASSIVE`` in the environment gives numbers that
reflect the work rather than the contention; the JSON records the policy and the load.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

log = logging.getLogger("bench_embed")

MODELS = ("aisfx", "resemblyzer")

#: frames of one file that differ by no more than this are the same computation
AGREE = 1e-4


def pick_files(folder: Path, n: int) -> list[Path]:
    """Every k-th WAV of ``folder`` (sorted), n of them at most."""
    files = sorted(folder.glob("*.wav"))
    if n < len(files):
        files = files[:: len(files) // n][:n]
    return files


def synthesize(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` WAVs of 2-4 s at 22.05 kHz: a few decaying harmonic tones and noise bursts each."""
    rng = np.random.default_rng(seed)
    sr = 22050
    files = []
    for i in range(n):
        t = np.arange(int(rng.uniform(2.0, 4.0) * sr)) / sr
        y = sum(np.sin(2 * np.pi * f * t) * np.exp(-((t * rng.uniform(1, 4)) % 1.0) * 4)
                for f in rng.uniform(80, 6000, 3))
        y += 0.5 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * rng.uniform(0.3, 2) * t) > 0.7)
        path = folder / f"synth_{i:04d}.wav"
        sf.write(path, (0.5 * y / np.abs(y).max()).astype(np.float32), sr, subtype="PCM_16")
        files.append(path)
    return files


# --------------------------------------------------------------------------- the two loops

def _package_aisfx() -> Callable[[list[Path]], list[np.ndarray]]:
    import torch
    from aisfx import inference, preprocessing
    from aisfx.spectrogram import spectrogram_librosa

    scalar = np.int64(0).__reduce__()[0]  # the checkpoint's numpy scalars (see audioclust.embed.aisfx)
    with torch.serialization.safe_globals([(scalar, "numpy.core.multiarray.scalar"), np.dtype, np.dtypes.Int64DType]):
        weights, ds_dict = inference.load_weights("cpu")
    model = inference.load_bestModel(weights, ds_dict, "cpu")

    def one(path: Path) -> np.ndarray:
        spec = spectrogram_librosa.compute_spectrogram(
            filename=str(path), sr=inference.SAMPLE_RATE, block_size=inference.SPEC_BLOCK_LENGTH,
            hop_size=inference.SPEC_HOP_LENGTH, n_mels=inference.MEL_BINS, f_min=inference.F_MIN,
            f_max=inference.F_MAX)
        spec = preprocessing.spectrogram_normalize(spec.T, spec_norm="original")
        blocks = preprocessing.blocking(spec, block_size=inference.EMB_BLOCK_LENGTH,
                                        hop_size=inference.EMB_BLOCK_LENGTH // 2, drop_partial_block=True)
        with torch.no_grad():
            return model.get_embedding(torch.Tensor(blocks)).numpy()

    return lambda files: [one(path) for path in files]


def _package_resemblyzer() -> Callable[[list[Path]], list[np.ndarray]]:
    from resemblyzer import VoiceEncoder, preprocess_wav

    encoder = VoiceEncoder("cpu", verbose=False)
    return lambda files: [encoder.embed_utterance(preprocess_wav(path), return_partials=True)[1] for path in files]


def _ours(kind: str, batch_size: int, per_call: int) -> Callable[[list[Path]], list[np.ndarray]]:
    import soxr

    from audioclust.embed.spec import ModelSpec
    from audioclust.embed.registry import load_model

    model = load_model(ModelSpec(name=kind, type=kind, batch_size=batch_size), device="cpu")

    def signal(path: Path) -> np.ndarray:
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        y = y.mean(axis=1, dtype=np.float32)
        return y if sr == model.sample_rate else soxr.resample(y, sr, model.sample_rate, quality="HQ")

    def embed(files: list[Path]) -> list[np.ndarray]:
        out = []
        for i in range(0, len(files), per_call):
            out += model.embed([signal(path) for path in files[i:i + per_call]])
        return out

    return embed


def measure(kind: str, variant: str, files: list[Path], threads: int, batch_size: int, per_call: int) -> dict:
    """One run, meant for a fresh process: its embeddings, wall and CPU seconds, and peak RSS."""
    import torch

    warnings.simplefilter("ignore")  # the packages' deprecation noise
    torch.set_num_threads(threads)
    if variant == "package":
        embed = _package_aisfx() if kind == "aisfx" else _package_resemblyzer()
    else:
        embed = _ours(kind, batch_size, per_call)
    embed(files[:1])  # one-off set-up of the first forward pass, outside the clock
    wall, cpu = time.perf_counter(), time.process_time()
    frames = embed(files)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    return {"frames": frames, "wall_s": wall, "cpu_s": cpu, "peak_rss_bytes": peak}


def run(kind: str, variant: str, files: list[Path], **options: int) -> dict:
    """:func:`measure` in a fresh process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, (kind, variant, files), options)


# --------------------------------------------------------------------------- report

def markdown(results: dict) -> str:
    lines = ["| model | loop | files/s | real-time factor | CPU ms/file | peak RSS (MiB) | speed-up (wall / CPU) "
             f"| same frames (max abs diff <= {AGREE:g}) |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for kind, r in results["models"].items():
        for variant in ("package", "audioclust"):
            v = r[variant]
            extra = (f"{r['speedup_wall']:.2f}x / {r['speedup_cpu']:.2f}x | {r['agree']}/{results['files']} "
                     f"(max {r['max_abs_diff_agreeing']:.1e})" if variant == "audioclust" else " | ")
            lines.append(f"| {kind} | {variant} | {v['files_per_s']:.1f} | {v['realtime_factor']:.1f} | "
                         f"{1000 * v['cpu_s'] / results['files']:.0f} | {v['peak_rss_bytes'] / 2**20:.0f} | {extra} |")
    return "\n".join(lines)


def compare(kind: str, files: list[Path], audio_s: float, repeats: int, options: dict) -> dict:
    """Both loops, alternating ``repeats`` times; each keeps its fastest run (the least disturbed)."""
    best: dict[str, dict] = {}
    for i in range(repeats):
        for variant in ("package", "audioclust"):
            r = run(kind, variant, files, **options)
            log.info("%s, %s loop, run %d: %.1f s wall, %.1f s CPU", kind, variant, i + 1, r["wall_s"], r["cpu_s"])
            if variant not in best or r["wall_s"] < best[variant]["wall_s"]:
                best[variant] = r
    diffs = [float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
             for a, b in zip(best["package"]["frames"], best["audioclust"]["frames"])]
    runs = {variant: {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "files_per_s": len(files) / r["wall_s"],
                      "realtime_factor": audio_s / r["wall_s"], "peak_rss_bytes": r["peak_rss_bytes"]}
            for variant, r in best.items()}
    return {**runs, "speedup_wall": runs["package"]["wall_s"] / runs["audioclust"]["wall_s"],
            "speedup_cpu": runs["package"]["cpu_s"] / runs["audioclust"]["cpu_s"],
            "agree": sum(d <= AGREE for d in diffs), "max_abs_diff_agreeing": max([d for d in diffs if d <= AGREE],
                                                                               default=float("nan"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wavs", type=Path, help="folder of WAVs (default: synthetic files in a temp folder)")
    parser.add_argument("--files", type=int, default=200, help="number of files (default 200)")
    parser.add_argument("--batch-size", type=int, default=16, help="blocks or windows per forward pass (ours)")
    parser.add_argument("--files-per-call", type=int, default=64, help="files per embed() call (ours)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each loop; the fastest counts (default 2)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--out", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    with tempfile.TemporaryDirectory() as tmp:
        files = pick_files(args.wavs, args.files) if args.wavs else synthesize(Path(tmp), args.files)
        if not files:
            parser.error(f"no WAV in {args.wavs}")
        audio_s = sum(sf.info(path).duration for path in files)
        log.info("%d files, %.0f s of audio, from %s", len(files), audio_s, args.wavs or "synthetic signals")
        options = {"threads": args.threads, "batch_size": args.batch_size, "per_call": args.files_per_call}
        results = {"files": len(files), "audio_seconds": audio_s, "source": str(args.wavs or "synthetic"),
                   "options": {**options, "repeats": args.repeats}, "cpus": os.cpu_count(),
                   "load_average_before": os.getloadavg(),
                   "models": {kind: compare(kind, files, audio_s, args.repeats, options) for kind in args.models}}
    results["load_average_after"] = os.getloadavg()
    results["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "")
    log.info("load average before %s, after %s; OMP_WAIT_POLICY=%s", results["load_average_before"],
             results["load_average_after"], results["omp_wait_policy"])
    print(markdown(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
