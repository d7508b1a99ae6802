"""Feature matrices for clustering ("views"): one row per file, from the stage-03 outputs.

A *view* turns one saved feature of every ``ok`` row of ``features.csv`` (in that order)
into a vector, then the matrix is imputed, scaled and optionally reduced:

``stats``
    Per bin (row of the feature): mean and standard deviation over time, and mean and
    standard deviation of the frame-to-frame differences (the deltas). Layout
    ``[mean(b_0..b_n), std(..), delta_mean(..), delta_std(..)]``: ``4 * n_bins`` values.
``image``
    The time-frequency image itself, made comparable across files of different length:
    trimmed to its active region (``images.trim_db``), normalised per file
    (``images.per_file``: ``peak`` makes a dB feature dB re the file's loudest bin, so
    the recording level does not decide; ``mean`` removes the per-file offset of every
    coefficient, ``meanvar`` also its spread — cepstral mean and variance normalisation,
    which removes much of the speaker and channel from MFCCs), resampled along time to
    ``views.image.n_frames`` frames by linear interpolation and flattened bin-major
    (``x[b * n_frames + t]``): ``n_bins * n_frames`` values.
``descriptors``
    The scalar descriptor columns of ``features.csv`` as their own "feature".

Each of ``stats`` and ``image`` is built from the float arrays (``npy``, "Arrays") and/or
from the 8-bit images mapped back to values with :func:`audioclust.dsp.images.from_image`
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
    The raw vectors come from the packed store (:mod:`audioclust.represent.store`,
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audioclust.core.cache import read_memo, stable_hash, write_memo
from audioclust.core.errors import StageInputError
from audioclust.core.paths import ProjectPaths, file_key
from audioclust.core.progress import progress
from audioclust.dsp.descriptors import DESCRIPTORS
from audioclust.represent import store as feature_store
from audioclust.represent.pipeline import transform
from audioclust.represent.store import FeatureStore
from audioclust.represent.vectors import (
    AE_KIND,
    DESCRIPTOR_FEATURE,
    EMBEDDING_KIND,
    ViewSpec,
    ViewsSettings,
    _reference,
    _trim_db,
    vectors_of_files,
    view_settings,
)

log = logging.getLogger(__name__)


VIEW_KINDS: tuple[str, ...] = ("stats", "image")

_CACHE_VERSION = 1


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


def view_specs(settings: ViewsSettings) -> list[ViewSpec]:
    """The views the config asks for, in ``views.features`` × ``views.kinds`` × ``views.sources`` order,
    then one ``embedding`` view per model of ``embeddings.models``.

    A feature that stage 03 did not write (not in ``features.kinds``) is left out with a warning.
    """
    v = settings.views
    specs: list[ViewSpec] = []
    for feature in v.features:
        if feature == DESCRIPTOR_FEATURE:
            specs.append(ViewSpec(DESCRIPTOR_FEATURE, DESCRIPTOR_FEATURE, "csv"))
            continue
        if feature not in settings.feature_kinds:
            log.warning("views.features lists %s but features.kinds does not: it has no arrays, left out", feature)
            continue
        specs.extend(ViewSpec(feature, kind, source) for kind in v.kinds for source in v.sources)
    specs.extend(ViewSpec(model, EMBEDDING_KIND, "npy") for model in settings.embeddings)
    return specs


def store_specs(settings: ViewsSettings) -> list[ViewSpec]:
    """What stage 03 packs into the store: the views of the config (but the descriptors, already in
    ``features.csv``, and the embeddings, which stage 04 adds when it first reads them) and, when
    stage 05 is enabled, the autoencoder's input images (kind ``ae``)."""
    specs = [s for s in view_specs(settings) if s.kind not in (DESCRIPTOR_FEATURE, EMBEDDING_KIND)]
    ae = settings.autoencoder
    if ae.enabled:
        specs += [ViewSpec(f, AE_KIND, ae.source) for f in ae.features if f in settings.feature_kinds]
    return specs


def settings_key(settings: ViewsSettings, spec: ViewSpec) -> str:
    """Hash of everything that makes one file's vector of this view (not the dataset-wide transform)."""
    own: dict[str, Any] = {"trim_db": _trim_db(settings, spec)}
    if spec.kind == AE_KIND:
        own.update(input_size=list(settings.autoencoder.input_size))
    elif spec.kind == "image":
        own.update(n_frames=view_settings(settings, spec).n_frames)
    if spec.kind in (AE_KIND, "image"):
        own.update(per_file=settings.images.per_file.get(spec.feature, "none"))
    if spec.kind == EMBEDDING_KIND:  # the frames depend on the model, not on the features section
        own.update(model=settings.embeddings.get(spec.feature), pooling=settings.views.embedding.pooling)
    extra = {"version": _CACHE_VERSION, "spec": dataclasses.astuple(spec), "max_bins": settings.views.max_bins,
             "reference": _reference(settings), "own": own}
    return stable_hash({**settings.analysis, "extra": extra})


