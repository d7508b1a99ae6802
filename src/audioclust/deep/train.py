"""Autoencoder pre-training and the DCEC clustering stage, in PyTorch Lightning.

Pieces, in the order the stage-05 runner uses them:

1. :class:`FeaturesDataset` — feature arrays (or NPY/PNG files) resized to fixed
   (time, frequency) images and scaled with ONE dataset-wide rule.
2. :class:`FeaturesDataModule` — a seeded train/validation split (validation only
   monitors training) and :meth:`~FeaturesDataModule.full_dataloader`, every sample in order;
   batches are drawn on the training device when the images fit there.
3. :func:`train_autoencoder` — reconstruction pre-training of an architecture of
   :mod:`audioclust.deep.components` (:class:`AutoencoderModule`), or reuse of its checkpoint
   when data, parameters, seed, training device (a CPU's thread count with it) and ``deterministic`` are unchanged.
4. :func:`embed` — the embedding of every sample, in order.
5. :func:`run_dcec` — Deep Convolutional Embedded Clustering (Guo, Liu, Zhu & Yin,
   ICONIP 2017): K-Means centres on the embedding, then joint training of the
   autoencoder and a :class:`ClusteringLayer` on MSE + γ·KL(P‖Q) (:class:`DCECModule`).

Reproducibility: with ``autoencoder.deterministic`` (default) both trainings run with
Lightning's ``deterministic=True`` and without TF32 (:func:`torch_flags`), so the same seed on
the same device (on a CPU, with the same number of threads) gives bitwise-identical weights; the
device and the CPU's thread count enter the checkpoint hash, so a model trained on a GPU is not taken
for a CPU one, nor one trained on two threads for a run on one.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
)
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

from audioclust.core.cache import stable_hash
from audioclust.core.errors import AudioclustError, ConfigError
from audioclust.core.progress import Progress
from audioclust.core.storage import pid_suffix, read_json, write_json
from audioclust.deep.data import FeaturesDataModule, FeaturesDataset, fits_on
from audioclust.deep.dcec import HISTORY_COLUMNS, DCECModule, DCECResult
from audioclust.deep.reconstruction import AutoencoderModule
from audioclust.deep.schedule import Schedule, dcec_batches, resolve_schedule

log = logging.getLogger(__name__)


# keys of the autoencoder config section that do not change pre-training (DCEC-stage, the embedding's
# clustering, runner-only, figure or speed-only keys) or whose effect is already in the data fingerprint
# (the input preparation), the profile, whose effect is in the resolved schedule, and num_threads, whose resolved
# count enters on a CPU only: they are left out of the checkpoint hash
_NOT_PRETRAINING = frozenset({
    "enabled", "architecture", "embedding_architecture", "features", "source", "latent_dims", "num_workers",
    "num_threads", "profile",
    "update_interval", "gamma", "dcec_lr", "tol", "tol_files", "max_iter", "alpha", "kmeans_n_init", "algorithms",
    "stability_resamples", "input_size", "scale", "trim_db", "per_file", "tsne",
})

#: samples per forward pass when embedding, scoring or computing DCEC's Q over every sample
EVAL_BATCH = 256


@dataclass
class TrainResult:
    """What :func:`train_autoencoder` returns.

    ``epochs``, ``seconds``, ``device`` (:func:`device_name`) and ``stopped_by`` (``early stopping`` or
    ``max_epochs``) are those of the run that trained the checkpoint, also when it was reused
    (``reused=True``; no training happened in this call then); ``schedule`` is the resolved one.
    """

    module: AutoencoderModule
    datamodule: FeaturesDataModule
    reused: bool
    epochs: int
    seconds: float
    checkpoint: Path
    params_hash: str
    device: str
    schedule: Schedule
    stopped_by: str


def pretraining_hash(dataset: FeaturesDataset, architecture: str, latent_dim: int, cfg: Any, seed: int,
                     extra: Any = None, *, device: str, schedule: Schedule, cpu_threads: int | None = None) -> str:
    """12-hex key of a pre-trained model: data fingerprint, architecture, latent size, the
    pre-training keys of the ``autoencoder`` config section (``deterministic`` among them) with the
    resolved ``schedule`` in place of its null keys, seed, ``extra``, the training ``device``
    (:func:`device_name`: ``cpu``, ``mps``, ``cuda (<name>)``) and, on a CPU, the number of torch threads.

    The same seed gives other weights on another kind of device, and on a CPU with another number of
    threads (the order of the floating-point sums changes), so a checkpoint trained under one is never
    reused under another."""
    section = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_PRETRAINING}
    section.update(max_epochs=schedule.max_epochs, patience=schedule.patience, lr_patience=schedule.lr_patience)
    payload = {"data": dataset.fingerprint(), "architecture": architecture, "latent_dim": int(latent_dim),
               "autoencoder": section, "seed": int(seed), "extra": extra, "device": device}
    if cpu_threads is not None:
        payload["cpu_threads"] = int(cpu_threads)
    return stable_hash(payload)


def training_device(accelerator: str = "auto") -> torch.device:
    """The one device Lightning's ``accelerator`` trains on: ``auto`` and ``gpu`` pick CUDA, then MPS, then
    (``auto`` only) the CPU, as Lightning does; ``cpu``, ``cuda``, ``mps`` name it."""
    if accelerator in ("auto", "gpu"):
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        if accelerator == "gpu":
            raise ConfigError("accelerator 'gpu' was asked for, but neither CUDA nor MPS is available")
        return torch.device("cpu")
    return torch.device("cuda", 0) if accelerator == "cuda" else torch.device(accelerator)


def device_name(device: torch.device | str) -> str:
    """A training device in words, for the checkpoint hash and the log: ``cpu``, ``mps`` or ``cuda (<GPU name>)``."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def _trainer_device(kwargs: dict[str, Any]) -> torch.device:
    """The device of a Trainer built from ``kwargs``; its ``accelerator`` is set to it, so both agree."""
    device = training_device(str(kwargs.get("accelerator", "auto")))
    kwargs["accelerator"] = device.type
    return device


