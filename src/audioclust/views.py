"""Feature matrices for clustering ("views"): one row per file, from the stage-03 outputs.

A *view* turns one saved feature of every ``ok`` row of ``features.csv`` (in that order)
into a vector, then the matrix is imputed, scaled and optionally reduced:

``stats``
    Per bin (row of the feature): mean and standard deviation over time, and mean and
    standard deviation of the frame-to-frame differences (the deltas). Layout
    ``[mean(b_0..b_n), std(..), delta_mean(..), delta_std(..)]``: ``4 * n_bins`` values.
``image``
    The time-frequency image itself, made comparable across files of different length:
    trimmed to its active region (``views.image.trim_db``), normalised per file
    (``views.image.per_file``: ``peak`` makes a dB feature dB re the file's loudest bin, so
    the recording level does not decide; ``mean`` removes the per-file offset of every
    coefficient, ``meanvar`` also its spread — cepstral mean and variance normalisation,
    which removes much of the speaker and channel from MFCCs), resampled along time to
    ``views.image.n_frames`` frames by linear interpolation and flattened bin-major
    (``x[b * n_frames + t]``): ``n_bins * n_frames`` values.
``descriptors``
    The scalar descriptor columns of ``features.csv`` as their own "feature".

Each of ``stats`` and ``image`` is built from the float arrays (``npy``, "Arrays") and/or
from the 8-bit images mapped back to values with :func:`audioclust.features.from_image`
(``png``, "Images"), as the original study compared them. Features with more than
``views.max_bins`` bins (the linear spectrogram) are first averaged over groups of
adjacent bins.

Trimming
    A file's active region is decided once per file and source, on its mel (else its
    spectrogram) in dB: frames whose loudest bin is within ``trim_db`` of the file's loudest
    frame; the region runs from the first to the last such frame (pauses inside are kept)
    and is applied to every feature of the file. Without a dB feature nothing is trimmed.

Transform (:func:`transform`)
    non-finite values -> column means (an all-missing column -> 0); scale (``standard``:
    z-score, a constant column stays 0, optionally clipped at ±``clip`` per view kind;
    ``minmax``; ``none``); PCA (``pca`` < 1: the
    fewest components whose cumulative explained variance reaches it; >= 1: that many;
    optional whitening); optional UMAP (seeded; per view kind, e.g. ``views.image.umap``: its
    neighbour graph joins the recordings of one word said by different voices, or of one
    sound at different pitches, that a linear projection leaves apart).

Store and cache
    The raw vectors come from the packed store (:mod:`audioclust.feature_store`,
    ``features/<name>/store/``), which stage 03 fills as it extracts; a view the store
    lacks, or holds with other settings (``features``, ``audio`` and the view's own
    settings: :func:`settings_key`), is built once from the per-file arrays and added to
    it. ``features/<name>/views/<view name>.npz`` caches the transformed matrix under the
    hash of those settings, the list of files, scale, PCA, UMAP and the seed: a re-run reads
    it; a changed transform recomputes only the transform, from the store.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from tqdm.auto import tqdm

from .config import Config, section_hash
from .datasets import label_folder
from .errors import StageInputError
from . import feature_store
from .feature_store import FeatureStore
from .features import (DESCRIPTORS, active_frames, fixed_size_image, from_image, normalise_per_file, read_png,
                       to_image)
from .paths import ProjectPaths
from .storage import atomic_path

log = logging.getLogger(__name__)

VIEW_KINDS: tuple[str, ...] = ("stats", "image")
SOURCES: tuple[str, ...] = ("npy", "png")
DESCRIPTOR_FEATURE = "descriptors"
#: the store's kind for the autoencoder's input images (stage 05), next to the views' kinds
AE_KIND = "ae"
#: how the summary tables name a source (the original study's words)
SOURCE_NAMES = {"npy": "Arrays", "png": "Images", "csv": "Table"}
#: features in dB that can decide the active region, in order of preference
TRIM_REFERENCES: tuple[str, ...] = ("mel", "spectrogram")
_CACHE_VERSION = 1
#: fewer samples than this are not embedded by UMAP (its spectral start needs a few more than its dimensions)
UMAP_MIN_SAMPLES = 16


# --------------------------------------------------------------------------- specs

@dataclass(frozen=True)
class ViewSpec:
    """Which matrix: a feature, a view kind and a source.

    Attributes
    ----------
    feature : a feature kind of stage 03, or ``descriptors``.
    kind : ``stats``, ``image`` or ``descriptors``.
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