def _key(settings: ViewsSettings, spec: ViewSpec, files: list[str]) -> str:
    """Cache key of the transformed matrix: the vectors' settings, the files, and the transform."""
    s = view_settings(settings, spec)
    v = settings.views
    raw = settings_key(settings, spec) if spec.kind != DESCRIPTOR_FEATURE else stable_hash(settings.analysis)
    extra = {"raw": raw, "files": files, "scale": v.scale, "clip": s.clip, "pca": s.pca, "whiten": s.whiten,
             "umap": s.umap}
    if spec.kind == EMBEDDING_KIND:
        extra.update(l2=s.l2)
    if s.umap is not None:
        extra.update(umap_neighbors=v.umap_neighbors, umap_min_dist=v.umap_min_dist,
                     umap_max_samples=v.umap_max_samples)
    return stable_hash({"seed": settings.seed, "extra": extra})


def cache_path(paths: ProjectPaths, spec: ViewSpec) -> Path:
    """``features/<name>/views/<view name>.npz``: the transformed matrix."""
    return paths.features / "views" / f"{spec.name}.npz"


def _raw_matrices(settings: ViewsSettings, paths: ProjectPaths, table: pd.DataFrame,
                  specs: list[ViewSpec]) -> dict[ViewSpec, np.ndarray]:
    """One pass over the saved files of ``table`` for every spec: spec -> (n_samples, n_dims)."""
    rows: dict[ViewSpec, list[np.ndarray | None]] = {s: [] for s in specs}
    records = table[["label", "stem"]].itertuples(index=False)
    for label, stem in progress(records, "views (reading features)", total=len(table)):
        vectors = vectors_of_files(settings, paths, label, stem, specs)
        for spec in specs:
            rows[spec].append(vectors[spec.name])
    out, unreadable = {}, {}
    for spec, vecs in rows.items():
        sizes = {v.size for v in vecs if v is not None}
        if not sizes and spec.kind == EMBEDDING_KIND:
            raise StageInputError(f"no file has a {spec.feature} embedding: run `audioclust embed --dataset "
                                  f"{paths.dataset}` (stage 03 computes them when embeddings.models lists the model)")
        if not sizes:
            raise StageInputError(f"no file has a readable {spec.feature}.{spec.source}: re-run `audioclust extract "
                                  f"--dataset {paths.dataset}` (with features.png: true for png views)")
        if len(sizes) > 1:
            raise StageInputError(f"{spec.feature}.{spec.source} arrays have different numbers of bins "
                                  f"({sorted(sizes)}): re-run `audioclust extract` so every file uses the same "
                                  "parameters")
        dim = sizes.pop()
        unreadable[spec.name] = sum(v is None for v in vecs)
        out[spec] = np.vstack([np.full(dim, np.nan, np.float32) if v is None else v for v in vecs])
    if any(unreadable.values()):  # one file's problem concerns every view of its feature: one line for all
        log.warning("views: files that could not be read have their rows imputed with column means: %s (of %d)",
                    ", ".join(f"{name} {n}" for name, n in unreadable.items() if n), len(table))
    return out


def _descriptor_matrix(table: pd.DataFrame) -> np.ndarray:
    return table[list(DESCRIPTORS)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)


def _stored_or_built(settings: ViewsSettings, paths: ProjectPaths, table: pd.DataFrame, files: list[str],
                     specs: list[ViewSpec], store_rows: pd.DataFrame | None) -> dict[ViewSpec, np.ndarray]:
    """Raw matrices from the packed store; views it lacks are built from the saved files and added to it.

    The store is updated only when ``store_rows`` (every row of ``features.csv``, the store's
    rows) is given and ``table`` is all its ok rows: a subset is built for itself.
    """
    store = FeatureStore.open(paths.feature_store)
    raw: dict[ViewSpec, np.ndarray] = {}
    for spec in specs:
        matrix = None if store is None else store.matrix(spec.name, settings_key(settings, spec), files)
        if matrix is not None:
            raw[spec] = matrix
    todo = [s for s in specs if s not in raw]
    if not todo:
        return raw
    log.info("views: building %d view(s) from the per-file arrays (%s); the packed store holds the others",
             len(todo), ", ".join(s.name for s in todo))
    raw.update(_raw_matrices(settings, paths, table, todo))
    if store_rows is None:
        return raw
    full = store_rows
    full_keys = [file_key(lab, stem) for lab, stem in zip(full["label"], full["stem"])]
    if [k for k, st in zip(full_keys, full["status"]) if st == "ok"] == files:
        if store is None or store.index["key"].tolist() != full_keys \
                or store.index["status"].tolist() != full["status"].tolist():
            store = feature_store.create(paths.feature_store, zip(full_keys, full["label"], full["stem"],
                                                                  full["status"]))
        for spec in todo:
            feature_store.add_view(store, spec.name, settings_key(settings, spec), raw[spec])
    return raw


