"""Autoencoder pre-training speed on CPU: seconds per epoch, to convergence, peak memory.

Trains the stage-05 autoencoder with the config defaults (or the options below) on
3,000 spectrogram-like images prepared as stage 05 prepares them (active region,
per-file peak normalisation, resized to 96×48), on 2 CPU threads, with early stopping,
and prints one Markdown table row per batch size: epochs, median wall and CPU seconds
per epoch, seconds to convergence, why training stopped (``early`` stopping or the
epoch limit ``max``), peak memory. The goal the defaults are chosen for: pre-training
converges by early stopping in under 3 minutes on 2 cores. CPU seconds per epoch
(user + system time of this process) show the work when other processes share the
cores and the wall time is not to be trusted.

Data: ``--data synthetic`` (default) draws 6 families of 128-band dB "mel
spectrograms" of 30–90 frames (harmonic stacks, rising and falling chirps, noise
bursts, click trains, low rumble), with random pitch, timing and level and noise;
``--data fsdd`` computes the mel spectrograms of ../shared/datasets/fsdd (librosa).
The NMI of K-Means (k = number of families/digits) on the embedding against the
family shows that the model learned the structure.

    .venv/bin/python benchmarks/bench_train.py [--batch-sizes 32 64] [--threads 2] [--n 3000]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytorch_lightning as pl
import torch

from audioclust.config import load_config
from audioclust.core.storage import read_json
from audioclust.deep.data import FeaturesDataset
from audioclust.deep.train import embed, train_autoencoder

REPO = Path(__file__).resolve().parents[1]
FSDD = REPO.parent / "shared" / "datasets" / "fsdd" / "recordings"
N_MELS = 128


def synthetic_mels(n: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` dB mel-like arrays of shape (128, 30..90) from 6 families, and their family."""
    rng = np.random.default_rng(seed)
    bands = np.arange(N_MELS)[:, None]
    arrays, families = [], rng.integers(0, 6, size=n)
    for fam in families:
        t = np.arange(int(rng.integers(30, 91)))[None, :]
        length = t.shape[1]
        power = np.zeros((N_MELS, length))
        if fam == 0:  # harmonic stack, partials decaying with order
            f0 = rng.uniform(4, 14)
            for h in range(1, 8):
                power += 0.6 ** h * np.exp(-0.5 * ((bands - h * f0) / 1.2) ** 2)
        elif fam in (1, 2):  # chirp up / down
            a, b = sorted(rng.uniform(10, 110, size=2))
            track = a + (b - a) * t / length if fam == 1 else b - (b - a) * t / length
            power += np.exp(-0.5 * ((bands - track) / 2.0) ** 2)
        elif fam == 3:  # broadband noise burst
            on, off = sorted(rng.integers(0, length, size=2))
            power += rng.uniform(0.2, 1.0, size=(N_MELS, length)) * ((t >= on) & (t <= off + 3))
        elif fam == 4:  # click train: vertical lines
            period = int(rng.integers(4, 12))
            power += (t % period == 0) * np.exp(-bands / rng.uniform(40, 120))
        else:  # low rumble with slow tremolo
            power += np.exp(-bands / rng.uniform(4, 10)) * (1 + 0.5 * np.sin(t / rng.uniform(2, 6)))
        level = rng.uniform(-20, 0)
        db = 10 * np.log10(power + 1e-6) + level + rng.normal(0, 1.5, size=power.shape)
        arrays.append(np.maximum(db, -80).astype(np.float32))
    return arrays, families


