"""Stage-05 speed: the per-item DataLoader against device-resident batches, and the stage's time split.

Part 1 (default): on the same images (``bench_train.synthetic_mels``, prepared as stage 05
prepares them), once per data path, side by side:

- ``loader``: a ``torch.utils.data.DataLoader`` that collates each batch item by item
  (``autoencoder.num_workers`` workers, pinned memory on CUDA) — the path of data too large
  for the device;
- ``resident``: the images on the training device, batches drawn by a seeded permutation
  of indices (:class:`audioclust.deep.data.DeviceBatches`).

Both paths draw the same batches in the same order, so they train the same model.
Reported per path: median wall and CPU seconds per pre-training epoch (``--epochs``
epochs, no early stopping; CPU seconds show the work when other processes share the
cores), DCEC iterations per second (``--dcec-iter`` iterations, a target update every
``autoencoder.update_interval``, ``tol = 0`` and no floor), the NMI of the DCEC labels against the
families, and on CUDA the GPU utilisation sampled every 0.1 s in a thread during each
training (``torch.cuda.utilization()``, else ``nvidia-smi``): mean and maximum in %.
With ``--repeat`` the paths alternate and the times are medians over the repeats.

Part 2 (``--stage``): stage 05 (``autoencoder.run``) twice on the demo project
(``--per-class`` files per family, mel only, one latent size): the first run's split into
pre-training, DCEC, figures and the rest (embedding, k selection, K-Means, scores, writing),
then the second run with nothing changed (wall seconds; the process's CPU seconds in total;
the pre-training epochs and DCEC iterations behind the times). It times functions by name, so it also runs on an
earlier checkout (``PYTHONPATH=<checkout>/src``).

    .venv/bin/python benchmarks/bench_gpu.py [--n 1000] [--epochs 3] [--dcec-iter 100] [--repeat 1] [--threads 2]
    .venv/bin/python benchmarks/bench_gpu.py --stage [--per-class 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytorch_lightning as pl
import torch

# bench_train (next to this file: the script's folder is on sys.path) makes the images
from bench_train import cpu_seconds, synthetic_mels

from audioclust.config import default_yaml, load_config
from audioclust.deep.data import FeaturesDataset
from audioclust.deep.train import run_dcec, train_autoencoder


class GpuSampler:
    """GPU utilisation (%) every ``interval`` seconds in a thread, between ``start`` and ``stop``; inert without CUDA."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval, self.samples = interval, []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def read() -> float | None:
        try:
            return float(torch.cuda.utilization())  # NVML through pynvml
        except Exception:  # noqa: BLE001 — no pynvml: ask nvidia-smi
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", str(torch.cuda.current_device())], capture_output=True, text=True,
                                     timeout=5, check=True).stdout
                return float(out.split()[0])
            except Exception:  # noqa: BLE001 — no reading: the column stays empty
                return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            value = self.read()
            if value is not None:
                self.samples.append(value)

    def __enter__(self) -> Self:
        if torch.cuda.is_available():
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> str:
        if not self.samples:
            return "n/a"
        return f"{statistics.fmean(self.samples):.0f} / {max(self.samples):.0f}"


class Timer(pl.Callback):
    """Wall and CPU time of each training epoch, and the wall time of the whole fit."""

    def __init__(self) -> None:
        self.epochs: list[float] = []
        self.cpu: list[float] = []
        self.fit = 0.0
        self._epoch = self._cpu = self._fit = 0.0

    def _sync(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._sync()
        self._fit = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._sync()
        self.fit = time.perf_counter() - self._fit

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._sync()
        self._epoch, self._cpu = time.perf_counter(), cpu_seconds()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._sync()
        self.epochs.append(time.perf_counter() - self._epoch)
        self.cpu.append(cpu_seconds() - self._cpu)


def loader_paths(args: argparse.Namespace) -> None:
    from sklearn.metrics import normalized_mutual_info_score

    full = load_config(overrides=[f"autoencoder.num_threads={args.threads}", *args.overrides])
    # a fixed number of epochs: early stopping would end the paths at different times
    cfg = dataclasses.replace(full.autoencoder, max_epochs=args.epochs, patience=args.epochs + 1, min_delta=0.0,
                              max_iter=args.dcec_iter, tol=0.0, tol_files=0)
    torch.set_num_threads(args.threads)
    arrays, truth = synthetic_mels(args.n)
    dataset = FeaturesDataset(arrays, size=cfg.input_size, scale=cfg.scale, trim_db=full.images.trim_db,
                              per_file=full.images.per_file.get("mel", "none"))
    # an earlier checkout has the loader path only
    paths = ["loader", "resident"] if "resident" in inspect.signature(train_autoencoder).parameters else ["loader"]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"{len(dataset)} images {cfg.input_size[0]}×{cfg.input_size[1]}, {cfg.architecture} z{cfg.latent_dims[0]}, "
          f"batch {cfg.batch_size}, num_workers {cfg.num_workers}, {args.threads} threads, device {device}, "
          f"deterministic {getattr(cfg, 'deterministic', 'n/a')}, torch {torch.__version__}\n")
    runs: dict[str, list[dict[str, Any]]] = {path: [] for path in paths}
    for repeat in range(args.repeat):
        # the paths alternate, first one then the other, so a neighbour's load falls on both
        for path in paths if repeat % 2 == 0 else paths[::-1]:
            extra = {} if len(paths) == 1 else {"resident": path == "resident"}
            with tempfile.TemporaryDirectory() as tmp:
                timer, dcec_timer = Timer(), Timer()
                with GpuSampler() as pre_gpu:
                    trained = train_autoencoder(cfg.architecture, dataset, cfg, 0, Path(tmp) / "logs",
                                                Path(tmp) / "ckpt", callbacks=[timer], progress=False, **extra)
                with GpuSampler() as dcec_gpu:
                    result = run_dcec(trained.module, trained.datamodule, len(np.unique(truth)), cfg, 0,
                                      trainer_kwargs={"callbacks": [dcec_timer]}, progress=False)
            steps = int(result.history["iteration"].iloc[-1]) if len(result.history) else 0
            runs[path].append({"s/epoch": statistics.median(timer.epochs), "CPU s/epoch": statistics.median(timer.cpu),
                               "DCEC it/s": steps / dcec_timer.fit if dcec_timer.fit else float("nan"),
                               "DCEC it": steps, "stopped by": result.stopped_by,
                               "DCEC NMI": normalized_mutual_info_score(truth, result.labels),
                               "GPU % pre (mean / max)": pre_gpu.summary(),
                               "GPU % DCEC (mean / max)": dcec_gpu.summary()})
    rows = []
    for path, results in runs.items():  # medians over the repeats; the rest from the last
        rows.append({"path": path, **results[-1], "epochs": args.epochs, "repeats": len(results),
                     **{key: statistics.median(r[key] for r in results) for key in ("s/epoch", "CPU s/epoch",
                                                                                      "DCEC it/s")}})
    table(rows)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end (other processes on the cores make wall times vary)")


