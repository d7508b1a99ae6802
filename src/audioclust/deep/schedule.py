"""How long a pre-training may run and how it slows down, by the device it trains on.

A training profile gives the keys of the ``autoencoder`` section left null: the epoch limit,
the early-stopping patience and the learning-rate scheduler's patience. The epoch limit comes
from a budget of image passes, so a small collection trains for more epochs than a large one
in about the same time, up to the profile's cap. Early stopping on the validation loss (no
labels) ends a training that has converged before its limit.

``cpu`` fits a model of a few thousand 96 × 48 images into a few minutes on two cores (about
2 ms per image pass there); ``gpu`` is the seed study's length (450 epochs of 2,800 images),
which a GPU runs in minutes. ``auto`` takes ``gpu`` when the training device is CUDA or MPS.

A profile also gives DCEC's batch limit (``autoencoder.max_iter`` left null): on a large collection
DCEC is still moving labels when ``cpu``'s limit ends it, and ``gpu`` lets it run four times longer.
On a small collection the limit is at most the profile's epoch limit in passes over the data, so
fine-tuning takes no more passes than pre-training may (49 files: 200 batches, not 800).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from audioclust.core.errors import ConfigError


@dataclass(frozen=True)
class Profile:
    """The schedule of one kind of device.

    Attributes
    ----------
    image_passes : training images the pre-training may process: ``max_epochs`` is
        ``ceil(image_passes / n_train)``, within [``min_epochs``, ``max_epochs``].
    min_epochs, max_epochs : bounds of that epoch limit.
    patience : epochs without a validation improvement before early stopping.
    lr_patience : epochs without improvement before the plateau scheduler halves the learning rate
        (shorter than ``patience``, so a lowered rate gets its chance).
    dcec_batches : DCEC's batch limit, at most ``max_epochs`` passes over the data.
    """

    image_passes: int
    min_epochs: int
    max_epochs: int
    patience: int
    lr_patience: int
    dcec_batches: int


#: the profiles by name; ``auto`` chooses between them by device
PROFILES: dict[str, Profile] = {
    "cpu": Profile(image_passes=120_000, min_epochs=10, max_epochs=200, patience=10, lr_patience=4, dcec_batches=800),
    "gpu": Profile(image_passes=1_350_000, min_epochs=50, max_epochs=450, patience=30, lr_patience=10,
                   dcec_batches=1_600),
}


@dataclass(frozen=True)
class Schedule:
    """A pre-training's resolved schedule (what enters its checkpoint hash and its marker).

    ``patience`` 0 means no early stopping: the training runs ``max_epochs``.
    """

    profile: str
    max_epochs: int
    patience: int
    lr_patience: int


def profile_name(profile: str, device: torch.device | str) -> str:
    """``cpu`` or ``gpu``: ``profile`` itself, or for ``auto`` the one of ``device`` (CUDA and MPS are GPUs)."""
    if profile == "auto":
        return "gpu" if torch.device(device).type in ("cuda", "mps") else "cpu"
    if profile not in PROFILES:
        raise ConfigError(f"config key 'autoencoder.profile' must be auto, {' or '.join(PROFILES)}; got {profile!r}")
    return profile


def resolve_schedule(*, profile: str, device: torch.device | str, n_train: int, max_epochs: int | None = None,
                     patience: int | None = None, lr_patience: int | None = None) -> Schedule:
    """The schedule of a pre-training on ``device`` with ``n_train`` training images.

    Parameters
    ----------
    profile : ``auto``, ``cpu`` or ``gpu`` (:data:`PROFILES`).
    device : the training device.
    n_train : images in the training split (at least 1).
    max_epochs, patience, lr_patience : the config's values; None takes the profile's (``max_epochs``
        from its budget of image passes). ``patience`` 0: no early stopping.
    """
    name = profile_name(profile, device)
    chosen = PROFILES[name]
    if max_epochs is None:
        budget = math.ceil(chosen.image_passes / max(1, n_train))
        max_epochs = min(chosen.max_epochs, max(chosen.min_epochs, budget))
    return Schedule(profile=name, max_epochs=int(max_epochs),
                    patience=int(chosen.patience if patience is None else patience),
                    lr_patience=int(chosen.lr_patience if lr_patience is None else lr_patience))


def dcec_batches(*, profile: str, device: torch.device | str, max_iter: int | None = None,
                 n_samples: int | None = None, batch_size: int | None = None) -> int:
    """DCEC's batch limit on ``device``: ``max_iter`` when given, else the profile's (:data:`PROFILES`).

    With ``n_samples`` and ``batch_size`` the profile's limit is at most its ``max_epochs`` passes over the
    data: on a collection smaller than a few batches each of DCEC's batches is (nearly) a whole pass, and
    the profile's 800 would be four times the passes its pre-training may make.
    """
    if max_iter is not None:
        return int(max_iter)
    chosen = PROFILES[profile_name(profile, device)]
    if n_samples is None or batch_size is None:
        return chosen.dcec_batches
    return min(chosen.dcec_batches, chosen.max_epochs * math.ceil(n_samples / batch_size))


__all__ = ['PROFILES', 'Profile', 'Schedule', 'dcec_batches', 'profile_name', 'resolve_schedule']