def fsdd_mels(n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Mel spectrograms (dB) of the first ``n`` FSDD recordings (sorted), and their digit."""
    import librosa

    files = sorted(FSDD.glob("*.wav"))[:n]
    arrays, digits = [], []
    for path in files:
        y, sr = librosa.load(path, sr=8000)
        mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=512, hop_length=128, n_mels=64)
        arrays.append(librosa.power_to_db(S=mel, ref=1.0, amin=1e-10).astype(np.float32))
        digits.append(int(path.name.split("_")[0]))
    return arrays, np.array(digits)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class EpochTimer(pl.Callback):
    """Wall and CPU time of each training epoch (validation included)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cpu: list[float] = []
        self._start = self._cpu = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._start, self._cpu = time.perf_counter(), cpu_seconds()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.times.append(time.perf_counter() - self._start)
        self.cpu.append(cpu_seconds() - self._cpu)
        print(f"epoch {trainer.current_epoch}: {self.times[-1]:.1f} s, CPU {self.cpu[-1]:.1f} s, "
              f"val_loss {float(trainer.callback_metrics.get('val_loss', float('nan'))):.5f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["synthetic", "fsdd"], default="synthetic")
    parser.add_argument("--n", type=int, default=3000, help="number of images")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="default: the config's batch_size")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="autoencoder config overrides, e.g. --set autoencoder.lr=0.002")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    full = load_config(overrides=[f"autoencoder.num_threads={args.threads}", *args.overrides])
    cfg, images = full.autoencoder, full.images
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    arrays, truth = fsdd_mels(args.n) if args.data == "fsdd" else synthetic_mels(args.n)
    t_make = time.perf_counter() - start
    start = time.perf_counter()
    dataset = FeaturesDataset(arrays, size=cfg.input_size, scale=cfg.scale, trim_db=images.trim_db,
                              per_file=images.per_file.get("mel", "none"))
    t_dataset = time.perf_counter() - start
    del arrays

    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    rows = []
    for batch_size in args.batch_sizes or [cfg.batch_size]:
        run_cfg = dataclasses.replace(cfg, batch_size=batch_size)
        timer = EpochTimer()
        with tempfile.TemporaryDirectory() as tmp:
            result = train_autoencoder(run_cfg.architecture, dataset, run_cfg, seed=0, log_dir=Path(tmp) / "logs",
                                       ckpt_dir=Path(tmp) / "ckpt", callbacks=[timer], progress=False)
            start = time.perf_counter()
            loader = result.datamodule.train_dataloader()
            for _ in loader:  # the data loading alone, one epoch
                pass
            t_load = time.perf_counter() - start
            z = embed(result.module, result.datamodule)
            best = read_json(result.checkpoint.with_suffix(".json"))["best_score"]
            metrics = pd.read_csv(next((Path(tmp) / "logs").rglob("metrics.csv")))
            curve = metrics.groupby("epoch")["val_loss"].mean()
            lr_cols = metrics.filter(regex="^lr-")  # logged at each epoch start, on rows of their own
            lrs = lr_cols.iloc[:, 0].dropna() if lr_cols.shape[1] else None
            print(f"batch {batch_size}: val_loss per epoch " + " ".join(f"{v:.5f}" for v in curve)
                  + "; s per epoch " + " ".join(f"{t:.1f}" for t in timer.times)
                  + ("" if lrs is None else "; lr " + " ".join(f"{v:.2g}" for v in lrs)))
        labels = KMeans(n_clusters=len(np.unique(truth)), n_init=20, random_state=0).fit_predict(z)
        rows.append({
            "batch": batch_size, "threads": args.threads, "epochs": result.epochs,
            "stopped": result.stopped_by, "profile": result.schedule.profile,
            "s/epoch": np.median(timer.times), "CPU s/epoch": np.median(timer.cpu), "load s/epoch": t_load,
            "to convergence s": result.seconds,
            "best val MSE": best, "NMI(KMeans on z)": normalized_mutual_info_score(truth, labels),
            "peak RSS MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        })

    print(f"\n{args.data}: {len(dataset)} images {cfg.input_size[0]}×{cfg.input_size[1]}, "
          f"architecture {cfg.architecture}, latent {cfg.latent_dims[0]}, lr {cfg.lr}, "
          f"schedule {result.schedule}, min_delta {cfg.min_delta}, "
          f"val_fraction {cfg.val_fraction}, num_workers {cfg.num_workers}, trim_db {images.trim_db}, "
          f"per_file {images.per_file.get('mel', 'none')}; "
          f"data made in {t_make:.1f} s, resized and scaled in {t_dataset:.1f} s; "
          f"torch {torch.__version__}, {psutil.cpu_count(logical=True)} logical CPUs, "
          f"load average {psutil.getloadavg()[0]:.1f}\n")
    head = list(rows[0])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
