"""One vector per file and view: statistics over time (``stats``), the coarse time course (``image``),
a pretrained model's frames pooled over time (``embedding``), or the autoencoder's input image
(``ae``), from the arrays stage 03 saved.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audioclust.core.paths import ProjectPaths, label_folder
from audioclust.dsp.images import (
    active_frames,
    fixed_size_image,
    from_image,
    normalise_per_file,
    read_png,
    to_image,
)
from audioclust.embed.pooling import pool_frames

log = logging.getLogger(__name__)


#: features in dB that can decide the active region, in order of preference
TRIM_REFERENCES: tuple[str, ...] = ("mel", "spectrogram")


# --------------------------------------------------------------------------- per-array steps

def pool_bins(array: np.ndarray, max_bins: int) -> np.ndarray:
    """Average adjacent bins in groups of ``ceil(n_bins / max_bins)`` (the last group may be smaller).

    Parameters
    ----------
    array : ndarray of shape (n_bins, n_frames)
    max_bins : int

    Returns
    -------
    ndarray of shape (ceil(n_bins / factor), n_frames), float32; ``array`` itself when n_bins <= max_bins.
    """
    n_bins = array.shape[0]
    if n_bins <= max_bins:
        return array
    factor = math.ceil(n_bins / max_bins)
    starts = np.arange(0, n_bins, factor)
    sums = np.add.reduceat(array, starts, axis=0, dtype=np.float64)
    counts = np.diff(np.append(starts, n_bins))[:, None]
    return (sums / counts).astype(np.float32)


def resample_frames(array: np.ndarray, n_frames: int) -> np.ndarray:
    """Resample along time to ``n_frames`` frames by linear interpolation (first and last frames kept).

    Parameters
    ----------
    array : ndarray of shape (n_bins, n_in)
        ``n_in >= 1``; a single frame is repeated.
    n_frames : int

    Returns
    -------
    ndarray of shape (n_bins, n_frames), float32
    """
    n_in = array.shape[1]
    if n_in == 1:
        return np.repeat(array, n_frames, axis=1).astype(np.float32)
    pos = np.linspace(0.0, n_in - 1, n_frames)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
    w = (pos - lo).astype(np.float64)
    a = array.astype(np.float64)
    return (a[:, lo] * (1.0 - w) + a[:, lo + 1] * w).astype(np.float32)


def stats_vector(array: np.ndarray) -> np.ndarray:
    """Per-bin mean and std over time, and mean and std of the frame-to-frame deltas.

    Parameters
    ----------
    array : ndarray of shape (n_bins, n_frames)

    Returns
    -------
    ndarray of shape (4 * n_bins,), float32: ``[mean, std, delta_mean, delta_std]`` each over the bins
    (deltas are 0 for a single frame).
    """
    a = array.astype(np.float64)
    delta = np.diff(a, axis=1) if a.shape[1] > 1 else np.zeros_like(a)
    return np.concatenate([a.mean(axis=1), a.std(axis=1), delta.mean(axis=1), delta.std(axis=1)]).astype(np.float32)


def image_vector(array: np.ndarray, n_frames: int, per_file: str = "none") -> np.ndarray:
    """Per-file normalised, time-resampled and flattened image (the active region already cut).

    Parameters
    ----------
    array : ndarray of shape (n_bins, n_in)
    n_frames : int
    per_file : ``none`` | ``peak`` | ``mean`` | ``meanvar`` (:func:`normalise_per_file`)

    Returns
    -------
    ndarray of shape (n_bins * n_frames,), float32, bin-major.
    """
    return resample_frames(normalise_per_file(array, mode=per_file), n_frames).ravel()


# --------------------------------------------------------------------------- building

def _reference(settings: ViewsSettings) -> str | None:
    return next((k for k in TRIM_REFERENCES if k in settings.feature_kinds), None)


def _trim_db(settings: ViewsSettings, spec: ViewSpec) -> float | None:
    """The active-region threshold of a view: ``images.trim_db`` for images, the kind's own for stats;
    None for embeddings (the model saw the whole file)."""
    if spec.kind == EMBEDDING_KIND:
        return None
    return settings.images.trim_db if spec.kind in (AE_KIND, "image") else view_settings(settings, spec).trim_db


def _read_array(paths: ProjectPaths, settings: ViewsSettings, kind: str, label: str, stem: str, source: str) -> np.ndarray:
    """One saved feature of one file, as float32 values (the PNG mapped back with its fixed range)."""
    path = paths.feature_file(kind, label_folder(label), stem, f".{source}")
    if source == "npy":
        return np.load(path, allow_pickle=False).astype(np.float32, copy=False)
    vmin, vmax = settings.png_ranges[kind]
    return from_image(read_png(path), vmin=vmin, vmax=vmax)


def _needed_kinds(settings: ViewsSettings, specs: list[ViewSpec]) -> set[str]:
    """The features ``specs`` read, plus the dB reference when one of them trims."""
    reference = _reference(settings) if any(_trim_db(settings, s) is not None for s in specs) else None
    return {s.feature for s in specs} | ({reference} if reference else set())


def file_vectors(settings: ViewsSettings, arrays: dict[str, np.ndarray | None],
                 specs: list[ViewSpec]) -> dict[ViewSpec, np.ndarray | None]:
    """Vectors of one file for ``specs`` (all of one source), from its arrays.

    Parameters
    ----------
    settings : ViewsSettings
    arrays : dict ``feature kind -> ndarray of shape (n_bins, n_frames)`` (float values, as read
        from that source) or None when unreadable; must hold every feature of ``specs`` and the
        dB reference (mel, else spectrogram) when a view trims.
    specs : list of ViewSpec

    Returns
    -------
    dict ``spec -> ndarray of shape (dim,)`` float32, or None where its feature is unusable.
    """
    reference = _reference(settings)
    level = arrays.get(reference) if reference else None
    regions: dict[float | None, slice] = {}
    out: dict[ViewSpec, np.ndarray | None] = {}
    for spec in specs:
        array = arrays.get(spec.feature)
        if array is None or array.ndim != 2 or array.shape[1] == 0:
            out[spec] = None
            continue
        if spec.kind == EMBEDDING_KIND:  # the model saw the whole file: no trimming, no bin pooling
            out[spec] = pool_frames(array.T, mode=settings.views.embedding.pooling)
            continue
        if spec.kind == AE_KIND:
            size = settings.autoencoder.input_size
            out[spec] = fixed_size_image(array, size=(size[0], size[1]), level_db=level, trim_db=settings.images.trim_db,
                                         per_file=settings.images.per_file.get(spec.feature, "none")).ravel()
            continue
        trim_db = _trim_db(settings, spec)
        region = slice(None)
        if level is not None and level.shape[1] == array.shape[1]:
            if trim_db not in regions:  # one active region per threshold and file, not per view
                regions[trim_db] = active_frames(level, top_db=trim_db)
            region = regions[trim_db]
        pooled = pool_bins(array[:, region], settings.views.max_bins)
        if spec.kind == "stats":
            out[spec] = stats_vector(pooled)
        else:
            out[spec] = image_vector(pooled, view_settings(settings, spec).n_frames,
                                     settings.images.per_file.get(spec.feature, "none"))
    return out


def vectors_of_features(settings: ViewsSettings, features: dict[str, np.ndarray], specs: list[ViewSpec],
                        images: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray | None]:
    """Every store vector of one file from its freshly computed feature arrays (stage 03's workers).

    The PNG ("Images") source is the 8-bit image the file's PNG holds, mapped back to values:
    exactly what reading the PNG gives. ``images`` (kind -> :func:`~audioclust.dsp.images.to_image`
    of the array) are those already made for the PNG files; a kind missing there is mapped here.

    Returns
    -------
    dict ``view name -> ndarray of shape (dim,)`` float32, or None.
    """
    images = images or {}
    out: dict[str, np.ndarray | None] = {}
    for source in SOURCES:
        group = [s for s in specs if s.source == source]
        if not group:
            continue
        kinds = _needed_kinds(settings, group)
        if source == "npy":
            arrays: dict[str, np.ndarray | None] = {k: features.get(k) for k in kinds}
        else:
            arrays = {}
            for k in kinds:
                if k not in features:
                    arrays[k] = None
                    continue
                vmin, vmax = settings.png_ranges[k]
                image = images[k] if k in images else to_image(features[k], vmin=vmin, vmax=vmax)
                arrays[k] = from_image(image, vmin=vmin, vmax=vmax)
        out.update({spec.name: vec for spec, vec in file_vectors(settings, arrays, group).items()})
    return out


def vectors_of_files(settings: ViewsSettings, paths: ProjectPaths, label: str, stem: str,
                     specs: list[ViewSpec]) -> dict[str, np.ndarray | None]:
    """Every vector of ``specs`` for one file, read from its saved NPY/PNG files (None where unreadable)."""
    out: dict[str, np.ndarray | None] = {}
    for source in SOURCES:
        group = [s for s in specs if s.source == source]
        if not group:
            continue
        arrays: dict[str, np.ndarray | None] = {}
        for kind in _needed_kinds(settings, group):
            try:
                arrays[kind] = _read_array(paths, settings, kind, label, stem, source)
            except (OSError, ValueError) as exc:
                log.debug("%s/%s %s.%s unreadable: %s", label, stem, kind, source, exc)
                arrays[kind] = None
        out.update({spec.name: vec for spec, vec in file_vectors(settings, arrays, group).items()})
    return out


SOURCES: tuple[str, ...] = ("npy", "png")

#: the store's kind for the autoencoder's input images (stage 05), next to the views' kinds
AE_KIND = "ae"

#: the view kind of a pretrained model's embedding (its feature is the model's name)
EMBEDDING_KIND = "embedding"


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ViewsSettings:
    """What building views needs to know: the stages make it from the config (``stages._shared.views_settings``).

    Attributes
    ----------
    feature_kinds : the features stage 03 extracted (``features.kinds``).
    png_ranges : the value range of each feature's 8-bit image (``features.png_ranges``).
    views : the ``views`` section: which views, how each kind is pooled, scaled, reduced.
    images : the ``images`` section: active-region threshold and per-file normalisation of images.
    autoencoder : the ``autoencoder`` section: its input images are views too.
    seed : seeds PCA, UMAP and the samplers.
    analysis : the ``features`` and ``audio`` sections as dicts: what the saved arrays depend
        on, so part of every cache key.
    embeddings : model name -> what its saved frames depend on (the model's weights and options),
        for each model of ``embeddings.models``: each is a view of kind ``embedding``.
    """

    feature_kinds: tuple[str, ...]
    png_ranges: dict[str, list[float]]
    views: Any
    images: Any
    autoencoder: Any
    seed: int
    analysis: dict[str, Any]
    embeddings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ViewSpec:
    """Which matrix: a feature, a view kind and a source.

    Attributes
    ----------
    feature : a feature kind of stage 03, an embedding model's name, or ``descriptors``.
    kind : ``stats``, ``image``, ``embedding`` or ``descriptors``.
    source : ``npy``, ``png`` or ``csv`` (descriptors).
    """

    feature: str
    kind: str
    source: str

    @property
    def name(self) -> str:
        """``<feature>.<kind>.<source>`` (``descriptors`` alone): file and table name."""
        return DESCRIPTOR_FEATURE if self.kind == DESCRIPTOR_FEATURE else f"{self.feature}.{self.kind}.{self.source}"

    @property
    def type(self) -> str:
        """The summary tables' *Type*: ``image (Arrays)``, ``stats (Images)``, ``descriptors``."""
        return DESCRIPTOR_FEATURE if self.kind == DESCRIPTOR_FEATURE else f"{self.kind} ({SOURCE_NAMES[self.source]})"


def view_settings(settings: ViewsSettings, spec: ViewSpec) -> Any:
    """The sub-section of ``views`` for this view's kind (``stats``, ``image`` or ``descriptors``)."""
    return getattr(settings.views, spec.kind)


DESCRIPTOR_FEATURE = "descriptors"

#: how the summary tables name a source (the original study's words)
SOURCE_NAMES = {"npy": "Arrays", "png": "Images", "csv": "Table"}
