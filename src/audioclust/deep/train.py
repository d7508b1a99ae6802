"""Autoencoder pre-training and the DCEC clustering stage, in PyTorch Lightning.

Pieces, in the order the stage-05 runner uses them:

1. :class:`FeaturesDataset` — feature arrays (or NPY/PNG files) resized to fixed
   (time, frequency) images and scaled with ONE dataset-wide rule.
2. :class:`FeaturesDataModule` — a seeded train/validation split (validation only
   monitors training) and :meth:`~FeaturesDataModule.full_dataloader`, every sample in order.
3. :func:`train_autoencoder` — reconstruction pre-training of an architecture of
   :mod:`audioclust.deep.components` (:class:`AutoencoderModule`), or reuse of its checkpoint
   when data, parameters and seed are unchanged.
4. :func:`embed` — the embedding of every sample, in order.
5. :func:`run_dcec` — Deep Convolutional Embedded Clustering (Guo, Liu, Zhu & Yin,
   ICONIP 2017): K-Means centres on the embedding, then joint training of the
   autoencoder and a :class:`ClusteringLayer` on MSE + γ·KL(P‖Q) (:class:`DCECModule`).
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
from typing import Any, Iterator, Sequence

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
from audioclust.deep.data import FeaturesDataModule, FeaturesDataset
from audioclust.deep.dcec import HISTORY_COLUMNS, DCECModule, DCECResult
from audioclust.deep.reconstruction import AutoencoderModule

log = logging.getLogger(__name__)


# keys of the autoencoder config section that do not change pre-training (DCEC-stage,
# runner-only or speed-only keys) or whose effect is already in the data fingerprint
# (the input preparation): they are left out of the checkpoint hash
_NOT_PRETRAINING = frozenset({
    "enabled", "architecture", "features", "source", "latent_dims", "num_workers", "num_threads",
    "update_interval", "gamma", "dcec_lr", "tol", "max_iter", "alpha", "kmeans_n_init",
    "input_size", "scale", "trim_db", "per_file",
})


@dataclass
class TrainResult:
    """What :func:`train_autoencoder` returns.

    ``epochs`` and ``seconds`` are those of the run that trained the checkpoint, also
    when it was reused (``reused=True``; no training happened in this call then).
    """

    module: AutoencoderModule
    datamodule: FeaturesDataModule
    reused: bool
    epochs: int
    seconds: float
    checkpoint: Path
    params_hash: str


def pretraining_hash(dataset: FeaturesDataset, architecture: str, latent_dim: int, cfg: Any, seed: int,
                     extra: Any = None) -> str:
    """12-hex key of a pre-trained model: data fingerprint, architecture, latent size, the
    pre-training keys of the ``autoencoder`` config section, seed and ``extra``."""
    section = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_PRETRAINING}
    payload = {"data": dataset.fingerprint(), "architecture": architecture, "latent_dim": int(latent_dim),
               "autoencoder": section, "seed": int(seed), "extra": extra}
    return stable_hash(payload)


@contextlib.contextmanager
def cpu_threads(n: int = 0) -> Iterator[int]:
    """Run the block with ``n`` torch threads (0: every core this process may use); restored after."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    previous = torch.get_num_threads()
    wanted = available if n <= 0 else min(n, available)
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
) -> TrainResult:
    """Pre-train an autoencoder on reconstruction, or reuse its checkpoint.

    The checkpoint ``<ckpt_dir>/<model>_z<latent>_s<seed>_<hash>.ckpt`` is named by
    :func:`pretraining_hash` (data fingerprint + pre-training config keys + seed +
    ``trainer_kwargs``) and accompanied by a JSON marker written last. It is reused only
    when both exist under this hash; otherwise training starts afresh.

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
    """
    dataset = data if isinstance(data, FeaturesDataset) else FeaturesDataset(
        data, size=cfg.input_size, scale=cfg.scale, keys=keys, trim_db=trim_db, per_file=per_file)
    latent_dim = int(cfg.latent_dims[0] if latent_dim is None else latent_dim)
    dm = FeaturesDataModule(dataset, batch_size=cfg.batch_size, val_fraction=cfg.val_fraction,
                            num_workers=cfg.num_workers, seed=seed)
    params_hash = pretraining_hash(dataset, model_name, latent_dim, cfg, seed, extra=trainer_kwargs or None)
    run_name = f"{model_name}_z{latent_dim}_s{seed}"
    ckpt_dir = Path(ckpt_dir)
    final = ckpt_dir / f"{run_name}_{params_hash}.ckpt"
    marker = final.with_suffix(".json")

    done = read_json(marker)
    if final.is_file() and isinstance(done, dict) and done.get("params_hash") == params_hash:
        module = _load_checkpoint(final)
        if module is not None:
            log.info("reusing %s (trained %d epochs in %.1f s)", final.name, done["epochs"], done["seconds"])
            return TrainResult(module, dm, True, int(done["epochs"]), float(done["seconds"]), final, params_hash)

    monitor = "val_loss" if dm.has_validation else "train_loss"
    staging = ckpt_dir / f"{run_name}_{params_hash}{pid_suffix()}"
    shutil.rmtree(staging, ignore_errors=True)
    checkpoint = ModelCheckpoint(dirpath=staging, filename="best", monitor=monitor, mode="min", save_top_k=1)
    shown = _progress_kwargs(progress, f"training {run_name}", "epoch", cfg.max_epochs)
    kwargs: dict[str, Any] = dict(
        max_epochs=cfg.max_epochs, accelerator="auto", devices=1,
        callbacks=[EarlyStopping(monitor=monitor, mode="min", patience=cfg.patience, min_delta=cfg.min_delta),
                   checkpoint, LearningRateMonitor(logging_interval="epoch"), *shown["callbacks"], *callbacks],
        logger=[CSVLogger(log_dir, name=run_name, version=params_hash),
                TensorBoardLogger(log_dir, name=run_name, version=params_hash)],
        log_every_n_steps=1, enable_progress_bar=shown["enable_progress_bar"], enable_model_summary=False,
    )
    if not dm.has_validation:
        kwargs["limit_val_batches"] = 0
    kwargs.update(trainer_kwargs or {})
    log.debug("training %s on %d samples (%d for validation), %s", run_name, len(dataset), len(dm.val_indices),
              final.name)
    with _quiet_lightning():  # Lightning speaks when seeding, building the trainer, fitting and saving
        pl.seed_everything(seed, workers=True)
        module = AutoencoderModule(model_name, dataset.input_shape, latent_dim, lr=cfg.lr, beta=cfg.beta,
                                   lr_factor=cfg.lr_factor, lr_patience=cfg.lr_patience, monitor=monitor)
        module.model.init_output(float(dataset.images[dm.train_indices].mean()))
        trainer = pl.Trainer(**kwargs)
        start = time.perf_counter()
        with cpu_threads(cfg.num_threads):
            trainer.fit(module, datamodule=dm)
        seconds = time.perf_counter() - start
        if trainer.interrupted:
            raise AudioclustError(f"training of {run_name} was interrupted; run the stage again to retrain")
        epochs = int(trainer.current_epoch)
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
                        "n_samples": len(dataset), "data_fingerprint": dataset.fingerprint()})
    log.info("trained %s on %d samples (%d for validation) on %s: %d epochs in %.1f s, best %s %s", run_name,
             len(dataset), len(dm.val_indices), trainer.strategy.root_device.type, epochs, seconds, monitor,
             "n/a" if best_score is None else f"{float(best_score):.5f}")
    module.cpu().eval()
    return TrainResult(module, dm, False, epochs, seconds, final, params_hash)


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


