"""Stage-01 cost of measuring MP3 lengths: the frame walk against decoding every file.

Usage::

    .venv/bin/python benchmarks/bench_probe.py [--files 200] [--seconds 30] [--out probe.json]

Encodes ``--files`` MP3s of ``--seconds`` each with the ``lame`` command (44.1 kHz stereo,
noise-modulated tones; a quarter each CBR with its Info tag, CBR untagged, VBR with its Xing
tag, and CBR untagged with 270 kB of cover art in the ID3 tag), then times, on the same files in one
process, three ways of reading a file's length in stage 01:

* ``probe`` — :func:`audioclust.dsp.decode.probe`: MPEG frames walked from their headers (no
  decoding) plus the first block decoded;
* ``decode`` — every frame decoded (:func:`audioclust.dsp.decode.load_audio`), the only other
  real measure;
* ``header`` — libsndfile's header estimate alone (``soundfile.info``), which is what was
  wrong for tagged and VBR files: its error is reported too.

Each is run ``--repeats`` times (the first warms the page cache); the table gives the median
milliseconds per file and per hour of audio. Prints a Markdown table; ``--out`` writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from audioclust.dsp import decode as audio

SR = 44100


def encode(folder: Path, n_files: int, seconds: float) -> list[Path]:
    """``n_files`` MP3s from real-encoder settings, cycling through four kinds."""
    from PIL import Image
    rng = np.random.default_rng(0)
    art = folder / "art.png"
    Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(art)
    kinds = [["-b", "128"], ["-b", "128", "-t"], ["-V", "2"], ["-b", "192", "-t", "--ti", str(art)]]
    t = np.arange(int(seconds * SR)) / SR
    files = []
    for i in range(n_files):
        f0 = 110 * 2 ** (i % 24 / 12)
        env = 0.5 + 0.5 * np.sin(2 * np.pi * (0.5 + i % 5) * t)
        y = 0.3 * env * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(t.size)
        wav = folder / "source.wav"
        sf.write(wav, np.stack([y, np.roll(y, 100)], axis=1).astype(np.float32), SR, subtype="PCM_16")
        out = folder / f"f{i:04d}.mp3"
        subprocess.run(["lame", "--quiet", *kinds[i % 4], str(wav), str(out)], check=True)
        files.append(out)
    (folder / "source.wav").unlink()
    return files


def timed(func, files: list[Path], repeats: int) -> tuple[float, list]:
    """Median seconds over ``repeats`` passes of ``func`` over ``files``; the last pass's results."""
    times, results = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        results = [func(f) for f in files]
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:] if repeats > 1 else times), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if shutil.which("lame") is None:
        sys.exit("bench_probe needs the lame encoder: apt-get install lame")
    with tempfile.TemporaryDirectory() as tmp:
        files = encode(Path(tmp), args.files, args.seconds)
        hours = args.files * args.seconds / 3600
        probe_s, probed = timed(audio.probe, files, args.repeats)
        decode_s, decoded = timed(lambda f: audio.load_audio(f)[0].shape[1], files, args.repeats)
        header_s, headers = timed(lambda f: sf.info(f).frames, files, args.repeats)
    true = np.array(decoded, dtype=float)
    rows = {
        "probe (frame walk + first block)": (probe_s, np.array([p["frames"] for p in probed], float)),
        "decode every frame": (decode_s, true),
        "libsndfile header estimate": (header_s, np.array(headers, float)),
    }
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {platform.processor() or ''}".strip(", "),
              "files": args.files, "seconds_each": args.seconds, "rows": {}}
    print(f"{args.files} MP3 files x {args.seconds:g} s ({hours:.2f} h of audio), one process\n")
    print("| method | ms per file | s per hour of audio | files whose length is off by > 1 MPEG frame |")
    print("|---|---:|---:|---:|")
    for name, (seconds, frames) in rows.items():
        off = int((np.abs(frames - true) > 1152).sum())
        result["rows"][name] = {"ms_per_file": 1000 * seconds / args.files, "s_per_audio_hour": seconds / hours,
                                "length_off": off}
        print(f"| {name} | {1000 * seconds / args.files:.2f} | {seconds / hours:.2f} | {off} of {args.files} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
