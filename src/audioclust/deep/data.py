"""The autoencoder's data: fixed-size feature images, per-file normalisation and one dataset-wide
scale, as a torch dataset and a Lightning data module with a seeded validation split.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from audioclust.core.errors import ConfigError, StageInputError
from audioclust.core.vocab import PER_FILE_MODES
from audioclust.dsp.images import fixed_size_image

log = logging.getLogger(__name__)


SCALE_RULES = ("percentile", "minmax", "none")


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

    Per file, :func:`audioclust.dsp.images.fixed_size_image` trims the array to its active
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
    per_file : ``"none"``, ``"peak"``, ``"mean"`` or ``"meanvar"`` (see :func:`~audioclust.dsp.images.fixed_size_image`).
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
        if per_file not in PER_FILE_MODES:
            raise ConfigError(f"per_file {per_file!r} is not allowed; choose one of {', '.join(PER_FILE_MODES)}")
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
        self._on_device: tuple[torch.device, torch.Tensor] | None = None

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

    def images_on(self, device: torch.device | str) -> torch.Tensor:
        """:attr:`images` on ``device``: the tensor itself on the CPU, else one copy made at the first
        call and kept, so pre-training, DCEC and the embeddings of every latent size share it."""
        device = torch.device(device)
        if device.type == "cpu":
            return self.images
        if self._on_device is None or self._on_device[0] != device:
            self._on_device = (device, self.images.to(device))
        return self._on_device[1]

    def held_on(self, device: torch.device | str) -> bool:
        """Whether :attr:`images` are on ``device`` already (the CPU, or a copy :meth:`images_on` made)."""
        device = torch.device(device)
        return device.type == "cpu" or (self._on_device is not None and self._on_device[0] == device)

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


def _epoch_order(indices: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``indices`` as they are (``generator`` None), or in the next seeded random order of ``generator``."""
    if generator is None:
        return indices
    return indices[torch.randperm(len(indices), generator=generator)]


class DeviceBatches:
    """Batches of an in-memory image tensor, drawn by index where the tensor lives (e.g. on the GPU).

    Each pass yields ``(images[idx], idx)`` for consecutive slices ``idx`` of ``indices``, in
    order or (``shuffle``) in a new seeded permutation per pass; ``idx`` lives on the images'
    device, so neither the batch nor a lookup by ``idx`` (DCEC's target) crosses to the host.
    One ``index_select`` per batch replaces the item-by-item collation of a DataLoader.

    Parameters
    ----------
    images : Tensor of shape (n_samples, 1, T, F), on the training device.
    indices : the samples to draw from (e.g. the training split), dataset indices.
    batch_size : samples per batch; the last batch may be smaller.
    shuffle : a random order per pass; the permutations come from one CPU generator seeded
        with ``seed``, so the same seed gives the same orders on every device.
    seed : seeds the permutations.
    """

    def __init__(self, images: torch.Tensor, indices: Sequence[int] | torch.Tensor, batch_size: int,
                 shuffle: bool = False, seed: int = 0) -> None:
        self.images = images
        self.indices = torch.as_tensor(indices, dtype=torch.long)
        self.batch_size = int(batch_size)
        self.generator = torch.Generator().manual_seed(int(seed)) if shuffle else None

    def __len__(self) -> int:
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = _epoch_order(self.indices, self.generator).to(self.images.device, non_blocking=True)
        for idx in order.split(self.batch_size):
            yield self.images.index_select(0, idx), idx


class _SeededOrder(Sampler[int]):
    """The sample order of :class:`DeviceBatches` for a DataLoader: both paths draw the same batches."""

    def __init__(self, indices: Sequence[int], shuffle: bool, seed: int) -> None:
        self.indices = torch.as_tensor(indices, dtype=torch.long)
        self.generator = torch.Generator().manual_seed(int(seed)) if shuffle else None

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(_epoch_order(self.indices, self.generator).tolist())


