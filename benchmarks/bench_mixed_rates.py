"""Libraries that mix sample rates: how far the clusters follow how the files were stored, and what a common band does.

Usage::

    .venv/bin/python benchmarks/bench_mixed_rates.py make --root ROOT
    .venv/bin/audioclust run --root ROOT --dataset NAME --stages metadata transform extract embed cluster \\
        --set cluster.figures=false [--set audio.cutoff=HZ]
    .venv/bin/python benchmarks/bench_mixed_rates.py compare --root ROOT --sets NAME [...]

``make`` writes two labelled libraries into ``ROOT/datasets/`` as they come from real encoders, one file in turn by
each: AAC and ALAC in ``.m4a`` and Opus (the ``imageio-ffmpeg`` package's ffmpeg), ``lame`` at 8 kHz 24 kbit/s
mono and VBR with ID3 tags (``.MP3``), ``oggenc`` of a 48 kHz stereo copy, ``flac`` of a 96 kHz 24-bit copy, WMA,
and WAV (``.WAV``):

* ``spoken``: six words (yes, no, stop, go, left, right) spoken by seven espeak-ng voices at two rates, 0-2 s of
  faint room noise before and after (84 files, 10 of them at 8 kHz);
* ``field``: six synthetic environmental sounds (rain, wind, engine, birds, siren, typing), 12 each, 1.5-20 s at
  22.05-48 kHz, one rain recording of 2 minutes (72 files, 8 of them at 8 kHz).

Copy a library under another name to run it with another ``audio.cutoff`` (stage 02 writes ``datasets/<name>_wav``
per dataset). ``compare`` prints, per run, stage 04's label-free rows with their NMI against the labels and against
the split into files stored at 8 kHz or less and the others, the mean of both over every ok row, the rows that follow
that split (NMI above 0.3), and the structures with their ``follows`` column. The labels only score.

Needs espeak-ng, lame, oggenc and flac on the PATH (``.ci/run`` installs them).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import butter, sosfilt
from sklearn.metrics import normalized_mutual_info_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from audioclust.dsp.decode import ffmpeg_executable  # noqa: E402

WORDS = ("yes", "no", "stop", "go", "left", "right")
VOICES = ("en-gb", "en-us", "en-gb-scotland", "en-029", "en-us+f3", "en-gb-x-rp+f2", "en-gb-x-gbcwmd+m3")


def _run(*command: str) -> None:
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def encode(wav: Path, stem: Path, i: int, tmp: Path) -> None:
    """Write ``wav`` as ``stem`` + the extension of encoder ``i`` (of nine, in turn)."""
    ffmpeg = ffmpeg_executable()
    kind = i % 9
    if kind == 0:
        _run(ffmpeg, "-y", "-i", str(wav), "-c:a", "aac", "-b:a", "96k", f"{stem}.m4a")
    elif kind == 1:
        _run(ffmpeg, "-y", "-i", str(wav), "-c:a", "libopus", "-b:a", "48k", f"{stem}.opus")
    elif kind == 2:
        _run("lame", "--quiet", "--resample", "8", "-b", "24", "-m", "m", str(wav), f"{stem}.mp3")
    elif kind == 3:
        _run("lame", "--quiet", "-V", "3", "--tt", "take ü", "--ta", "Ñandú", str(wav), f"{stem}.MP3")
    elif kind == 4:
        _run(ffmpeg, "-y", "-i", str(wav), "-ac", "2", "-ar", "48000", str(tmp / "stereo.wav"))
        _run("oggenc", "-Q", "-q", "2", "-o", f"{stem}.ogg", str(tmp / "stereo.wav"))
    elif kind == 5:
        _run(ffmpeg, "-y", "-i", str(wav), "-ar", "96000", "-c:a", "pcm_s24le", str(tmp / "hires.wav"))
        _run("flac", "-s", "-f", "-o", f"{stem}.flac", str(tmp / "hires.wav"))
    elif kind == 6:
        shutil.copy(wav, f"{stem}.WAV")
    elif kind == 7:
        _run(ffmpeg, "-y", "-i", str(wav), "-c:a", "alac", f"{stem}.m4a")
    else:
        _run(ffmpeg, "-y", "-i", str(wav), "-c:a", "wmav2", "-b:a", "64k", f"{stem}.wma")


def spoken(out: Path, tmp: Path, rng: np.random.Generator) -> None:
    i = 0
    for word in WORDS:
        (out / word).mkdir(parents=True, exist_ok=True)
        for voice in VOICES:
            for speed in (140, 190):
                _run("espeak-ng", "-v", voice, "-s", str(speed), "-w", str(tmp / "raw.wav"), word)
                y, sr = sf.read(tmp / "raw.wav")
                noise = [rng.normal(0, 0.002, int(sr * rng.uniform(0, 2.0))) for _ in range(2)]
                sf.write(tmp / "word.wav", np.concatenate([noise[0], y, noise[1]]), sr)
                encode(tmp / "word.wav", out / word / f"{word} – {voice} {speed}", i, tmp)
                i += 1


def _rain(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    y = rng.normal(0, 0.05, n)
    drops = rng.random(n) < 300 / sr
    y[drops] += rng.normal(0, 0.8, drops.sum())
    return np.convolve(y, np.exp(-np.arange(80) / 10), "same")


def _wind(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    y = sosfilt(butter(2, 400 / (sr / 2), output="sos"), rng.normal(0, 1, n))
    return y * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t))


def _engine(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t, f0 = np.arange(n) / sr, rng.uniform(25, 60)
    return sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 12)) + rng.normal(0, 0.1, n)


def _birds(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    y, start = rng.normal(0, 0.005, n), 0
    while start < n:
        length = int(sr * rng.uniform(0.05, 0.2))
        t = np.arange(min(length, n - start)) / sr
        f = rng.uniform(2500, 5000) + rng.uniform(-1500, 1500) * t / (length / sr)
        y[start:start + len(t)] += np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(len(t))
        start += length + int(sr * rng.uniform(0.05, 0.8))
    return y


def _siren(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    f = 900 + 300 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t)
    return np.sign(np.sin(2 * np.pi * np.cumsum(f) / sr)) + rng.normal(0, 0.03, n)


def _typing(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    y, start = rng.normal(0, 0.003, n), 0
    while start < n - 400:
        y[start:start + 300] += rng.normal(0, 1, 300) * np.exp(-np.arange(300) / 40)
        start += int(sr * rng.uniform(0.08, 0.4))
    return y


SOUNDS = {"rain": _rain, "wind": _wind, "engine": _engine, "birds": _birds, "siren": _siren, "typing": _typing}


def field(out: Path, tmp: Path, rng: np.random.Generator) -> None:
    i = 0
    for name, make in SOUNDS.items():
        (out / name).mkdir(parents=True, exist_ok=True)
        for j in range(12):
            sr = int(rng.choice([22050, 32000, 44100, 48000]))
            seconds = 120.0 if (name, j) == ("rain", 0) else rng.uniform(1.5, 20)
            y = make(int(sr * seconds), sr, rng)
            y = y / max(1e-9, np.abs(y).max()) * rng.uniform(0.1, 0.95)
            sf.write(tmp / "sound.wav", y.astype(np.float32), sr, subtype="PCM_16")
            encode(tmp / "sound.wav", out / name / f"{name}_{j:02d}", i, tmp)
            i += 1


def make(root: Path) -> None:
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in (("spoken", spoken), ("field", field)):
            out = root / "datasets" / name
            if out.exists():
                sys.exit(f"{out} exists: give another --root")
            build(out, Path(tmp), rng)
            print(f"{out}: {sum(1 for p in out.rglob('*') if p.is_file())} files")


def compare(root: Path, names: list[str]) -> None:
    for name in names:
        folder = root / "results" / name / "clustering"
        labels = pd.read_csv(folder / "labels.csv", keep_default_na=False, dtype={"stem": str, "label": str})
        rows = pd.read_csv(folder / "results.csv")
        stored = pd.read_csv(root / "metadata" / name / "metadata.csv", keep_default_na=False,
                             dtype={"stem": str, "label": str})
        rate = labels.merge(stored[["label", "stem", "sample_rate"]], on=["label", "stem"], how="left")["sample_rate"]
        low = (pd.to_numeric(rate) <= 8000).astype(int).to_numpy()
        print(f"== {name}: {len(labels)} files, {low.sum()} stored at 8 kHz or less")
        print(f"{'row (label-free)':42} {'k':>3} {'NMI labels':>10} {'NMI 8 kHz':>10}")
        for _, row in rows[rows["selected"] == True].iterrows():  # noqa: E712 (the column may be object)
            p = labels[row["id"]]
            print(f"{row['id']:42} {int(row['n_clusters']):3d} {normalized_mutual_info_score(labels['label'], p):10.3f}"
                  f" {normalized_mutual_info_score(low, p):10.3f}{'  pick' if row.get('pick') is True else ''}")
        ok = [i for i in rows.loc[rows["status"] == "ok", "id"] if i in labels]
        to_labels = [normalized_mutual_info_score(labels["label"], labels[i]) for i in ok]
        to_rate = [normalized_mutual_info_score(low, labels[i]) for i in ok]
        print(f"mean over {len(ok)} ok rows: labels {np.mean(to_labels):.3f}, 8 kHz {np.mean(to_rate):.3f}; "
              f"rows with NMI > 0.3 to the 8 kHz split: {sum(v > 0.3 for v in to_rate)}")
        structures = pd.read_csv(folder / "structures.csv", keep_default_na=False)
        print(structures[["structure", "pick", "features", "representative", "n_clusters", "nmi", "follows"]]
              .to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    made = sub.add_parser("make")
    made.add_argument("--root", type=Path, required=True)
    compared = sub.add_parser("compare")
    compared.add_argument("--root", type=Path, required=True)
    compared.add_argument("--sets", nargs="+", required=True)
    args = parser.parse_args()
    make(args.root) if args.command == "make" else compare(args.root, args.sets)


if __name__ == "__main__":
    main()
