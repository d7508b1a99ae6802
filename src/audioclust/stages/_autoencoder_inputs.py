"""Stage 05's inputs: which ones it trains on (:func:`model_inputs`) and each one's dataset, the feature images of
every file (:func:`input_dataset`) or a pretrained model's embedding view, DEC's vectors (:func:`embedding_vectors`,
:func:`embedding_dataset`)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from audioclust.config import EVERY_EMBEDDING, Config
from audioclust.core.errors import StageInputError
from audioclust.core.paths import ProjectPaths, label_folder
from audioclust.deep.data import FeaturesDataset
from audioclust.dsp.images import from_image, read_png
from audioclust.represent.vectors import EMBEDDING_KIND, TRIM_REFERENCES, ViewSpec, ViewsSettings
from audioclust.represent.views import build_views, embedded
from audioclust.stages._shared import embedding_models

log = logging.getLogger(__name__)


def model_inputs(cfg: Config, paths: ProjectPaths, warn: bool = True) -> list[str]:
    """``autoencoder.features`` with ``embeddings`` (:data:`~audioclust.config.EVERY_EMBEDDING`) replaced by
    the models of ``embeddings.models`` that stage 03 embedded, each once, in the order listed.

    A model the token brings in but that was not embedded is left out with a warning (unless ``warn`` is false:
    a preview, before the stage itself warns), as stage 04 leaves out its view; a model named itself must have its
    embeddings (:func:`embedding_vectors` says so)."""
    inputs: list[str] = []
    for name in cfg.autoencoder.features:
        if name != EVERY_EMBEDDING:
            inputs.append(name)
            continue
        inputs += [model.name for model in embedding_models(cfg) if embedded(paths, model.name, warn)]
    return list(dict.fromkeys(inputs))


def feature_files(paths: ProjectPaths, table: pd.DataFrame, feature: str, source: str) -> list[Path]:
    """The stage-03 file of ``feature`` for every row of ``table``, in order.

    Raises
    ------
    StageInputError
        When any of them is missing, naming the first and what to run.
    """
    files = [paths.feature_file(feature, label_folder(label), stem, f".{source}")
             for label, stem in zip(table["label"].fillna("").astype(str), table["stem"])]
    missing = [f for f in files if not f.is_file()]
    if missing:
        need = f"'{feature}' in features.kinds" + (" and features.png: true" if source == "png" else "")
        raise StageInputError(f"{len(missing)} of {len(files)} {feature} .{source} files are missing (first: "
                              f"{paths.rel(missing[0])}): run `audioclust extract --dataset {paths.dataset}` with "
                              f"{need}")
    return files


def input_dataset(cfg: Config, paths: ProjectPaths, table: pd.DataFrame, feature: str,
                  images: np.ndarray | None = None) -> FeaturesDataset:
    """The autoencoder's input of ``feature`` for every row of ``table``, scaled (``autoencoder.scale``).

    The images come from the packed feature store or from the stage-03 files; both give the same images
    and keys (the files' root-relative paths), so the same checkpoint is reused whichever was read.

    Parameters
    ----------
    images : ndarray of shape (n_samples, T, F), optional
        The per-file images already prepared with the current settings (the packed
        feature store: :func:`audioclust.represent.views.stored_ae_images`); None: prepare them from
        the stage-03 files (:func:`feature_files`; PNG images mapped back to feature values
        with ``features.png_ranges``, as stage 04 reads them), trimmed on :func:`level_arrays`.
    """
    ae = cfg.autoencoder
    keys = [paths.rel(paths.feature_file(feature, label_folder(label), stem, f".{ae.source}"))
            for label, stem in zip(table["label"].fillna("").astype(str), table["stem"])]
    if images is not None:
        return FeaturesDataset(list(images), size=ae.input_size, scale=ae.scale, keys=keys, prepared=True)
    return FeaturesDataset(_read_arrays(cfg, paths, table, feature), size=ae.input_size, scale=ae.scale,
                           keys=keys, levels=level_arrays(cfg, paths, table, feature), trim_db=cfg.images.trim_db,
                           per_file=cfg.images.per_file.get(feature, "none"))


def embedding_vectors(settings: ViewsSettings, paths: ProjectPaths, table: pd.DataFrame, model: str) -> np.ndarray:
    """A pretrained model's embedding view for every row of ``table``: the matrix stage 04 clusters.

    Returns
    -------
    ndarray of shape (n_samples, n_dims), float32: pooled, unit length, scaled and reduced as
    ``views.embedding`` says (:func:`audioclust.represent.views.build_views`).

    Raises
    ------
    StageInputError
        No file has this model's embedding (run ``audioclust embed``).
    """
    spec = ViewSpec(model, EMBEDDING_KIND, "npy")
    return build_views(settings, paths, table, specs=[spec])[0].X


def embedding_dataset(paths: ProjectPaths, table: pd.DataFrame, model: str, X: np.ndarray) -> FeaturesDataset:
    """The embedding view ``X`` of ``model`` (:func:`embedding_vectors`) as DEC's input: each file a (1, D)
    "image", not rescaled (the view is standardised already), keyed like the images so checkpoints are reused."""
    keys = [paths.rel(paths.feature_file(model, label_folder(label), stem, ".npy"))
            for label, stem in zip(table["label"].fillna("").astype(str), table["stem"])]
    return FeaturesDataset(list(X[:, None, :]), size=(1, X.shape[1]), scale="none", keys=keys, prepared=True)


def level_arrays(cfg: Config, paths: ProjectPaths, table: pd.DataFrame, feature: str) -> list[np.ndarray] | None:
    """The dB arrays that decide each file's active region (``images.trim_db``), in ``table`` order.

    The reference is the file's mel spectrogram, else its spectrogram (the first of
    :data:`audioclust.represent.vectors.TRIM_REFERENCES` that stage 03 extracted), read from the
    ``autoencoder.source`` files (a PNG mapped back to dB with ``features.png_ranges``).

    Returns
    -------
    list of ndarray of shape (n_ref_bins, n_frames), or None: no trimming (``trim_db`` null),
    the feature is its own reference, or no dB feature was extracted (logged; nothing is
    trimmed then).
    """
    if cfg.images.trim_db is None:
        return None
    reference = next((k for k in TRIM_REFERENCES if k in cfg.features.kinds), None)
    if reference is None:
        log.info("autoencoder: no mel or spectrogram among features.kinds to find the active region; "
                 "%s is not trimmed", feature)
        return None
    if reference == feature:
        return None
    return _read_arrays(cfg, paths, table, reference)


def _read_arrays(cfg: Config, paths: ProjectPaths, table: pd.DataFrame, feature: str) -> list[np.ndarray]:
    """The feature values of every row: the NPY arrays, or the PNG images mapped back with ``features.png_ranges``."""
    source = cfg.autoencoder.source
    files = feature_files(paths, table, feature, source)
    if source == "npy":
        return [np.load(path, allow_pickle=False) for path in files]
    vmin, vmax = cfg.features.png_ranges[feature]
    return [from_image(read_png(path), vmin=vmin, vmax=vmax) for path in files]


__all__ = ['embedding_dataset', 'embedding_vectors', 'feature_files', 'input_dataset', 'level_arrays', 'model_inputs']
