"""Autoencoder pre-training and the DCEC clustering stage, in PyTorch Lightning.

Pieces, in the order the stage-05 runner uses them:

1. :class:`FeaturesDataset` — feature arrays (or NPY/PNG files) resized to fixed
   (time, frequency) images and scaled with ONE dataset-wide rule.
2. :class:`FeaturesDataModule` — a seeded train/validation split (validation only
   monitors training) and :meth:`~FeaturesDataModule.full_dataloader`, every sample in order.
3. :func:`train_autoencoder` — reconstruction pre-training of an architecture of
   :mod:`audioclust.models` (:class:`AutoencoderModule`), or reuse of its checkpoint
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
import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence, get_args

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from .config import PerFile
from .errors import AudioclustError, ConfigError, StageInputError
from .features import fixed_size_image
from .models import build_model
from .storage import pid_suffix, read_json, write_json

log = logging.getLogger(__name__)

SCALE_RULES = ("percentile", "minmax", "none")
PER_FILE: tuple[str, ...] = get_args(PerFile)  # the per-file steps the config allows
#: columns of :attr:`DCECResult.history`
HISTORY_COLUMNS = ["iteration", "delta_label", "n_clusters", "loss", "recon", "kl"]
# keys of the autoencoder config section that do not change pre-training (DCEC-stage,
# runner-only or speed-only keys) or whose effect is already in the data fingerprint
# (the input preparation): they are left out of the checkpoint hash
_NOT_PRETRAINING = frozenset({
    "enabled", "architecture", "features", "source", "latent_dims", "num_workers", "num_threads",
    "update_interval", "gamma", "dcec_lr", "tol", "max_iter", "alpha", "kmeans_n_init",
    "input_size", "scale", "trim_db", "per_file",
})


# --------------------------------------------------------------------------- data

def load_feature(path: str | Path) -> np.ndarray:
    """One feature array of shape (n_bins, n_frames), float32, from an ``.npy`` or ``.png`` file.

    A PNG (8-bit grayscale, as stage 03 writes it: row 0 = highest bin) is read as
    grey levels / 255 in [0, 1] and flipped back so that row 0 is the lowest bin, as
    in the NPY arrays.
    """
    path = Path(path)
    if path.suffix == ".npy":
        array = np.load(path, allow_pickle=False)
    elif path.suffix == ".png":
        from PIL import Image

        with Image.open(path) as img:
            array = np.asarray(img.convert("L"), dtype=np.float32)[::-1] / 255.0
    else:
        raise StageInputError(f"{path}: feature files must be .npy or .png; run stage 03 (extract) to write them")
    if array.ndim != 2 or array.size == 0:
        raise StageInputError(f"{path}: expected a non-empty 2-D array (n_bins, n_frames), got shape {array.shape}")
    return array.astype(np.float32, copy=False)


class FeaturesDataset(Dataset):
    """Feature arrays as fixed-size images ``(1, T, F)``, held in memory.

    Per file, :func:`audioclust.features.fixed_size_image` trims the array to its active
    region (``trim_db``, decided on ``levels`` or on the array itself), normalises it
    (``per_file``), puts time first and resizes it to ``size`` = (T, F) (bilinear,
    antialiased when shrinking). A caller that has already done this (a feature store)
    passes the (T, F) images with ``prepared=True``; only the scaling below is applied then.

    Scaling (one rule for the whole dataset, computed once over every pixel of every
    image): ``scale="percentile"`` (default) maps the dataset's 1st percentile to 0 and
    its 99th to 1 and clips to [0, 1]; ``"minmax"`` uses the dataset minimum and maximum;
    ``"none"`` keeps the values; a pair ``(low, high)`` uses those values (e.g. to scale a
    new set like a reference set). One affine map keeps what differs between files after
    the per-file step; percentiles keep one outlier from squashing the range.

    Parameters
    ----------
    data : sequence of ndarray of shape (n_bins, n_frames), or of ``.npy``/``.png`` paths;
        with ``prepared=True``, ndarrays of shape (T, F).
    size : (T, F), the image size (time × frequency).
    scale : ``"percentile"``, ``"minmax"``, ``"none"`` or ``(low, high)``.
    keys : optional names of the samples (e.g. ``label/stem``), in order; they enter
        :meth:`fingerprint`. Default: the paths when ``data`` holds paths (pass
        root-relative keys so that a moved project keeps its checkpoints).
    levels : optional sequence of dB arrays of shape (n_ref_bins, n_frames) (or ``.npy``
        paths), one per sample with its number of frames, that decide the active region
        (e.g. the mel spectrogram when ``data`` is MFCC); default: each array itself.
    trim_db : active region threshold in dB (None: every frame).
    per_file : ``"none"``, ``"peak"``, ``"mean"`` or ``"meanvar"`` (see :func:`~audioclust.features.fixed_size_image`).
    prepared : ``data`` already holds (T, F) images (``trim_db``, ``per_file``, ``levels`` unused).

    Attributes
    ----------
    images : Tensor of shape (n_samples, 1, T, F), float32, scaled.
    low, high : the values mapped onto 0 and 1 (None for ``scale="none"``).
    shapes : list of the arrays' shapes as given ((n_bins, n_frames), or (T, F) when prepared).

    ``dataset[i]`` is ``(images[i], i)``: the index lets DCEC look up each sample's target.
    """

    def __init__(self, data: Sequence[np.ndarray | str | Path], size: Sequence[int] = (96, 48),
                 scale: str | Sequence[float] = "percentile", keys: Sequence[str] | None = None, *,
                 levels: Sequence[np.ndarray | str | Path] | None = None, trim_db: float | None = None,
                 per_file: str = "none", prepared: bool = False) -> None:
        if len(data) == 0:
            raise StageInputError("no feature arrays to train on: check that stage 03 wrote features with status ok")
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"input size must be [T, F] with T, F >= 1, got {list(size)}")
        if keys is not None and len(keys) != len(data):
            raise ConfigError(f"{len(keys)} keys given for {len(data)} arrays: give one key per array")
        if levels is not None and len(levels) != len(data):
            raise ConfigError(f"{len(levels)} level arrays given for {len(data)} arrays: give one per array")
        if per_file not in PER_FILE:
            raise ConfigError(f"per_file {per_file!r} is not allowed; choose one of {', '.join(PER_FILE)}")
        self.size = (int(size[0]), int(size[1]))
        if keys is None and isinstance(data[0], (str, Path)):
            keys = [str(d) for d in data]
        self.keys = None if keys is None else list(keys)
        self.trim_db = None if trim_db is None or prepared else float(trim_db)
        self.per_file = "none" if prepared else per_file
        self.prepared = bool(prepared)
        self.shapes: list[tuple[int, int]] = []
        images = [self._image(d, None if levels is None else levels[i]) for i, d in enumerate(data)]
        self.images = torch.from_numpy(np.stack(images))[:, None]
        self.low, self.high = self._scale_range(scale)
        if self.low is not None:
            self.images.sub_(self.low).div_(self.high - self.low).clamp_(0.0, 1.0)
        self.scale = scale if isinstance(scale, str) else [float(v) for v in scale]
        self._fingerprint: str | None = None

    def _image(self, item: np.ndarray | str | Path, level: np.ndarray | str | Path | None) -> np.ndarray:
        """One sample: (n_bins, n_frames) → (T, F), or a prepared (T, F) image checked."""
        array = load_feature(item) if isinstance(item, (str, Path)) else np.asarray(item, dtype=np.float32)
        if array.ndim != 2 or array.size == 0:
            raise StageInputError(f"expected non-empty 2-D feature arrays (n_bins, n_frames), got shape {array.shape}")
        if not np.isfinite(array).all():
            raise StageInputError("a feature array holds NaN or infinite values: re-run stage 03 (extract) for it")
        self.shapes.append((int(array.shape[0]), int(array.shape[1])))
        if self.prepared:
            if array.shape != self.size:
                raise StageInputError(f"a prepared image has shape {array.shape}, not the input size {self.size}")
            return array
        if level is not None:
            level = load_feature(level) if isinstance(level, (str, Path)) else np.asarray(level, dtype=np.float32)
        try:
            return fixed_size_image(array, size=self.size, level_db=level, trim_db=self.trim_db,
                                    per_file=self.per_file)
        except ValueError as exc:
            raise StageInputError(f"{exc}: re-run stage 03 (extract) so that every feature of a file has the "
                                  "same frames") from exc

    def _scale_range(self, scale: str | Sequence[float]) -> tuple[float | None, float | None]:
        if isinstance(scale, str):
            if scale not in SCALE_RULES:
                raise ConfigError(f"scale {scale!r} is not allowed; choose one of {', '.join(SCALE_RULES)} or (low, high)")
            if scale == "none":
                return None, None
            values = self.images.numpy().ravel()
            low, high = (np.percentile(values, [1.0, 99.0]) if scale == "percentile"
                         else (values.min(), values.max()))
        else:
            low, high = (float(v) for v in scale)
        low, high = float(low), float(high)
        if not high > low:
            log.warning("features are constant (%g): scaling maps them to 0", low)
            high = low + 1.0
        return low, high

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], index

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(1, T, F)."""
        return (1, *self.size)

    def fingerprint(self) -> str:
        """16-hex hash of the keys, size, scale rule and the scaled images: what a model trains on.

        The per-file steps enter through the images, so images prepared elsewhere
        (``prepared=True``) and the same images prepared here share a fingerprint.
        Computed once: the images are not meant to change after construction."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(json.dumps({"keys": self.keys, "size": self.size, "scale": self.scale,
                                 "low": self.low, "high": self.high}).encode())
            h.update(self.images.numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint


class FeaturesDataModule(pl.LightningDataModule):
    """Loaders over a :class:`FeaturesDataset`.

    The seeded train/validation split only monitors training (early stopping and
    learning-rate schedule); every sample is embedded and clustered.

    Parameters
    ----------
    dataset : the images.
    batch_size : samples per batch.
    val_fraction : share of samples held out for validation; at least one when > 0
        and the set has 2 or more samples; 0 disables validation.
    num_workers : DataLoader worker processes; 0 (default) since the images are already
        in memory and a batch is a cheap index (see benchmarks/bench_train.py).
    seed : seeds the split and the shuffling.
    """

    def __init__(self, dataset: FeaturesDataset, batch_size: int = 64, val_fraction: float = 0.1,
                 num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        n = len(dataset)
        n_val = max(1, round(n * val_fraction)) if val_fraction > 0 and n >= 2 else 0
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        self.val_indices = sorted(order[:n_val])
        self.train_indices = sorted(order[n_val:])

    @property
    def has_validation(self) -> bool:
        return len(self.val_indices) > 0

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=shuffle, drop_last=False,
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(Subset(self.dataset, self.train_indices), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(Subset(self.dataset, self.val_indices), shuffle=False)

    def full_dataloader(self, shuffle: bool = False) -> DataLoader:
        """Every sample exactly once per pass; in dataset order unless ``shuffle`` (seeded)."""
        return self._loader(self.dataset, shuffle=shuffle)

    def predict_dataloader(self) -> DataLoader:
        return self.full_dataloader()


# --------------------------------------------------------------------------- pre-training

class AutoencoderModule(pl.LightningModule):
    """Reconstruction pre-training of one architecture of :mod:`audioclust.models`.

    Loss: the model's ``training_loss`` (MSE; the VAE adds β·KL). Adam with
    ReduceLROnPlateau on ``monitor``; ``train_loss`` and ``val_loss`` are logged per epoch.

    Parameters
    ----------
    architecture : ``dcec``, ``conv4`` or ``vae``.
    input_shape : (1, T, F).
    latent_dim : size of the embedding.
    lr : Adam learning rate.
    beta : KL weight (``vae`` only).
    lr_factor, lr_patience : ReduceLROnPlateau factor and patience (epochs).
    monitor : ``val_loss``, or ``train_loss`` when there is no validation set.
    """

    def __init__(self, architecture: str = "dcec", input_shape: Sequence[int] = (1, 96, 48), latent_dim: int = 10,
                 lr: float = 1e-3, beta: float = 1.0, lr_factor: float = 0.5, lr_patience: int = 2,
                 monitor: str = "val_loss") -> None:
        super().__init__()
        self.save_hyperparameters()
        extra = {"beta": beta} if architecture == "vae" else {}
        self.model = build_model(architecture, tuple(input_shape), latent_dim, **extra)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, T, F) → (N, latent_dim)."""
        return self.model.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) → (N, 1, T, F)."""
        return self.model.decode(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, _ = batch
        parts = self.model.training_loss(x)
        for name, value in parts.items():
            self.log(f"{stage}_{name}", value, on_step=False, on_epoch=True,
                     prog_bar=name == "loss", batch_size=x.shape[0])
        return parts["loss"]

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=self.hparams.lr_factor, patience=self.hparams.lr_patience)
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": sched, "monitor": self.hparams.monitor, "interval": "epoch"}}


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
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


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


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Hide Lightning's advice that does not apply here (in-memory data needs no workers)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*log_every_n_steps.*")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
        yield


def train_autoencoder(
    model_name: str,
    data: FeaturesDataset | Sequence[np.ndarray | str | Path],
    cfg: Any,
    seed: int,
    log_dir: str | Path,
    ckpt_dir: str | Path,
    latent_dim: int | None = None,
    keys: Sequence[str] | None = None,
    feature: str = "mel",
    trainer_kwargs: dict[str, Any] | None = None,
    callbacks: Sequence[pl.Callback] = (),
    progress: bool = True,
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
        ``cfg.scale``, ``cfg.trim_db`` and ``cfg.per_file[feature]`` (and ``keys``).
    cfg : the ``autoencoder`` config section (:class:`audioclust.config.AutoencoderConfig`).
    seed : feeds ``seed_everything``, the split and the shuffling.
    log_dir : CSV and TensorBoard logs go to ``<log_dir>/<run name>/<hash>/``.
    ckpt_dir : folder of checkpoints.
    latent_dim : size of the embedding; default ``cfg.latent_dims[0]``.
    keys : sample names for the data fingerprint when ``data`` is not a dataset (ignored otherwise).
    feature : the feature kind of ``data`` when it is not a dataset (its ``cfg.per_file`` entry).
    trainer_kwargs : extra ``pl.Trainer`` arguments (e.g. ``fast_dev_run=True``); part of the hash.
    callbacks : extra Lightning callbacks (e.g. timers), added to early stopping and checkpointing;
        not part of the hash, so they must not change the training.
    progress : show Lightning's progress bar.
    """
    dataset = data if isinstance(data, FeaturesDataset) else FeaturesDataset(
        data, size=cfg.input_size, scale=cfg.scale, keys=keys, trim_db=cfg.trim_db,
        per_file=cfg.per_file.get(feature, "none"))
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

    pl.seed_everything(seed, workers=True)
    monitor = "val_loss" if dm.has_validation else "train_loss"
    module = AutoencoderModule(model_name, dataset.input_shape, latent_dim, lr=cfg.lr, beta=cfg.beta,
                               lr_factor=cfg.lr_factor, lr_patience=cfg.lr_patience, monitor=monitor)
    module.model.init_output(float(dataset.images[dm.train_indices].mean()))
    staging = ckpt_dir / f"{run_name}_{params_hash}{pid_suffix()}"
    shutil.rmtree(staging, ignore_errors=True)
    checkpoint = ModelCheckpoint(dirpath=staging, filename="best", monitor=monitor, mode="min", save_top_k=1)
    kwargs: dict[str, Any] = dict(
        max_epochs=cfg.max_epochs, accelerator="auto", devices=1,
        callbacks=[EarlyStopping(monitor=monitor, mode="min", patience=cfg.patience, min_delta=cfg.min_delta),
                   checkpoint, LearningRateMonitor(logging_interval="epoch"), *callbacks],
        logger=[CSVLogger(log_dir, name=run_name, version=params_hash),
                TensorBoardLogger(log_dir, name=run_name, version=params_hash)],
        log_every_n_steps=1, enable_progress_bar=progress, enable_model_summary=False,
    )
    if not dm.has_validation:
        kwargs["limit_val_batches"] = 0
    kwargs.update(trainer_kwargs or {})
    trainer = pl.Trainer(**kwargs)
    log.info("training %s on %d samples (%d for validation), %s", run_name, len(dataset), len(dm.val_indices),
             final.name)
    start = time.perf_counter()
    with cpu_threads(cfg.num_threads), _quiet_lightning():
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
    log.info("trained %s: %d epochs in %.1f s, best %s %s", run_name, epochs, seconds, monitor,
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
        :mod:`audioclust.models`, :class:`AutoencoderModule` or :class:`DCECModule`.
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


# --------------------------------------------------------------------------- DCEC

class ClusteringLayer(nn.Module):
    """Student's t soft assignment of embeddings to trainable centres (DEC/DCEC).

    q_ij = (1 + ||z_i − μ_j||² / α)^(−(α+1)/2), normalised so that Σ_j q_ij = 1.

    Parameters
    ----------
    n_clusters : K.
    latent_dim : d.
    alpha : degrees of freedom of the Student's t kernel.
    centers : optional initial centres of shape (K, d) (else Xavier-uniform).
    """

    def __init__(self, n_clusters: int, latent_dim: int, alpha: float = 1.0,
                 centers: np.ndarray | torch.Tensor | None = None) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.centers = nn.Parameter(torch.empty(n_clusters, latent_dim))
        if centers is None:
            nn.init.xavier_uniform_(self.centers)
        else:
            with torch.no_grad():
                self.centers.copy_(torch.as_tensor(np.asarray(centers), dtype=torch.float32))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(N, d) → q of shape (N, K), rows summing to 1."""
        dist2 = torch.cdist(z, self.centers).pow(2) if z.shape[0] > 0 else z.new_zeros(0, len(self.centers))
        q = (1.0 + dist2 / self.alpha).pow(-(self.alpha + 1.0) / 2.0)
        return q / q.sum(dim=1, keepdim=True)


def target_distribution(q: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """DEC's auxiliary target p_ij = (q_ij² / f_j) / Σ_j' (q_ij'² / f_j'), f_j = Σ_i q_ij.

    Squaring sharpens confident assignments; dividing by the cluster frequency f_j keeps
    large clusters from absorbing the rest.

    Parameters
    ----------
    q : (N, K) soft assignments (Tensor or ndarray; the same type is returned).
    """
    if isinstance(q, np.ndarray):
        return target_distribution(torch.from_numpy(q)).numpy()
    weight = q.pow(2) / q.sum(dim=0)
    return weight / weight.sum(dim=1, keepdim=True)


class DCECModule(pl.LightningModule):
    """Joint training of a pre-trained autoencoder and a :class:`ClusteringLayer`.

    Every ``update_interval`` batches (and before the first) the soft assignments Q of
    the WHOLE dataset are computed, their target P fixed until the next update, and the
    share of labels (argmax Q) that changed since the previous update recorded; when it
    is below ``tol`` (after the first update) training stops. Loss per batch:
    MSE(x̂, x) + γ · KL(P_batch ‖ Q_batch) (``batchmean``), Adam.

    Collapse guard: the self-training target favours confident clusters, and a weak
    embedding can let some clusters empty out. When an update finds fewer than K
    non-empty clusters, training stops and the weights, centres and labels of the last
    update with K non-empty clusters are restored (``stopped_by = "collapse"``).

    Parameters
    ----------
    model : the autoencoder (trained in place: pass a copy to keep the original).
    centers : initial centres of shape (K, latent_dim), e.g. K-Means on the embedding.
    target_loader : loader over every sample in dataset order (for Q and P).
    initial_labels : labels of shape (n_samples,) the first update is compared with.
    gamma, update_interval, tol, alpha : see the ``autoencoder`` config section.
    lr : Adam learning rate (the config's ``dcec_lr``).

    Attributes
    ----------
    labels : ndarray of shape (n_samples,), the labels of the latest update.
    history : list of dicts ``iteration, delta_label, n_clusters, loss, recon, kl``
        (``n_clusters``: non-empty clusters; losses: mean over the batches since the
        previous update, NaN at iteration 0).
    stopped_by : ``"tol"``, ``"collapse"`` or ``"max_iter"``.
    restored_iteration : the update restored by the collapse guard (None when not triggered).
    """

    def __init__(self, model: nn.Module, centers: np.ndarray, target_loader: DataLoader, initial_labels: np.ndarray,
                 gamma: float = 0.1, lr: float = 1e-3, update_interval: int = 100, tol: float = 0.001,
                 alpha: float = 1.0) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "centers", "target_loader", "initial_labels"])
        self.model = model
        centers = np.asarray(centers, dtype=np.float32)
        self.clustering = ClusteringLayer(centers.shape[0], centers.shape[1], alpha=alpha, centers=centers)
        self.target_loader = target_loader
        self.labels = np.asarray(initial_labels).copy()
        self.history: list[dict[str, float]] = []
        self.stopped_by = "max_iter"
        self.restored_iteration: int | None = None
        self._target: torch.Tensor | None = None
        self._since_update: list[tuple[float, float, float]] = []
        self._last_full: tuple[int, dict[str, torch.Tensor], np.ndarray] | None = None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, T, F) → (N, latent_dim)."""
        return self.model.encode(x)

    @torch.no_grad()
    def soft_assignments(self) -> torch.Tensor:
        """Q of every sample, shape (n_samples, K), in dataset order (on the module's device)."""
        was_training = self.training
        self.eval()
        try:
            q = torch.cat([self.clustering(self.model.encode(x.to(self.device))) for x, _ in self.target_loader])
        finally:
            self.train(was_training)
        return q

    def update_targets(self) -> float:
        """Recompute Q and P over the whole dataset; record and return the share of changed labels."""
        q = self.soft_assignments()
        labels = q.argmax(dim=1).cpu().numpy()
        delta = float(np.mean(labels != self.labels))
        self.labels = labels
        self._target = target_distribution(q)
        n_clusters = len(np.unique(labels))
        if n_clusters == q.shape[1]:
            state = {k: v.detach().clone() for k, v in self.state_dict().items()}
            self._last_full = (int(self.global_step), state, labels)
        losses = np.array(self._since_update) if self._since_update else np.full((1, 3), np.nan)
        loss, recon, kl = losses.mean(axis=0)
        self.history.append({"iteration": int(self.global_step), "delta_label": delta, "n_clusters": n_clusters,
                             "loss": float(loss), "recon": float(recon), "kl": float(kl)})
        self._since_update = []
        log.debug("DCEC iteration %d: %.4f%% labels changed", self.global_step, 100 * delta)
        return delta

    @property
    def collapsed(self) -> bool:
        """Whether the latest update left some of the K clusters empty."""
        return bool(self.history) and self.history[-1]["n_clusters"] < len(self.clustering.centers)

    def restore_last_full(self) -> None:
        """Go back to the weights, centres and labels of the last update with K non-empty clusters."""
        if self._last_full is None:
            return
        iteration, state, labels = self._last_full
        self.load_state_dict(state)
        self.labels = labels
        self.restored_iteration = iteration
        log.warning("DCEC: %d of %d clusters left at iteration %d; restored the state of iteration %d",
                    self.history[-1]["n_clusters"], len(self.clustering.centers), self.global_step, iteration)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        if self.global_step % self.hparams.update_interval == 0:
            delta = self.update_targets()
            if self.collapsed and self._last_full is not None:
                self.restore_last_full()
                self.stopped_by = "collapse"
            elif self.global_step > 0 and delta < self.hparams.tol:
                self.stopped_by = "tol"
            else:
                return None
            self.trainer.should_stop = True
            return -1
        return None

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, idx = batch
        z = self.model.encode(x)
        recon = F.mse_loss(self.model.decode(z), x)
        q = self.clustering(z)
        p = self._target[idx.to(self._target.device)]
        kl = F.kl_div(q.clamp_min(1e-12).log(), p, reduction="batchmean")
        loss = recon + self.hparams.gamma * kl
        self._since_update.append((loss.item(), recon.item(), kl.item()))
        self.log_dict({"dcec_loss": loss, "dcec_recon": recon, "dcec_kl": kl},
                      on_step=True, on_epoch=False, batch_size=x.shape[0])
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@dataclass
class DCECResult:
    """What :func:`run_dcec` returns.

    labels : ndarray (n_samples,), argmax of the final Q, in dataset order (K clusters
        non-empty, unless the very first assignment already left one empty: a warning is
        logged then).
    q : ndarray (n_samples, K), the final soft assignments.
    embedding : ndarray (n_samples, latent_dim), the final (fine-tuned) embedding.
    kmeans_labels : ndarray (n_samples,), the K-Means labels DCEC starts from.
    history : DataFrame with :data:`HISTORY_COLUMNS` (``iteration, delta_label, n_clusters,
        loss, recon, kl``), one row per target update, the collapsed one included.
    stopped_by : ``"tol"``, ``"collapse"`` (the state of the last update with K non-empty
        clusters was restored) or ``"max_iter"``.
    iterations : batches trained up to the returned state (the restored update after a collapse).
    seconds : wall time of the K-Means initialisation and the training.
    module : the trained :class:`DCECModule`.
    """

    labels: np.ndarray
    q: np.ndarray
    embedding: np.ndarray
    kmeans_labels: np.ndarray
    history: pd.DataFrame
    stopped_by: str
    iterations: int
    seconds: float
    module: DCECModule


def run_dcec(
    autoencoder: nn.Module,
    datamodule: FeaturesDataModule,
    n_clusters: int,
    cfg: Any,
    seed: int,
    log_dir: str | Path | None = None,
    trainer_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
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
    autoencoder : a pre-trained model of :mod:`audioclust.models`, or an :class:`AutoencoderModule`.
    datamodule : the data (its ``full_dataloader``; the shuffling of DCEC batches is seeded
        by the datamodule's own seed).
    n_clusters : K, at least 2 and at most the number of samples.
    cfg : the ``autoencoder`` config section (``gamma``, ``dcec_lr``, ``update_interval``, ``tol``,
        ``max_iter``, ``alpha``, ``kmeans_n_init``, ``num_threads``).
    seed : feeds ``seed_everything``, K-Means and the shuffling.
    log_dir : CSV logs (per-step losses) go to ``<log_dir>/dcec_k<K>_s<seed>/``; None: no logs.
    trainer_kwargs : extra ``pl.Trainer`` arguments.
    progress : show Lightning's progress bar.
    """
    from sklearn.cluster import KMeans

    n = len(datamodule.dataset)
    if not 2 <= n_clusters <= n:
        raise ConfigError(f"DCEC needs 2 <= n_clusters <= n_samples ({n}), got {n_clusters}")
    model = copy.deepcopy(autoencoder.model if isinstance(autoencoder, AutoencoderModule) else autoencoder)
    model.cpu().train()
    start = time.perf_counter()
    pl.seed_everything(seed, workers=True)
    with cpu_threads(cfg.num_threads), _quiet_lightning():
        z = embed(model, datamodule)
        km = KMeans(n_clusters=n_clusters, n_init=cfg.kmeans_n_init, random_state=seed).fit(z)
        module = DCECModule(model, km.cluster_centers_, datamodule.full_dataloader(), km.labels_,
                            gamma=cfg.gamma, lr=cfg.dcec_lr, update_interval=cfg.update_interval, tol=cfg.tol,
                            alpha=cfg.alpha)
        kwargs: dict[str, Any] = dict(
            max_steps=cfg.max_iter, max_epochs=-1, accelerator="auto", devices=1,
            logger=CSVLogger(log_dir, name=f"dcec_k{n_clusters}_s{seed}") if log_dir is not None else False,
            enable_checkpointing=False, log_every_n_steps=10, enable_progress_bar=progress,
            enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
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


__all__ = [
    "AutoencoderModule", "ClusteringLayer", "DCECModule", "DCECResult", "FeaturesDataModule", "FeaturesDataset",
    "TrainResult", "cpu_threads", "embed", "load_feature", "pretraining_hash", "run_dcec",
    "target_distribution", "train_autoencoder",
]