@contextlib.contextmanager
def torch_flags(deterministic: bool, device: torch.device) -> Iterator[None]:
    """The global torch flags of one training, restored after (Lightning's ``Trainer(deterministic=...)``
    sets some of them and leaves them set).

    ``deterministic``: no TF32 in matmuls and convolutions (it rounds inputs to 10 bits of mantissa,
    and which kernels use it is not fixed), and on CUDA ``CUBLAS_WORKSPACE_CONFIG=:4096:8``, which
    torch requires for deterministic cuBLAS; the variable is left set, as cuBLAS reads it when its
    handle is created. Otherwise TF32 is allowed (the Trainer then gets ``benchmark=True`` on CUDA).
    """
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if deterministic and device.type == "cuda":
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    torch.backends.cuda.matmul.allow_tf32 = not deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark = saved[2]
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[3], saved[4]


def _determinism_kwargs(deterministic: bool, device: torch.device) -> dict[str, Any]:
    """The Trainer's ``deterministic`` and ``benchmark`` (cuDNN autotuning, only where cuDNN runs)."""
    return {"deterministic": bool(deterministic), "benchmark": not deterministic if device.type == "cuda" else None}


def thread_count(n: int = 0) -> int:
    """The torch threads ``num_threads = n`` gives: ``n``, at most the cores this process may use (0: all of them)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return available if n <= 0 else min(n, available)


@contextlib.contextmanager
def cpu_threads(n: int = 0) -> Iterator[int]:
    """Run the block with ``n`` torch threads (0: every core this process may use); restored after."""
    previous = torch.get_num_threads()
    wanted = thread_count(n)
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(previous)


#: Lightning's loggers, whose INFO lines (GPU available, LOCAL_RANK, Tip: ..., Seed set) repeat at every
#: training what a run of the pipeline does not need
_LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric")


def verbose() -> bool:
    """Whether Lightning may speak for itself: ``-v``/``--verbose`` (DEBUG logging of audioclust)."""
    return log.isEnabledFor(logging.DEBUG)


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Hide Lightning's advice that does not apply here (in-memory data needs no workers) and, unless
    :func:`verbose`, its INFO lines; the levels are restored after."""
    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    if not verbose():
        for logger in loggers:
            logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*number of training batches.*log_every_n_steps.*")
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
            # a retraining (recompute, or a checkpoint set aside) replaces the logs of its hash
            warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class _Progress(pl.Callback):
    """A training's progress in the console's form (:mod:`audioclust.core.progress`), in place of
    Lightning's bar: epochs of a pre-training, or the batches (iterations) of DCEC."""

    def __init__(self, desc: str, unit: str, total: int) -> None:
        self.desc, self.unit, self.total = desc, unit, total
        self.bar: Progress | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the caller logs the closing line (epochs, time, loss)
        self.bar = Progress(self.total, self.desc, self.unit, final=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.bar is not None and self.unit == "epoch":
            self.bar.update()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.bar is not None and self.unit == "iteration":
            self.bar.update()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.bar is not None:
            self.bar.close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self.bar is not None:
            self.bar.close(complete=False)


def _progress_kwargs(progress: bool | None, desc: str, unit: str, total: int) -> dict[str, Any]:
    """The Trainer's progress: Lightning's bar when ``progress`` (None: when :func:`verbose`), else :class:`_Progress`."""
    if verbose() if progress is None else progress:
        return {"enable_progress_bar": True, "callbacks": []}
    return {"enable_progress_bar": False, "callbacks": [_Progress(desc, unit, total)]}


def train_autoencoder(
    model_name: str,
    data: FeaturesDataset | Sequence[np.ndarray | str | Path],
    cfg: Any,
    seed: int,
    log_dir: str | Path,
    ckpt_dir: str | Path,
    latent_dim: int | None = None,
    keys: Sequence[str] | None = None,
    trim_db: float | None = None,
    per_file: str = "none",
    trainer_kwargs: dict[str, Any] | None = None,
    callbacks: Sequence[pl.Callback] = (),
    progress: bool | None = None,
    resident: bool | None = None,
    recompute: bool = False,
) -> TrainResult:
    """Pre-train an autoencoder on reconstruction, or reuse its checkpoint.

    The checkpoint ``<ckpt_dir>/<model>_z<latent>_s<seed>_<hash>.ckpt`` is named by
    :func:`pretraining_hash` (data fingerprint + pre-training config keys + resolved schedule + seed
    + ``trainer_kwargs`` + training device, with the thread count on a CPU) and accompanied by a JSON
    marker written last. It is reused only when both exist under this hash; otherwise training starts afresh.
    ``cfg.deterministic`` trains under :func:`torch_flags` with Lightning's ``deterministic``.

    The schedule (:func:`audioclust.deep.schedule.resolve_schedule`): ``cfg.profile`` by the training
    device fills ``max_epochs``, ``patience`` and ``lr_patience`` where they are null. Training stops
    at ``max_epochs`` or, with ``patience`` > 0, when the validation loss has not improved by
    ``cfg.min_delta`` for ``patience`` epochs; the weights of the best validation loss are kept.

    Parameters
    ----------
    model_name : ``dcec``, ``conv4`` or ``vae``.
    data : a :class:`FeaturesDataset`, or arrays / paths to build one with ``cfg.input_size``,
        ``cfg.scale``, ``trim_db`` and ``per_file`` (and ``keys``).
    cfg : the ``autoencoder`` config section (:class:`audioclust.config.AutoencoderConfig`).
    seed : feeds ``seed_everything``, the split and the shuffling.
    log_dir : CSV and TensorBoard logs go to ``<log_dir>/<run name>/<hash>/``.
    ckpt_dir : folder of checkpoints.
    latent_dim : size of the embedding; default ``cfg.latent_dims[0]``.
    keys : sample names for the data fingerprint when ``data`` is not a dataset (ignored otherwise).
    trim_db, per_file : the images' active-region threshold and per-file normalisation when ``data``
        is not a dataset (the ``images`` config section).
    trainer_kwargs : extra ``pl.Trainer`` arguments (e.g. ``fast_dev_run=True``); part of the hash.
    callbacks : extra Lightning callbacks (e.g. timers), added to early stopping and checkpointing;
        not part of the hash, so they must not change the training.
    progress : show Lightning's progress bar; False: the console's progress (:mod:`audioclust.core.progress`);
        None: Lightning's when ``-v``/``--verbose`` (:func:`verbose`).
    resident : draw the batches from a copy of the images on the training device; False: a DataLoader
        (the same batches); None: when the images fit there (:class:`FeaturesDataModule`).
    recompute : train even when the checkpoint exists (it is replaced).
    """
    dataset = data if isinstance(data, FeaturesDataset) else FeaturesDataset(
        data, size=cfg.input_size, scale=cfg.scale, keys=keys, trim_db=trim_db, per_file=per_file)
    latent_dim = int(cfg.latent_dims[0] if latent_dim is None else latent_dim)
    dm = FeaturesDataModule(dataset, batch_size=cfg.batch_size, val_fraction=cfg.val_fraction,
                            num_workers=cfg.num_workers, seed=seed, resident=resident)
    extra = dict(trainer_kwargs or {})
    device = _trainer_device(extra)
    trained_on = device_name(device)
    schedule = resolve_schedule(profile=cfg.profile, device=device, n_train=len(dm.train_indices),
                                max_epochs=cfg.max_epochs, patience=cfg.patience, lr_patience=cfg.lr_patience)
    threads = thread_count(cfg.num_threads) if device.type == "cpu" else None
    params_hash = pretraining_hash(dataset, model_name, latent_dim, cfg, seed, extra=trainer_kwargs or None,
                                   device=trained_on, schedule=schedule, cpu_threads=threads)
    run_name = f"{model_name}_z{latent_dim}_s{seed}"
    ckpt_dir = Path(ckpt_dir)
    final = ckpt_dir / f"{run_name}_{params_hash}.ckpt"
    marker = final.with_suffix(".json")

    done = read_json(marker)
    if not recompute and final.is_file() and isinstance(done, dict) and done.get("params_hash") == params_hash:
        module = _load_checkpoint(final)
        if module is not None:
            log.info("reusing %s (trained on %s: %d epochs in %.1f s)", final.name, done["device"], done["epochs"],
                     done["seconds"])
            return TrainResult(module, dm, True, int(done["epochs"]), float(done["seconds"]), final, params_hash,
                               done["device"], schedule, str(done.get("stopped_by", "")))

    monitor = "val_loss" if dm.has_validation else "train_loss"
    staging = ckpt_dir / f"{run_name}_{params_hash}{pid_suffix()}"
    shutil.rmtree(staging, ignore_errors=True)
    checkpoint = ModelCheckpoint(dirpath=staging, filename="best", monitor=monitor, mode="min", save_top_k=1)
    shown = _progress_kwargs(progress, f"training {run_name}", "epoch", schedule.max_epochs)
    stopping = ([EarlyStopping(monitor=monitor, mode="min", patience=schedule.patience, min_delta=cfg.min_delta)]
                if schedule.patience > 0 else [])
    kwargs: dict[str, Any] = dict(
        max_epochs=schedule.max_epochs, devices=1,
        callbacks=[*stopping, checkpoint, LearningRateMonitor(logging_interval="epoch"), *shown["callbacks"],
                   *callbacks],
        logger=[CSVLogger(log_dir, name=run_name, version=params_hash),
                TensorBoardLogger(log_dir, name=run_name, version=params_hash)],
        log_every_n_steps=1, enable_progress_bar=shown["enable_progress_bar"], enable_model_summary=False,
        **_determinism_kwargs(cfg.deterministic, device),
    )
    if not dm.has_validation:
        kwargs["limit_val_batches"] = 0
    kwargs.update(extra)
    log.debug("training %s on %d samples (%d for validation) on %s, %s, %s profile: at most %d epochs, patience %d, "
              "LR patience %d", run_name, len(dataset), len(dm.val_indices), trained_on, final.name, schedule.profile,
              schedule.max_epochs, schedule.patience, schedule.lr_patience)
    # Lightning speaks when seeding, building the trainer, fitting and saving
    with _quiet_lightning(), torch_flags(cfg.deterministic, device):
        pl.seed_everything(seed, workers=True)
        module = AutoencoderModule(model_name, dataset.input_shape, latent_dim, lr=cfg.lr, beta=cfg.beta,
                                   lr_factor=cfg.lr_factor, lr_patience=schedule.lr_patience, monitor=monitor,
                                   loss=cfg.loss)
        module.model.init_from_training(dataset.images[dm.train_indices])
        trainer = pl.Trainer(**kwargs)
        start = time.perf_counter()
        with cpu_threads(cfg.num_threads):
            trainer.fit(module, datamodule=dm)
        seconds = time.perf_counter() - start
        if trainer.interrupted:
            raise AudioclustError(f"training of {run_name} was interrupted; run the stage again to retrain")
        epochs = int(trainer.current_epoch)
        stopped_by = "early stopping" if stopping and stopping[0].stopped_epoch > 0 else "max_epochs"
        if checkpoint.best_model_path:
            best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
            module.load_state_dict(best["state_dict"])
        trainer.save_checkpoint(staging / "final.ckpt")
    os.replace(staging / "final.ckpt", final)
    shutil.rmtree(staging, ignore_errors=True)
    best_score = checkpoint.best_model_score
    write_json(marker, {"params_hash": params_hash, "architecture": model_name, "latent_dim": latent_dim,
                        "seed": seed, "epochs": epochs, "seconds": round(seconds, 3), "monitor": monitor,
                        "best_score": None if best_score is None else float(best_score),
                        "n_samples": len(dataset), "data_fingerprint": dataset.fingerprint(),
                        "device": trained_on, "cpu_threads": threads, "deterministic": bool(cfg.deterministic),
                        "schedule": dataclasses.asdict(schedule), "stopped_by": stopped_by})
    log.info("trained %s on %d samples (%d for validation) on %s: %d of at most %d epochs (%s profile, stopped by "
             "%s) in %.1f s, best %s %s", run_name, len(dataset), len(dm.val_indices), trained_on, epochs,
             schedule.max_epochs, schedule.profile, stopped_by, seconds, monitor,
             "n/a" if best_score is None else f"{float(best_score):.5f}")
    module.cpu().eval()
    return TrainResult(module, dm, False, epochs, seconds, final, params_hash, trained_on, schedule, stopped_by)


def _load_checkpoint(path: Path) -> AutoencoderModule | None:
    """The module saved at ``path``; None, with the file set aside as ``<name>.damaged``, when it cannot be read.

    A checkpoint cut short (a full disk, a copy that stopped) must cost a retraining, not the stage.
    """
    try:
        module = AutoencoderModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — torch raises RuntimeError, EOFError, UnpicklingError, KeyError ...
        aside = path.with_name(path.name + ".damaged")
        os.replace(path, aside)
        log.warning("checkpoint %s cannot be read (%s: %s); set aside as %s, training again", path.name,
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "", aside.name)
        return None
    return module.eval()


def _all_images(data: FeaturesDataModule | FeaturesDataset, device: torch.device) -> torch.Tensor:
    """Every image, on ``device`` when it holds them (the copy the batches use), else the CPU tensor."""
    if isinstance(data, FeaturesDataModule):
        return data.dataset.images_on(device) if data.is_resident(device) else data.dataset.images
    return data.images_on(device) if data.held_on(device) or fits_on(device, data.images.nbytes) else data.images


@torch.no_grad()
def embed(model: nn.Module, data: FeaturesDataModule | FeaturesDataset | DataLoader,
          batch_size: int = EVAL_BATCH) -> np.ndarray:
    """The embedding of every sample, in dataset order, computed on ``model``'s device.

    Parameters
    ----------
    model : anything with ``encode(x)`` ((N, 1, T, F) → (N, latent_dim)): a model of
        :mod:`audioclust.deep.components`, :class:`AutoencoderModule` or :class:`DCECModule`.
    data : a datamodule or a dataset (their images, in chunks of ``batch_size``), or an in-order
        loader of ``(x, index)`` batches.
    batch_size : samples per forward pass for a datamodule or a dataset.

    Returns
    -------
    ndarray of shape (n_samples, latent_dim), float32. The VAE gives its mean.
    """
    device = next(model.parameters()).device
    if isinstance(data, (FeaturesDataModule, FeaturesDataset)):
        batches: Iterable[torch.Tensor] = _all_images(data, device).split(batch_size)
    else:
        batches = (x for x, _ in data)
    was_training = model.training
    model.eval()
    try:
        z = torch.cat([model.encode(x.to(device, non_blocking=True)) for x in batches])
    finally:
        model.train(was_training)
    return z.float().cpu().numpy()


def run_dcec(
    autoencoder: nn.Module,
    datamodule: FeaturesDataModule,
    n_clusters: int,
    cfg: Any,
    seed: int,
    log_dir: str | Path | None = None,
    trainer_kwargs: dict[str, Any] | None = None,
    progress: bool | None = None,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> DCECResult:
    """The DCEC clustering stage on every sample of ``datamodule``.

    1. Embed every sample with a copy of ``autoencoder`` (the original is left untouched)
       and run K-Means (``n_init = cfg.kmeans_n_init``, ``random_state = seed``), unless
       ``start`` gives that K-Means' centres and labels already.
    2. Train :class:`DCECModule` from those centres on shuffled batches of every sample
       until fewer than ``cfg.tol`` of labels (or at most ``cfg.tol_files`` labels) change between target updates, an update
       leaves a cluster empty (the last state with K clusters is restored), or
       ``cfg.max_iter`` batches (null: the profile's for ``n`` samples, :func:`audioclust.deep.schedule.dcec_batches`).
    3. Compute the final Q, labels and embedding over every sample.

    Training runs on the device Lightning chooses (``trainer_kwargs["accelerator"]``, default
    ``auto``), with the batches and the samples for Q on it when they fit
    (:class:`FeaturesDataModule`), under :func:`torch_flags` with ``cfg.deterministic``.

    Parameters
    ----------
    autoencoder : a pre-trained model of :mod:`audioclust.deep.components`, or an :class:`AutoencoderModule`.
    datamodule : the data (its ``full_dataloader``; the shuffling of DCEC batches is seeded
        by the datamodule's own seed).
    n_clusters : K, at least 2 and at most the number of samples.
    cfg : the ``autoencoder`` config section (``gamma``, ``dcec_lr``, ``update_interval``, ``tol``, ``tol_files``,
        ``max_iter`` with ``profile``, ``alpha``, ``kmeans_n_init``, ``num_threads``, ``deterministic``).
    seed : feeds ``seed_everything``, K-Means and the shuffling.
    log_dir : CSV logs (the losses and label change of each target update) go to
        ``<log_dir>/dcec_k<K>_s<seed>/``; None: no logs.
    trainer_kwargs : extra ``pl.Trainer`` arguments.
    progress : show Lightning's progress bar; False: the console's progress (:mod:`audioclust.core.progress`);
        None: Lightning's when ``-v``/``--verbose`` (:func:`verbose`).
    start : ``(centres, labels)`` of shape (n_clusters, latent_dim) and (n_samples,): that seeded K-Means on
        :func:`embed` of ``autoencoder`` over ``datamodule``, already fitted (or kept from an earlier run), so it
        need not run again; None: fitted here.
    """
    from sklearn.cluster import KMeans

    n = len(datamodule.dataset)
    if not 2 <= n_clusters <= n:
        raise ConfigError(f"DCEC needs 2 <= n_clusters <= n_samples ({n}), got {n_clusters}")
    kwargs: dict[str, Any] = dict(
        max_epochs=-1, devices=1,
        logger=CSVLogger(log_dir, name=f"dcec_k{n_clusters}_s{seed}") if log_dir is not None else False,
        enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
    )
    kwargs.update(trainer_kwargs or {})
    device = _trainer_device(kwargs)
    # the batch limit of the device's profile; trainer_kwargs still win over it and over the progress display
    max_iter = dcec_batches(profile=cfg.profile, device=device, max_iter=cfg.max_iter, n_samples=n,
                            batch_size=getattr(datamodule, "batch_size", None))
    kwargs = {"max_steps": max_iter, **_progress_kwargs(progress, f"DCEC k={n_clusters}", "iteration", max_iter),
              **kwargs}
    kwargs.update({k: v for k, v in _determinism_kwargs(cfg.deterministic, device).items() if k not in kwargs})
    model = copy.deepcopy(autoencoder.model if isinstance(autoencoder, AutoencoderModule) else autoencoder)
    model.to(device).train()
    began = time.perf_counter()
    with cpu_threads(cfg.num_threads), _quiet_lightning(), torch_flags(cfg.deterministic, device):
        pl.seed_everything(seed, workers=True)
        if start is None:
            kmeans = KMeans(n_clusters=n_clusters, n_init=cfg.kmeans_n_init, random_state=seed).fit(
                embed(model, datamodule))
            start = (kmeans.cluster_centers_, kmeans.labels_)
        centers, initial_labels = start
        module = DCECModule(model, centers, _all_images(datamodule, device), initial_labels,
                            gamma=cfg.gamma, lr=cfg.dcec_lr, update_interval=cfg.update_interval, tol=cfg.tol,
                            tol_files=cfg.tol_files, alpha=cfg.alpha, eval_batch_size=EVAL_BATCH)
        trainer = pl.Trainer(**kwargs)
        trainer.fit(module, train_dataloaders=datamodule.full_dataloader(shuffle=True, device=device))
        module.to(device)  # Lightning's teardown moved it to the CPU; the last pass runs where the data is
        if module.stopped_by == "max_iter":
            module.update_targets()  # the final labels and their change since the last update
            if module.collapsed:
                module.restore_last_full()
                module.stopped_by = "collapse"
        z, q = module.embed_all()
        final_z, q = z.float().cpu().numpy(), q.cpu()
        module.cpu()
        for logger in trainer.loggers:
            logger.save()  # the final update's row
    seconds = time.perf_counter() - began
    history = pd.DataFrame(module.history, columns=HISTORY_COLUMNS)
    log.info("DCEC k=%d: stopped by %s after %d iterations (%.1f s); last label change %.4f%% (%d of %d files)",
             n_clusters, module.stopped_by, trainer.global_step, seconds, 100 * history["delta_label"].iloc[-1],
             module.changed, n)
    labels = q.argmax(dim=1).numpy()
    if len(np.unique(labels)) < n_clusters:
        log.warning("DCEC k=%d: only %d clusters are non-empty (a weakly trained autoencoder gives near-uniform "
                    "soft assignments); train longer or check the embedding", n_clusters, len(np.unique(labels)))
    iterations = trainer.global_step if module.restored_iteration is None else module.restored_iteration
    return DCECResult(labels=labels, q=q.numpy(), embedding=final_z,
                      kmeans_labels=np.asarray(initial_labels), history=history, stopped_by=module.stopped_by,
                      iterations=int(iterations), seconds=seconds, module=module)


@torch.no_grad()
def reconstruction_mse(model: nn.Module, dataset: FeaturesDataset, batch_size: int = EVAL_BATCH) -> float:
    """Mean squared error per pixel of ``model``'s reconstructions of every image of ``dataset``.

    Parameters
    ----------
    model : a model of :mod:`audioclust.deep.components` (``forward(x)[0]`` is the reconstruction;
        evaluated in eval mode on its device, so the VAE decodes its mean).
    dataset : images of shape (n_samples, 1, T, F).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = []
    try:
        for x in _all_images(dataset, device).split(batch_size):
            x = x.to(device, non_blocking=True)
            sums.append(torch.sum((model(x)[0] - x) ** 2))
    finally:
        model.train(was_training)
    # one read-back, added up in float64
    return float(torch.stack(sums).cpu().double().sum()) / dataset.images.numel()


@torch.no_grad()
def _reconstruct(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return model(images.to(next(model.parameters()).device))[0].cpu()
    finally:
        model.train(was_training)


__all__ = ['EVAL_BATCH', 'TrainResult', 'cpu_threads', 'device_name', 'embed', 'pretraining_hash', 'reconstruction_mse',
           'run_dcec', 'thread_count', 'torch_flags', 'train_autoencoder', 'training_device']