#: share of the free device memory the images may take to be held there (the rest: model, activations)
RESIDENT_SHARE = 0.5


def fits_on(device: torch.device, nbytes: int) -> bool:
    """Whether ``nbytes`` of images may be copied to ``device``: always on the CPU (they are there
    already), within :data:`RESIDENT_SHARE` of the free memory of a GPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes <= RESIDENT_SHARE * free
    if device.type == "mps":
        free = torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
        return nbytes <= RESIDENT_SHARE * free
    return True


class FeaturesDataModule(pl.LightningDataModule):
    """Batches of a :class:`FeaturesDataset`, on the device that trains on them.

    The seeded train/validation split only monitors training (early stopping and
    learning-rate schedule); every sample is embedded and clustered.

    Two paths give the same batches in the same order (a seeded permutation per epoch):
    ``resident`` — the images are copied once to the training device and each batch is an
    index lookup there (:class:`DeviceBatches`; on the CPU, the tensor in memory); otherwise a
    DataLoader collates each batch item by item from the CPU tensor (``num_workers`` workers,
    pinned memory on CUDA). On a GPU the first keeps it busy; on a CPU either costs a few
    milliseconds per epoch of 3,000 images, next to seconds of training (benchmarks/bench_gpu.py).

    Parameters
    ----------
    dataset : the images.
    batch_size : samples per batch.
    val_fraction : share of samples held out for validation; at least one when > 0
        and the set has 2 or more samples; 0 disables validation.
    num_workers : DataLoader worker processes of the non-resident path.
    seed : seeds the split and the shuffling.
    resident : hold the images on the training device; None: when they fit (:func:`fits_on`).
    """

    def __init__(self, dataset: FeaturesDataset, batch_size: int = 64, val_fraction: float = 0.1,
                 num_workers: int = 0, seed: int = 0, resident: bool | None = None) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.resident = resident
        n = len(dataset)
        n_val = max(1, round(n * val_fraction)) if val_fraction > 0 and n >= 2 else 0
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        self.val_indices = sorted(order[:n_val])
        self.train_indices = sorted(order[n_val:])

    @property
    def has_validation(self) -> bool:
        return len(self.val_indices) > 0

    def is_resident(self, device: torch.device) -> bool:
        """Whether batches for ``device`` are drawn from a copy of the images on it."""
        if self.resident is None:
            return self.dataset.held_on(device) or fits_on(device, self.dataset.images.nbytes)
        return self.resident

    def training_device(self) -> torch.device:
        """The device of the trainer this module is attached to; the CPU when none is."""
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _batches(self, indices: Sequence[int], shuffle: bool,
                 device: torch.device | None) -> DeviceBatches | DataLoader:
        device = self.training_device() if device is None else torch.device(device)
        if self.is_resident(device):
            return DeviceBatches(self.dataset.images_on(device), indices, self.batch_size, shuffle, self.seed)
        return DataLoader(
            self.dataset, batch_size=self.batch_size, sampler=_SeededOrder(indices, shuffle, self.seed),
            drop_last=False, num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
            pin_memory=device.type == "cuda",
        )

    def train_dataloader(self) -> DeviceBatches | DataLoader:
        return self._batches(self.train_indices, True, None)

    def val_dataloader(self) -> DeviceBatches | DataLoader:
        return self._batches(self.val_indices, False, None)

    def full_dataloader(self, shuffle: bool = False,
                        device: torch.device | str | None = None) -> DeviceBatches | DataLoader:
        """Every sample exactly once per pass; in dataset order unless ``shuffle`` (seeded).

        ``device``: where the batches are used; None: the attached trainer's device (else the CPU)."""
        return self._batches(range(len(self.dataset)), shuffle, device)

    def predict_dataloader(self) -> DeviceBatches | DataLoader:
        return self.full_dataloader()


__all__ = ['DeviceBatches', 'FeaturesDataModule', 'FeaturesDataset', 'fits_on', 'load_feature']