def stored_ae_images(settings: ViewsSettings, paths: ProjectPaths, table: pd.DataFrame, feature: str) -> np.ndarray | None:
    """The autoencoder's input images of ``feature`` for the rows of ``table``, from the packed store.

    Returns
    -------
    ndarray of shape (n_samples, T, F), float32 (``autoencoder.input_size``), before the dataset-wide
    scaling; None when the store does not hold them with the current settings (read the files then).
    """
    store = FeatureStore.open(paths.feature_store)
    if store is None:
        return None
    spec = ViewSpec(feature, AE_KIND, settings.autoencoder.source)
    files = [file_key(lab, stem) for lab, stem in zip(table["label"], table["stem"])]
    matrix = store.matrix(spec.name, settings_key(settings, spec), files)
    if matrix is None or not np.isfinite(matrix).all():
        return None
    return matrix.reshape(len(files), int(settings.autoencoder.input_size[0]), int(settings.autoencoder.input_size[1]))


def embedded(paths: ProjectPaths, model: str, warn: bool = True) -> bool:
    """Whether the embed stage ran for this model; a model that did not is left out, with a warning (``warn``)."""
    if (paths.features / model).is_dir():
        return True
    if warn:
        log.warning("embeddings.models lists %s, but it has no embeddings: run `audioclust embed --dataset %s`; "
                    "its view is left out", model, paths.dataset)
    return False


def build_views(settings: ViewsSettings, paths: ProjectPaths, table: pd.DataFrame,
                specs: list[ViewSpec] | None = None, store_rows: pd.DataFrame | None = None) -> list[View]:
    """Every view of the config: raw vectors from the packed store, transformed matrices from the cache.

    Parameters
    ----------
    settings : ViewsSettings
        ``views`` (what and how), ``features`` (kinds, PNG ranges), ``seed``.
    paths : ProjectPaths
    table : DataFrame
        The rows to use: ok rows of ``features.csv`` (:func:`audioclust.results.read_table`).
    specs : list of ViewSpec or None
        None: :func:`view_specs` of the settings, but the embedding views of models the embed
        stage has not run for (left out with a warning).
    store_rows : DataFrame or None
        Every row of ``features.csv``: views missing from the packed store are added to it
        when ``table`` is all its ok rows. None: the store is only read.

    Returns
    -------
    list of View, in ``specs`` order; every ``X`` has ``len(table)`` rows in table order.
    """
    if specs is None:
        specs = [s for s in view_specs(settings) if s.kind != EMBEDDING_KIND or embedded(paths, s.feature)]
    files = [file_key(lab, stem) for lab, stem in zip(table["label"], table["stem"])]
    if any(s.kind != DESCRIPTOR_FEATURE for s in specs) and _reference(settings) is None and any(
            _trim_db(settings, s) is not None for s in specs if s.kind != DESCRIPTOR_FEATURE):
        log.warning("trim_db is set but neither mel nor spectrogram was extracted: views are not trimmed")

    raw = _stored_or_built(settings, paths, table, files, [s for s in specs if s.kind != DESCRIPTOR_FEATURE],
                           store_rows)
    views = []
    for spec in specs:
        if spec.kind == DESCRIPTOR_FEATURE:
            raw[spec] = _descriptor_matrix(table)
        key = _key(settings, spec, files)
        data = read_memo(cache_path(paths, spec), key)
        if data is not None:
            ratio = data["explained_variance_ratio"] if data["explained_variance_ratio"].size else None
            n_comp = int(data["n_components"]) if int(data["n_components"]) >= 0 else None
            X = data["X"]
        else:
            s, v = view_settings(settings, spec), settings.views
            X, ratio, n_comp = transform(raw[spec], l2=spec.kind == EMBEDDING_KIND and s.l2, scale=v.scale,
                                         clip=s.clip, pca=s.pca, whiten=s.whiten,
                                         umap=s.umap, umap_neighbors=v.umap_neighbors, umap_min_dist=v.umap_min_dist,
                                         umap_max_samples=v.umap_max_samples, random_state=settings.seed)
            write_memo(cache_path(paths, spec), key, X=X,
                         explained_variance_ratio=np.zeros(0) if ratio is None else ratio,
                         n_components=np.array(-1 if n_comp is None else n_comp),
                         spec=np.array(json.dumps(dataclasses.asdict(spec))))
        n_missing = int((~np.isfinite(raw[spec])).any(axis=1).sum())
        views.append(View(spec=spec, X=X, raw=raw[spec], explained_variance_ratio=ratio, n_components=n_comp,
                          n_missing=n_missing))
        log.debug("view %s: %s -> %s", spec.name, raw[spec].shape, X.shape)
    return views