@dataclass
class View:
    """One feature matrix, ready to cluster.

    Attributes
    ----------
    spec : ViewSpec
    X : ndarray of shape (n_samples, n_dims_out), float32
        What is clustered (after imputation, scaling, PCA and UMAP).
    raw : ndarray of shape (n_samples, n_dims), float32
        The vectors before the transform (NaN where a file's feature could not be read).
    explained_variance_ratio : ndarray of shape (n_components_all,) or None
        Of the full PCA of the scaled matrix, when PCA is on (for the explained-variance figure).
    n_components : int or None
        PCA components kept (None: no PCA).
    n_missing : int
        Rows with a non-finite value in ``raw`` (imputed).
    """

    spec: ViewSpec
    X: np.ndarray
    raw: np.ndarray
    explained_variance_ratio: np.ndarray | None
    n_components: int | None
    n_missing: int


def view_specs(cfg: Config) -> list[ViewSpec]:
    """The views the config asks for, in ``views.features`` × ``views.kinds`` × ``views.sources`` order.

    A feature that stage 03 did not write (not in ``features.kinds``) is left out with a warning.
    """
    v = cfg.views
    specs: list[ViewSpec] = []
    for feature in v.features:
        if feature == DESCRIPTOR_FEATURE:
            specs.append(ViewSpec(DESCRIPTOR_FEATURE, DESCRIPTOR_FEATURE, "csv"))
            continue
        if feature not in cfg.features.kinds:
            log.warning("views.features lists %s but features.kinds does not: it has no arrays, left out", feature)
            continue
        specs.extend(ViewSpec(feature, kind, source) for kind in v.kinds for source in v.sources)
    return specs


def view_settings(cfg: Config, spec: ViewSpec) -> Any:
    """The sub-section of ``views`` for this view's kind (``stats``, ``image`` or ``descriptors``)."""
    return getattr(cfg.views, spec.kind)


# --------------------------------------------------------------------------- input

def read_table(paths: ProjectPaths, ok_only: bool = True) -> pd.DataFrame:
    """The ``ok`` rows of ``features.csv`` in file order (index reset), labels as strings ('' = none).

    ``ok_only=False``: every row.

    Raises
    ------
    StageInputError
        When ``features.csv`` is missing, lacks a column of the contract or has no ok row.
    """
    source = paths.features_csv
    if not source.is_file():
        raise StageInputError(f"{paths.rel(source)} not found: "
                              f"run `audioclust extract --dataset {paths.dataset}` first")
    table = pd.read_csv(source, dtype={"stem": str, "label": str, "path": str, "status": str, "reason": str},
                        keep_default_na=False, na_values={c: ["", "nan", "NaN"] for c in DESCRIPTORS})
    missing = [c for c in ("stem", "label", "status", *DESCRIPTORS) if c not in table.columns]
    if missing:
        raise StageInputError(f"{paths.rel(source)} lacks the column(s) {', '.join(missing)}: "
                              f"re-run `audioclust extract --dataset {paths.dataset}`")
    ok = table[table["status"] == "ok"].reset_index(drop=True)
    if not ok_only:
        return table
    if ok.empty:
        raise StageInputError(f"{paths.rel(source)} has no row with status ok ({len(table)} rows): check the "
                              "reasons there and re-run `audioclust extract`")
    return ok


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
    return resample_frames(normalise_per_file(array, per_file), n_frames).ravel()


# --------------------------------------------------------------------------- matrix steps