@torch.no_grad()
def embed(model: nn.Module, data: FeaturesDataModule | FeaturesDataset | DataLoader,
          batch_size: int = 256) -> np.ndarray:
    """The embedding of every sample, in dataset order.

    Parameters
    ----------
    model : anything with ``encode(x)`` ((N, 1, T, F) → (N, latent_dim)): a model of
        :mod:`audioclust.deep.components`, :class:`AutoencoderModule` or :class:`DCECModule`.
    data : a datamodule (its :meth:`~FeaturesDataModule.full_dataloader`), a dataset or
        an in-order loader.
    batch_size : batch size when ``data`` is a dataset.

    Returns
    -------
    ndarray of shape (n_samples, latent_dim), float32. The VAE gives its mean.
    """
    if isinstance(data, FeaturesDataModule):
        loader = data.full_dataloader()
    elif isinstance(data, FeaturesDataset):
        loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    else:
        loader = data
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        out = [model.encode(x.to(device)).float().cpu() for x, _ in loader]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy().astype(np.float32, copy=False)


def run_dcec(
    autoencoder: nn.Module,
    datamodule: FeaturesDataModule,
    n_clusters: int,
    cfg: Any,
    seed: int,
    log_dir: str | Path | None = None,
    trainer_kwargs: dict[str, Any] | None = None,
    progress: bool | None = None,
) -> DCECResult:
    """The DCEC clustering stage on every sample of ``datamodule``.

    1. Embed every sample with a copy of ``autoencoder`` (the original is left untouched)
       and run K-Means (``n_init = cfg.kmeans_n_init``, ``random_state = seed``).
    2. Train :class:`DCECModule` from those centres on shuffled batches of every sample
       until fewer than ``cfg.tol`` of labels change between target updates, an update
       leaves a cluster empty (the last state with K clusters is restored), or
       ``cfg.max_iter`` batches.
    3. Compute the final Q and labels over every sample.

    Parameters
    ----------
    autoencoder : a pre-trained model of :mod:`audioclust.deep.components`, or an :class:`AutoencoderModule`.
    datamodule : the data (its ``full_dataloader``; the shuffling of DCEC batches is seeded
        by the datamodule's own seed).
    n_clusters : K, at least 2 and at most the number of samples.
    cfg : the ``autoencoder`` config section (``gamma``, ``dcec_lr``, ``update_interval``, ``tol``,
        ``max_iter``, ``alpha``, ``kmeans_n_init``, ``num_threads``).
    seed : feeds ``seed_everything``, K-Means and the shuffling.
    log_dir : CSV logs (per-step losses) go to ``<log_dir>/dcec_k<K>_s<seed>/``; None: no logs.
    trainer_kwargs : extra ``pl.Trainer`` arguments.
    progress : show Lightning's progress bar; False: the console's progress (:mod:`audioclust.core.progress`);
        None: Lightning's when ``-v``/``--verbose`` (:func:`verbose`).
    """
    from sklearn.cluster import KMeans

    n = len(datamodule.dataset)
    if not 2 <= n_clusters <= n:
        raise ConfigError(f"DCEC needs 2 <= n_clusters <= n_samples ({n}), got {n_clusters}")
    model = copy.deepcopy(autoencoder.model if isinstance(autoencoder, AutoencoderModule) else autoencoder)
    model.cpu().train()
    start = time.perf_counter()
    with cpu_threads(cfg.num_threads), _quiet_lightning():
        pl.seed_everything(seed, workers=True)
        z = embed(model, datamodule)
        km = KMeans(n_clusters=n_clusters, n_init=cfg.kmeans_n_init, random_state=seed).fit(z)
        module = DCECModule(model, km.cluster_centers_, datamodule.full_dataloader(), km.labels_,
                            gamma=cfg.gamma, lr=cfg.dcec_lr, update_interval=cfg.update_interval, tol=cfg.tol,
                            alpha=cfg.alpha)
        kwargs: dict[str, Any] = dict(
            max_steps=cfg.max_iter, max_epochs=-1, accelerator="auto", devices=1,
            logger=CSVLogger(log_dir, name=f"dcec_k{n_clusters}_s{seed}") if log_dir is not None else False,
            enable_checkpointing=False, log_every_n_steps=10, enable_model_summary=False, num_sanity_val_steps=0,
            limit_val_batches=0, **_progress_kwargs(progress, f"DCEC k={n_clusters}", "iteration", cfg.max_iter),
        )
        kwargs.update(trainer_kwargs or {})
        trainer = pl.Trainer(**kwargs)
        trainer.fit(module, train_dataloaders=datamodule.full_dataloader(shuffle=True))
        module.to("cpu")
        if module.stopped_by == "max_iter":
            module.update_targets()  # the final labels and their change since the last update
            if module.collapsed:
                module.restore_last_full()
                module.stopped_by = "collapse"
        q = module.soft_assignments()
        final_z = embed(module, datamodule)
    seconds = time.perf_counter() - start
    history = pd.DataFrame(module.history, columns=HISTORY_COLUMNS)
    log.info("DCEC k=%d: stopped by %s after %d iterations (%.1f s); last label change %.4f%%",
             n_clusters, module.stopped_by, trainer.global_step, seconds, 100 * history["delta_label"].iloc[-1])
    labels = q.argmax(dim=1).numpy()
    if len(np.unique(labels)) < n_clusters:
        log.warning("DCEC k=%d: only %d clusters are non-empty (a weakly trained autoencoder gives near-uniform "
                    "soft assignments); train longer or check the embedding", n_clusters, len(np.unique(labels)))
    iterations = trainer.global_step if module.restored_iteration is None else module.restored_iteration
    return DCECResult(labels=labels, q=q.numpy(), embedding=final_z,
                      kmeans_labels=np.asarray(km.labels_), history=history, stopped_by=module.stopped_by,
                      iterations=int(iterations), seconds=seconds, module=module)


@torch.no_grad()
def reconstruction_mse(model: nn.Module, dataset: FeaturesDataset, batch_size: int = 256) -> float:
    """Mean squared error per pixel of ``model``'s reconstructions of every image of ``dataset``.

    Parameters
    ----------
    model : a model of :mod:`audioclust.deep.components` (``forward(x)[0]`` is the reconstruction;
        evaluated in eval mode, so the VAE decodes its mean).
    dataset : images of shape (n_samples, 1, T, F).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        total = sum(float(torch.sum((model(x.to(device))[0] - x.to(device)) ** 2))
                    for x in dataset.images.split(batch_size))
    finally:
        model.train(was_training)
    return total / dataset.images.numel()


@torch.no_grad()
def _reconstruct(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return model(images.to(next(model.parameters()).device))[0].cpu()
    finally:
        model.train(was_training)


__all__ = ['TrainResult', 'cpu_threads', 'embed', 'pretraining_hash', 'run_dcec', 'train_autoencoder', 'reconstruction_mse']