def stage_split(args: argparse.Namespace) -> None:
    from audioclust.cli import run_stage
    from audioclust.core.paths import ProjectPaths
    from audioclust.stages import autoencoder
    from audioclust.stages.prepare import generate_demo

    root = Path(tempfile.mkdtemp(prefix="bench_stage05_"))
    try:
        (root / "configs").mkdir()
        # the defaults of the checkout being measured
        (root / "configs" / "default.yaml").write_text(default_yaml(), encoding="utf-8")
        paths = ProjectPaths(root, "demo")
        generate_demo(paths.raw, n_per_class=args.per_class, seconds=1.0)
        overrides = {"features.kinds": ["mel"], "views.features": ["mel"], "parallel.n_jobs": 1,
                     "autoencoder.features": ["mel"],
                     "autoencoder.latent_dims": [10], "autoencoder.num_threads": args.threads}
        cfg = load_config(root, "demo", overrides=overrides)
        for stage in ("metadata", "transform", "extract"):
            run_stage(stage, cfg, paths)

        spent: dict[str, float] = {}

        def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(*a: Any, **k: Any) -> Any:
                start = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
            return wrapper

        originals = {name: getattr(autoencoder, name) for name in ("train_autoencoder", "run_dcec", "_model_figures")}
        for label, name in (("pre-training", "train_autoencoder"), ("DCEC", "run_dcec"), ("figures", "_model_figures")):
            setattr(autoencoder, name, timed(label, originals[name]))
        rows = []
        try:
            for run in ("first run", "second run, unchanged"):
                spent.clear()
                start, cpu = time.perf_counter(), cpu_seconds()
                results = autoencoder.run(cfg, paths)
                total = time.perf_counter() - start
                parts = {k: spent.get(k, 0.0) for k in ("pre-training", "DCEC", "figures")}
                dcec = results.set_index("stage").loc["dcec"]
                rows.append({"run": run, **parts, "rest": total - sum(parts.values()), "total": total,
                             "total CPU s": cpu_seconds() - cpu, "epochs": int(dcec["epochs"]),
                             "DCEC it": f"{dcec['dcec_iterations']:.0f} ({dcec['stopped_by']})"})
        finally:
            for name, fn in originals.items():
                setattr(autoencoder, name, fn)
        figures = sorted((paths.results / "autoencoder" / "figures").glob("*"))
        tsne = getattr(cfg.autoencoder, "tsne", cfg.cluster.tsne)  # an earlier checkout: cluster.tsne
        print(f"\nstage 05 on {7 * args.per_class} demo files (mel, latent 10, k {cfg.cluster.k}, t-SNE "
              f"{tsne}), {args.threads} threads, torch {torch.__version__}; {len(figures)} figure files: "
              + ", ".join(sorted({p.suffix for p in figures})) + "\n")
        table(rows)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def table(rows: list[dict[str, Any]]) -> None:
    head = list(rows[0])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", action="store_true", help="part 2: stage 05's time split instead of the loaders")
    parser.add_argument("--n", type=int, default=1000, help="part 1: number of images")
    parser.add_argument("--epochs", type=int, default=3, help="part 1: pre-training epochs per path")
    parser.add_argument("--dcec-iter", type=int, default=100, help="part 1: DCEC iterations per path")
    parser.add_argument("--repeat", type=int, default=1, help="part 1: runs per path, alternating (medians)")
    parser.add_argument("--per-class", type=int, default=20, help="part 2: demo files per family (7 families)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="part 1: config overrides, e.g. --set autoencoder.batch_size=128")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    stage_split(args) if args.stage else loader_paths(args)


if __name__ == "__main__":
    main()