def impute_column_means(X: np.ndarray) -> np.ndarray:
    """Replace non-finite entries by their column's mean over the finite ones (0 when none is finite).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_dims)

    Returns
    -------
    ndarray of shape (n_samples, n_dims), float64 (a copy)
    """
    X = np.array(X, dtype=np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        counts = (~bad).sum(axis=0)
        sums = np.where(bad, 0.0, X).sum(axis=0)
        means = np.divide(sums, counts, out=np.zeros(X.shape[1]), where=counts > 0)
        X[bad] = np.take(means, np.nonzero(bad)[1])
    return X


def n_components_for(ratio: np.ndarray, pca: float) -> int:
    """Components kept for ``pca``: ``int(pca)`` when >= 1, else the fewest reaching that variance fraction.

    Parameters
    ----------
    ratio : ndarray of shape (n_all,)
        Explained-variance ratios, decreasing.
    pca : float

    Returns
    -------
    int in [1, n_all]
    """
    if pca >= 1:
        return max(1, min(int(pca), ratio.size))
    cumulative = np.cumsum(ratio)
    # tolerance: a cumulative sum that should reach 1.0 may stop at 0.9999999
    return max(1, min(int(np.searchsorted(cumulative, pca - 1e-9) + 1), ratio.size))


def transform(
    raw: np.ndarray,
    scale: str = "standard",
    clip: float | None = None,
    pca: float | None = None,
    whiten: bool = False,
    umap: int | None = None,
    umap_neighbors: int = 50,
    umap_min_dist: float = 0.0,
    umap_max_samples: int | None = None,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """Impute, scale, reduce.

    Parameters
    ----------
    raw : ndarray of shape (n_samples, n_dims)
    scale : ``standard`` | ``minmax`` | ``none``
    clip : float or None
        With ``standard`` scaling, z-scores beyond ±clip are set to ±clip, so that one
        far-out file cannot take a cluster (or a principal component) for itself.
    pca : float or None
        See :func:`n_components_for`; None: no PCA.
    whiten : bool
        Divide each kept component by its standard deviation.
    umap : int or None
        UMAP output dimensions (after PCA); None: no UMAP. Skipped, with a warning, below
        :data:`UMAP_MIN_SAMPLES` samples.
    umap_neighbors, umap_min_dist : UMAP parameters.
    umap_max_samples : int or None
        Above this many samples UMAP is fitted on a seeded sample of this size and the
        other samples are placed with its ``transform`` (the fit grows faster than n).
    random_state : int
        Seeds UMAP and its sample.

    Returns
    -------
    X : ndarray of shape (n_samples, n_out), float32
    explained_variance_ratio : ndarray of shape (min(n_samples, n_dims),) or None
    n_components : int or None
    """
    X = impute_column_means(raw)
    if scale == "standard":
        std = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
        if clip is not None:
            X = np.clip(X, -clip, clip)
    elif scale == "minmax":
        lo, span = X.min(axis=0), np.ptp(X, axis=0)
        X = (X - lo) / np.where(span > 0, span, 1.0)
    ratio, n_keep = None, None
    if pca is not None and X.shape[0] >= 2:
        # every component, for the explained-variance curve; the eigen-decomposition of the
        # covariance is the cheaper exact route when there are many more samples than dimensions
        solver = "covariance_eigh" if X.shape[0] >= 2 * X.shape[1] else "full"
        model = PCA(n_components=None, svd_solver=solver).fit(X)
        ratio = np.nan_to_num(model.explained_variance_ratio_)
        n_keep = n_components_for(ratio, pca)
        X = model.transform(X)[:, :n_keep]
        if whiten:
            sd = np.sqrt(model.explained_variance_[:n_keep])
            X = X / np.where(sd > 1e-12, sd, 1.0)
    if umap is not None:
        X = _umap(X, umap, umap_neighbors, umap_min_dist, umap_max_samples, random_state)
    return X.astype(np.float32), ratio, n_keep


def _umap(X: np.ndarray, n_components: int, n_neighbors: int, min_dist: float, max_samples: int | None,
          random_state: int) -> np.ndarray:
    """UMAP of ``X`` (see :func:`transform`); ``X`` unchanged when there are too few samples."""
    n = X.shape[0]
    if n < UMAP_MIN_SAMPLES:
        log.warning("UMAP skipped: %d samples, it needs at least %d", n, UMAP_MIN_SAMPLES)
        return X
    import umap as umap_learn  # heavy import (numba), only when asked for
    model = umap_learn.UMAP(n_components=min(n_components, n - 2), n_neighbors=min(n_neighbors, n - 1),
                            min_dist=min_dist, random_state=random_state)
    if max_samples is None or n <= max_samples:
        return model.fit_transform(X)
    fit = np.sort(np.random.default_rng(random_state).choice(n, max_samples, replace=False))
    out = np.empty((n, model.n_components), dtype=np.float32)
    out[fit] = model.fit_transform(X[fit])
    rest = np.setdiff1d(np.arange(n), fit)
    out[rest] = model.transform(X[rest])
    return out


# --------------------------------------------------------------------------- building

def _reference(cfg: Config) -> str | None:
    return next((k for k in TRIM_REFERENCES if k in cfg.features.kinds), None)


def store_specs(cfg: Config) -> list[ViewSpec]:
    """What the packed store holds: the views of the config (but the descriptors, already in
    ``features.csv``) and, when stage 05 is enabled, the autoencoder's input images (kind ``ae``)."""
    specs = [s for s in view_specs(cfg) if s.kind != DESCRIPTOR_FEATURE]
    ae = cfg.autoencoder
    if ae.enabled:
        specs += [ViewSpec(f, AE_KIND, ae.source) for f in ae.features if f in cfg.features.kinds]
    return specs


def _trim_db(cfg: Config, spec: ViewSpec) -> float | None:
    return cfg.autoencoder.trim_db if spec.kind == AE_KIND else view_settings(cfg, spec).trim_db


def settings_key(cfg: Config, spec: ViewSpec) -> str:
    """Hash of everything that makes one file's vector of this view (not the dataset-wide transform)."""
    if spec.kind == AE_KIND:
        ae = cfg.autoencoder
        own = {"input_size": list(ae.input_size), "trim_db": ae.trim_db, "per_file": ae.per_file.get(spec.feature, "none")}
    else:
        settings = dataclasses.asdict(view_settings(cfg, spec))
        own = {k: settings[k] for k in ("trim_db", "n_frames") if k in settings}
        if spec.kind == "image":
            own["per_file"] = settings["per_file"].get(spec.feature, "none")
    extra = {"version": _CACHE_VERSION, "spec": dataclasses.astuple(spec), "max_bins": cfg.views.max_bins,
             "reference": _reference(cfg), "own": own}
    return section_hash(cfg, "features", "audio", extra=extra)


def _key(cfg: Config, spec: ViewSpec, files: list[str]) -> str:
    """Cache key of the transformed matrix: the vectors' settings, the files, and the transform."""
    s = view_settings(cfg, spec)
    v = cfg.views
    raw = settings_key(cfg, spec) if spec.kind != DESCRIPTOR_FEATURE else section_hash(cfg, "features", "audio")
    extra = {"raw": raw, "files": files, "scale": v.scale, "clip": s.clip, "pca": s.pca, "whiten": s.whiten,
             "umap": s.umap}
    if s.umap is not None:
        extra.update(umap_neighbors=v.umap_neighbors, umap_min_dist=v.umap_min_dist,
                     umap_max_samples=v.umap_max_samples)
    return section_hash(cfg, "seed", extra=extra)


def cache_path(paths: ProjectPaths, spec: ViewSpec) -> Path:
    """``features/<name>/views/<view name>.npz``: the transformed matrix."""
    return paths.features / "views" / f"{spec.name}.npz"


def _read_cache(path: Path) -> dict[str, Any] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, KeyError):
        return None


def _write_cache(path: Path, **arrays: Any) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _read_array(paths: ProjectPaths, cfg: Config, kind: str, label: str, stem: str, source: str) -> np.ndarray:
    """One saved feature of one file, as float32 values (the PNG mapped back with its fixed range)."""
    path = paths.feature_file(kind, label_folder(label), stem, f".{source}")
    if source == "npy":
        return np.load(path, allow_pickle=False).astype(np.float32, copy=False)
    vmin, vmax = cfg.features.png_ranges[kind]
    return from_image(read_png(path), vmin=vmin, vmax=vmax)


def _needed_kinds(cfg: Config, specs: list[ViewSpec]) -> set[str]:
    """The features ``specs`` read, plus the dB reference when one of them trims."""
    reference = _reference(cfg) if any(_trim_db(cfg, s) is not None for s in specs) else None
    return {s.feature for s in specs} | ({reference} if reference else set())


def file_vectors(cfg: Config, arrays: dict[str, np.ndarray | None],
                 specs: list[ViewSpec]) -> dict[ViewSpec, np.ndarray | None]:
    """Vectors of one file for ``specs`` (all of one source), from its arrays.

    Parameters
    ----------
    cfg : Config
    arrays : dict ``feature kind -> ndarray of shape (n_bins, n_frames)`` (float values, as read
        from that source) or None when unreadable; must hold every feature of ``specs`` and the
        dB reference (mel, else spectrogram) when a view trims.
    specs : list of ViewSpec

    Returns
    -------
    dict ``spec -> ndarray of shape (dim,)`` float32, or None where its feature is unusable.
    """
    reference = _reference(cfg)
    level = arrays.get(reference) if reference else None
    regions: dict[float | None, slice] = {}
    out: dict[ViewSpec, np.ndarray | None] = {}
    for spec in specs:
        array = arrays.get(spec.feature)
        if array is None or array.ndim != 2 or array.shape[1] == 0:
            out[spec] = None
            continue
        if spec.kind == AE_KIND:
            ae = cfg.autoencoder
            out[spec] = fixed_size_image(array, size=(ae.input_size[0], ae.input_size[1]), level_db=level,
                                         trim_db=ae.trim_db, per_file=ae.per_file.get(spec.feature, "none")).ravel()
            continue
        s = view_settings(cfg, spec)
        region = slice(None)
        if level is not None and level.shape[1] == array.shape[1]:
            if s.trim_db not in regions:  # one active region per threshold and file, not per view
                regions[s.trim_db] = active_frames(level, s.trim_db)
            region = regions[s.trim_db]
        pooled = pool_bins(array[:, region], cfg.views.max_bins)
        if spec.kind == "stats":
            out[spec] = stats_vector(pooled)
        else:
            out[spec] = image_vector(pooled, s.n_frames, s.per_file.get(spec.feature, "none"))
    return out


def vectors_of_features(cfg: Config, features: dict[str, np.ndarray], specs: list[ViewSpec],
                        images: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray | None]:
    """Every store vector of one file from its freshly computed feature arrays (stage 03's workers).

    The PNG ("Images") source is the 8-bit image the file's PNG holds, mapped back to values:
    exactly what reading the PNG gives. ``images`` (kind -> :func:`~audioclust.features.to_image`
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
        kinds = _needed_kinds(cfg, group)
        if source == "npy":
            arrays: dict[str, np.ndarray | None] = {k: features.get(k) for k in kinds}
        else:
            arrays = {}
            for k in kinds:
                if k not in features:
                    arrays[k] = None
                    continue
                vmin, vmax = cfg.features.png_ranges[k]
                image = images[k] if k in images else to_image(features[k], vmin=vmin, vmax=vmax)
                arrays[k] = from_image(image, vmin=vmin, vmax=vmax)
        out.update({spec.name: vec for spec, vec in file_vectors(cfg, arrays, group).items()})
    return out


def vectors_of_files(cfg: Config, paths: ProjectPaths, label: str, stem: str,
                     specs: list[ViewSpec]) -> dict[str, np.ndarray | None]:
    """Every vector of ``specs`` for one file, read from its saved NPY/PNG files (None where unreadable)."""
    out: dict[str, np.ndarray | None] = {}
    for source in SOURCES:
        group = [s for s in specs if s.source == source]
        if not group:
            continue
        arrays: dict[str, np.ndarray | None] = {}
        for kind in _needed_kinds(cfg, group):
            try:
                arrays[kind] = _read_array(paths, cfg, kind, label, stem, source)
            except (OSError, ValueError) as exc:
                log.debug("%s/%s %s.%s unreadable: %s", label, stem, kind, source, exc)
                arrays[kind] = None
        out.update({spec.name: vec for spec, vec in file_vectors(cfg, arrays, group).items()})
    return out


def _raw_matrices(cfg: Config, paths: ProjectPaths, table: pd.DataFrame,
                  specs: list[ViewSpec]) -> dict[ViewSpec, np.ndarray]:
    """One pass over the saved files of ``table`` for every spec: spec -> (n_samples, n_dims)."""
    rows: dict[ViewSpec, list[np.ndarray | None]] = {s: [] for s in specs}
    records = table[["label", "stem"]].itertuples(index=False)
    for label, stem in tqdm(records, total=len(table), desc="views (reading features)", unit="file", disable=None):
        vectors = vectors_of_files(cfg, paths, label, stem, specs)
        for spec in specs:
            rows[spec].append(vectors[spec.name])
    out = {}
    for spec, vecs in rows.items():
        sizes = {v.size for v in vecs if v is not None}
        if not sizes:
            raise StageInputError(f"no file has a readable {spec.feature}.{spec.source}: re-run `audioclust extract "
                                  f"--dataset {paths.dataset}` (with features.png: true for png views)")
        if len(sizes) > 1:
            raise StageInputError(f"{spec.feature}.{spec.source} arrays have different numbers of bins "
                                  f"({sorted(sizes)}): re-run `audioclust extract` so every file uses the same "
                                  "parameters")
        dim = sizes.pop()
        bad = sum(v is None for v in vecs)
        if bad:
            log.warning("%s: %d of %d files could not be read; their rows are imputed with column means",
                        spec.name, bad, len(vecs))
        out[spec] = np.vstack([np.full(dim, np.nan, np.float32) if v is None else v for v in vecs])
    return out


def _descriptor_matrix(table: pd.DataFrame) -> np.ndarray:
    return table[list(DESCRIPTORS)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)


def _stored_or_built(cfg: Config, paths: ProjectPaths, table: pd.DataFrame, files: list[str],
                     specs: list[ViewSpec]) -> dict[ViewSpec, np.ndarray]:
    """Raw matrices from the packed store; views it lacks are built from the saved files and added to it.

    The store is updated only when ``table`` is every ok row of ``features.csv`` (the store's
    rows): a subset is built for itself.
    """
    store = FeatureStore.open(paths.feature_store)
    raw: dict[ViewSpec, np.ndarray] = {}
    for spec in specs:
        matrix = None if store is None else store.matrix(spec.name, settings_key(cfg, spec), files)
        if matrix is not None:
            raw[spec] = matrix
    todo = [s for s in specs if s not in raw]
    if not todo:
        return raw
    log.info("views: building %d view(s) from the per-file arrays (%s); the packed store holds the others",
             len(todo), ", ".join(s.name for s in todo))
    raw.update(_raw_matrices(cfg, paths, table, todo))
    full = read_table(paths, ok_only=False)
    full_keys = [f"{label_folder(lab)}/{stem}" for lab, stem in zip(full["label"], full["stem"])]
    if [k for k, st in zip(full_keys, full["status"]) if st == "ok"] == files:
        if store is None or store.index["key"].tolist() != full_keys \
                or store.index["status"].tolist() != full["status"].tolist():
            store = feature_store.create(paths.feature_store, zip(full_keys, full["label"], full["stem"],
                                                                  full["status"]))
        for spec in todo:
            feature_store.add_view(store, spec.name, settings_key(cfg, spec), raw[spec])
    return raw


def stored_ae_images(cfg: Config, paths: ProjectPaths, table: pd.DataFrame, feature: str) -> np.ndarray | None:
    """The autoencoder's input images of ``feature`` for the rows of ``table``, from the packed store.

    Returns
    -------
    ndarray of shape (n_samples, T, F), float32 (``autoencoder.input_size``), before the dataset-wide
    scaling; None when the store does not hold them with the current settings (read the files then).
    """
    store = FeatureStore.open(paths.feature_store)
    if store is None:
        return None
    spec = ViewSpec(feature, AE_KIND, cfg.autoencoder.source)
    files = [f"{label_folder(lab)}/{stem}" for lab, stem in zip(table["label"], table["stem"])]
    matrix = store.matrix(spec.name, settings_key(cfg, spec), files)
    if matrix is None or not np.isfinite(matrix).all():
        return None
    return matrix.reshape(len(files), int(cfg.autoencoder.input_size[0]), int(cfg.autoencoder.input_size[1]))


def build_views(cfg: Config, paths: ProjectPaths, table: pd.DataFrame | None = None,
                specs: list[ViewSpec] | None = None) -> list[View]:
    """Every view of the config: raw vectors from the packed store, transformed matrices from the cache.

    Parameters
    ----------
    cfg : Config
        ``views`` (what and how), ``features`` (kinds, PNG ranges), ``seed``.
    paths : ProjectPaths
    table : DataFrame or None
        The rows to use (:func:`read_table`; None reads it).
    specs : list of ViewSpec or None
        None: :func:`view_specs` of the config.

    Returns
    -------
    list of View, in ``specs`` order; every ``X`` has ``len(table)`` rows in table order.
    """
    table = read_table(paths) if table is None else table
    specs = view_specs(cfg) if specs is None else specs
    files = [f"{label_folder(lab)}/{stem}" for lab, stem in zip(table["label"], table["stem"])]
    if any(s.kind != DESCRIPTOR_FEATURE for s in specs) and _reference(cfg) is None and any(
            view_settings(cfg, s).trim_db is not None for s in specs if s.kind != DESCRIPTOR_FEATURE):
        log.warning("trim_db is set but neither mel nor spectrogram was extracted: views are not trimmed")

    raw = _stored_or_built(cfg, paths, table, files, [s for s in specs if s.kind != DESCRIPTOR_FEATURE])
    views = []
    for spec in specs:
        if spec.kind == DESCRIPTOR_FEATURE:
            raw[spec] = _descriptor_matrix(table)
        key = _key(cfg, spec, files)
        data = _read_cache(cache_path(paths, spec))
        if data is not None and str(data.get("key")) == key:
            ratio = data["explained_variance_ratio"] if data["explained_variance_ratio"].size else None
            n_comp = int(data["n_components"]) if int(data["n_components"]) >= 0 else None
            X = data["X"]
        else:
            s, v = view_settings(cfg, spec), cfg.views
            X, ratio, n_comp = transform(raw[spec], scale=v.scale, clip=s.clip, pca=s.pca, whiten=s.whiten,
                                         umap=s.umap, umap_neighbors=v.umap_neighbors, umap_min_dist=v.umap_min_dist,
                                         umap_max_samples=v.umap_max_samples, random_state=cfg.seed)
            _write_cache(cache_path(paths, spec), X=X, key=np.array(key),
                         explained_variance_ratio=np.zeros(0) if ratio is None else ratio,
                         n_components=np.array(-1 if n_comp is None else n_comp),
                         spec=np.array(json.dumps(dataclasses.asdict(spec))))
        n_missing = int((~np.isfinite(raw[spec])).any(axis=1).sum())
        views.append(View(spec=spec, X=X, raw=raw[spec], explained_variance_ratio=ratio, n_components=n_comp,
                          n_missing=n_missing))
        log.debug("view %s: %s -> %s", spec.name, raw[spec].shape, X.shape)
    return views


def embed_2d(X: np.ndarray, method: str = "pca", random_state: int = 0) -> np.ndarray:
    """A 2-D embedding of a view for the scatter figures.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_dims)
    method : ``pca`` (first two components) or ``tsne`` (sklearn t-SNE, PCA-initialised,
        perplexity min(30, (n - 1) / 3), seeded).

    Returns
    -------
    ndarray of shape (n_samples, 2), float32
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    if X.shape[1] < 2:
        return np.column_stack([X[:, 0], np.zeros(n)]).astype(np.float32)
    if method == "pca":
        return PCA(n_components=2, random_state=random_state).fit_transform(X).astype(np.float32)
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state).fit_transform(
        X).astype(np.float32)
