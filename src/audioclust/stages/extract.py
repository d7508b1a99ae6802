"""Stage 03: features of every transcoded WAV — NPY + PNG per feature kind, and ``features.csv``.

Reads ``metadata/<name>/metadata_transformed.csv`` (stage 02). For every ``ok`` row it
loads the WAV, computes the requested features and the scalar descriptors from one STFT
(:func:`audioclust.dsp.features.analyse`) and writes

- ``features/<name>/<kind>/<label or 'unlabelled'>/<stem>.npy``: float32 (n_bins, n_frames);
- the same path with ``.png`` (``features.png``): 8-bit grey, fixed range per kind
  (``features.png_ranges``), low frequencies at the bottom (see :mod:`audioclust.dsp.features`);
- one row of ``features/<name>/features.csv`` (:data:`FEATURES_COLUMNS`).

Row status: ``ok``; ``skipped`` (the stage-02 status was not ok); ``too_short`` (fewer
samples than one STFT window, ``features.n_fft``: no arrays are written rather than
features made mostly of zero padding; the duration is kept); ``error`` (the WAV cannot be
read or holds non-finite samples, or anything else failed; the reason says what).

Resuming: a file's completion marker (``features/<name>/.extract_done/<label>/<stem>.json``) is
written after its NPY and PNG files and holds the hash of the ``features`` and ``audio``
config sections plus the WAV's size and modification time. A re-run skips a file whose
marker matches and whose outputs exist; anything else (a changed parameter, a re-made WAV,
a run killed between the arrays and the marker) is computed again. Errors are not marked,
so they are retried. Outputs of files that left the table or are no longer ``ok``, and
temporary files of a killed run, are deleted from the folders of the requested kinds.

Packed store (``views.store``): each worker also computes its file's vectors of every view
of the config and the autoencoder's input images (:func:`audioclust.represent.views.store_specs`) from
the arrays it holds, and the parent writes them, in table order, to
``features/<name>/store/`` (:mod:`audioclust.represent.store`). Files done in an earlier run
keep their vectors from the previous store; when it lacks them (other view settings), a
worker reads the file's saved arrays back instead of recomputing its features. When nothing
moved, the previous store is kept as it is.

Streaming: the input table is read, dispatched and written in chunks of :data:`CHUNK_ROWS`;
a chunk with fewer than :data:`PARALLEL_MIN_FILES` files to compute runs in this process
(starting worker processes would cost more than it saves).
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import soundfile as sf

from audioclust.config import Config, section_hash
from audioclust.core.cache import Markers, file_fingerprint
from audioclust.core.errors import ConfigError
from audioclust.core.parallel import Workers, parallel_imap
from audioclust.core.paths import (
    ProjectPaths,
    file_key,
    key_of,
    split_key,
)
from audioclust.core.progress import Progress
from audioclust.core.storage import (
    CsvStream,
    count_rows,
    remove_stale_temps,
    write_bytes,
    write_npy,
)
from audioclust.dsp.descriptors import DESCRIPTORS
from audioclust.dsp.extraction import Bases, analyse, analysis_bases
from audioclust.dsp.features import resolve_fmax
from audioclust.dsp.images import png_bytes, to_image
from audioclust.dsp.numba_cache import load_kernels
from audioclust.represent.store import FeatureStore, StoreWriter
from audioclust.represent.vectors import (
    ViewSpec,
    ViewsSettings,
    vectors_of_features,
    vectors_of_files,
)
from audioclust.stages._runs import recorded
from audioclust.stages._skeleton import (
    TRANSFORMED_COLUMNS,
    StageSummary,
    check_transformed,
    remove_unlisted,
)

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class _Job:
    """One transformed row to compute: where its WAV is and where its outputs go."""

    key: str      # "<label dir>/<stem>": marker key and output sub-path
    label: str    # as in the input table (may be empty)
    stem: str
    rel: str      # the WAV, root-relative (the ``path`` column)
    vectors_only: bool = False  # features already done: only read them back for the store


@dataclass(frozen=True)
class _Settings:
    """What a worker needs besides the job (pickled with every batch of jobs; the bases, 0.6 MB
    at the default settings, are most of it)."""

    cfg: Config
    views: ViewsSettings
    paths: ProjectPaths
    params_hash: str
    analysis: dict[str, Any]  # the keyword arguments of :func:`~audioclust.dsp.extraction.analyse`
    store_specs: tuple[ViewSpec, ...] = ()
    bases: Bases | None = None  # built by the parent for local workers: they need no librosa then


#: rows read, dispatched and written per step: bounds memory on any number of files
CHUNK_ROWS = 2000

#: Worker processes deliver their first result 0.7 s after the start (Python, NumPy, SciPy, pandas:
#: 0.6 s of CPU each). On 2 cores, two workers finish 400 files 20 % sooner than this process alone
#: (with 45 % more CPU) and 210 files no sooner: a chunk with fewer files to compute runs here.
PARALLEL_MIN_FILES = 400

#: NPY files up to this size are serialised in memory and written in one go (one temporary
#: file opened once); larger ones (hours of audio) stream into the file without a copy in memory.
NPY_IN_MEMORY_BYTES = 16 * 2**20


@recorded("extract")
def run(cfg: Config, paths: ProjectPaths, return_table: bool = True) -> pd.DataFrame | None:
    """Compute the features of every WAV listed by stage 02 (resumable, in parallel, streaming).

    The input table is read, dispatched and written in chunks of :data:`CHUNK_ROWS`, so memory
    does not grow with the number of files. With ``views.store`` the packed store
    (:mod:`audioclust.represent.store`) is rewritten alongside: fresh vectors from the workers,
    unchanged files' vectors copied from the previous store.

    Parameters
    ----------
    cfg : Config
        ``features`` (what to compute), ``audio`` (sample rate, cutoff), ``views`` (the store),
        ``parallel``.
    paths : ProjectPaths
    return_table : bool
        Read ``features.csv`` back and return it (False: return None; for very large collections).

    Returns
    -------
    DataFrame with one row per row of ``metadata_transformed.csv``, columns :data:`FEATURES_COLUMNS`
    (also written to ``features/<name>/features.csv``), or None.

    Raises
    ------
    StageInputError
        When ``metadata_transformed.csv`` is missing or lacks a contract column.
    ConfigError
        When the mel band limits do not fit the sample rate.
    """
    # imported here, not at the top: every worker process imports this module to find _process,
    # and these parent-side helpers pull in scikit-learn, a second of start-up per worker
    from audioclust.represent.views import settings_key, store_specs
    from audioclust.results import FEATURES_COLUMNS, read_table
    from audioclust.stages._shared import analysis_params, views_settings, workers

    remove_stale_temps(*paths.generated())
    check_transformed(paths)
    _check_config(cfg)
    views = views_settings(cfg)
    specs = tuple(store_specs(views)) if cfg.views.store else ()
    settings = _Settings(cfg=cfg, views=views, paths=paths, params_hash=section_hash(cfg, "features", "audio"),
                         analysis=analysis_params(cfg), store_specs=specs)
    markers = Markers(_marker_folder(paths), settings.params_hash)
    old_store = FeatureStore.open(paths.feature_store) if specs else None
    view_keys = {s.name: settings_key(views, s) for s in specs}  # hashed once, not per file
    writer = StoreWriter(paths.feature_store, view_keys) if specs else None
    pool = workers(cfg)

    # a file skipped here was named, with its reason, by the stage that left it out (and has no WAV path to show)
    summary = StageSummary("extract", "path", fine=("ok", "skipped"))
    seen: set[str] = set()
    keep_arrays: set[str] = set()
    reused = n_rows = n_ok = 0
    unchanged = old_store is not None and set(old_store.views) == {s.name for s in specs}
    old_index = [] if old_store is None else list(
        old_store.index[["key", "label", "stem", "status"]].itertuples(index=False, name=None))
    bar = Progress(count_rows(paths.transformed_csv), "extract")
    try:
        with CsvStream(paths.features_csv, FEATURES_COLUMNS) as out:
            for chunk in _read_input(paths):
                entries = [_plan(record, seen, markers, settings, old_store, view_keys)
                           for record in chunk.to_dict("records")]
                todo = [e.job for e in entries if e.todo]
                if todo and settings.bases is None and not pool.scheduler:
                    settings = replace(settings, bases=_bases(cfg))
                # the workers analyse with librosa: its numba kernels loaded here first (numba_cache)
                results = parallel_imap(partial(_process, settings=settings), todo, _chunk_workers(pool, len(todo)),
                                        desc=None, prepare=load_kernels)
                rows = []
                for entry in entries:
                    if entry.todo:
                        entry.row, entry.vectors = next(results)
                    row = entry.row
                    rows.append(row)
                    if row["status"] == "ok":
                        keep_arrays.add(entry.job.key)
                        reused += not entry.todo
                    if writer is not None:
                        key = entry.job.key if entry.job else ""
                        # the old store stays when every row sits where it sat, with the same vectors
                        unchanged = unchanged and n_rows < len(old_index) \
                            and old_index[n_rows] == (key, row["label"], row["stem"], row["status"]) \
                            and (row["status"] != "ok" or entry.stored_row == n_ok)
                        writer.add(key, row["label"], row["stem"], row["status"], entry.vectors)
                        n_ok += row["status"] == "ok"
                    n_rows += 1
                    bar.update()
                frame = _frame(rows, FEATURES_COLUMNS)
                out.write(frame)
                summary.add(frame)
        if writer is not None:
            if unchanged and n_rows == len(old_index):
                writer.abort()
            else:
                writer.commit()
    except BaseException:
        bar.close(complete=False)
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()

    if reused:
        log.info("%d of %d files already done with the same parameters", reused, len(seen))
    _remove_stale(paths, cfg, keep=seen, keep_arrays=keep_arrays)
    summary.log(paths.rel(paths.features_csv))
    return read_table(paths, ok_only=False) if return_table else None


def _bases(cfg: Config) -> Bases:
    """The filter banks and windows of the ``features`` section, built once here: sent along with the
    jobs, they spare each worker process librosa's import (a Dask cluster's long-lived workers build
    their own once instead of receiving them with every batch)."""
    f, sr = cfg.features, cfg.audio.sample_rate
    return analysis_bases(sr=sr, n_fft=f.n_fft, hop_length=f.hop_length, n_mels=f.n_mels, n_chroma=f.n_chroma,
                          fmin=f.fmin, fmax=resolve_fmax(f.fmax, sr=sr, cutoff=cfg.audio.cutoff))


def _chunk_workers(pool: Workers, n_files: int) -> Workers:
    """Where a chunk with ``n_files`` files to compute runs: ``pool``, or this process when it has
    fewer than :data:`PARALLEL_MIN_FILES` (a Dask cluster's workers are already running: always there)."""
    if pool.scheduler or n_files >= PARALLEL_MIN_FILES:
        return pool
    return replace(pool, n_jobs=1)


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    frame["n_frames"] = frame["n_frames"].astype("Int64")
    return frame


@dataclass
class _Entry:
    """One input row on its way out: a job for the workers (``todo``) or a ready row."""

    job: _Job | None
    row: dict[str, Any] | None = None
    vectors: dict[str, np.ndarray | None] | None = None
    todo: bool = False
    stored_row: int = -1  # where its vectors sat in the previous store, when copied from there


def _plan(record: dict[str, Any], seen: set[str], markers: Markers, settings: _Settings,
          old_store: FeatureStore | None, view_keys: dict[str, str]) -> _Entry:
    """What to do with one input row: a ready row (skipped, error, reused) or a job for the workers."""
    job = _Job(key=file_key(record['label'], record['stem']), label=record["label"],
               stem=record["stem"], rel=record["path"])
    if record["status"] != "ok":
        detail = f": {record['reason']}" if record["reason"] else ""
        return _Entry(job, _row(job, "skipped", f"stage-02 status '{record['status']}'{detail}"))
    if not job.stem or not job.rel:
        return _Entry(job, _row(job, "error", "no stem or WAV path in metadata_transformed.csv: re-run transform"))
    if job.key in seen:
        return _Entry(job, _row(job, "error", f"duplicate label/stem '{job.key}': only the first row is computed"))
    seen.add(job.key)
    done = _reusable(markers, job, settings)
    if done is None:
        return _Entry(job, todo=True)
    if done["status"] != "ok" or not settings.store_specs:
        return _Entry(job, done)
    stored = _stored_vectors(old_store, job.key, view_keys)
    if stored is None:  # features done, but the store lacks this file's vectors: the worker reads them back
        return _Entry(replace(job, vectors_only=True), todo=True)
    return _Entry(job, done, stored[1], stored_row=stored[0])


def _stored_vectors(store: FeatureStore | None, key: str,
                    view_keys: dict[str, str]) -> tuple[int, dict[str, np.ndarray]] | None:
    """This file's row and vectors in the previous store, when it holds every view (name -> settings key)."""
    if store is None or key not in store.row_of():
        return None
    row = store.row_of()[key]
    out = {}
    for name, view_key in view_keys.items():
        array = store.vectors(name, view_key)
        if array is None:
            return None
        out[name] = np.array(array[row])
    return row, out


def _read_input(paths: ProjectPaths) -> Iterator[pd.DataFrame]:
    """``metadata_transformed.csv`` in chunks of :data:`CHUNK_ROWS` rows, text as text."""
    with pd.read_csv(paths.transformed_csv, dtype=str, keep_default_na=False, usecols=list(TRANSFORMED_COLUMNS),
                     chunksize=CHUNK_ROWS) as chunks:
        yield from chunks


def _check_config(cfg: Config) -> None:
    """Parameters that only make sense with the sample rate, checked once before any work."""
    f, sr = cfg.features, cfg.audio.sample_rate
    fmax = resolve_fmax(f.fmax, sr=sr, cutoff=cfg.audio.cutoff)
    if fmax > sr / 2:
        raise ConfigError(f"config key 'features.fmax' = {f.fmax} is above Nyquist ({sr / 2:g} Hz at "
                          f"audio.sample_rate {sr}): lower it or set it to null")
    if f.fmin >= fmax:
        raise ConfigError(f"config key 'features.fmin' = {f.fmin} must be below the mel fmax ({fmax:g} Hz)")
    if f.n_mfcc > f.n_mels:
        raise ConfigError(f"config key 'features.n_mfcc' = {f.n_mfcc} must be <= features.n_mels ({f.n_mels})")


def _marker_folder(paths: ProjectPaths) -> Path:
    return paths.features / ".extract_done"


def _reusable(markers: Markers, job: _Job, settings: _Settings) -> dict[str, Any] | None:
    """The row of an earlier run of this file, when its marker, WAV and outputs all still match."""
    row = markers.get(job.key)
    if row is None or row.pop("source", None) != file_fingerprint(settings.paths.abs(job.rel)):
        return None
    if row.get("status") == "ok" and not all(p.is_file() for p in _outputs(job, settings)):
        return None
    return row


def _outputs(job: _Job, settings: _Settings) -> list[Path]:
    f = settings.cfg.features
    suffixes = (".npy", ".png") if f.png else (".npy",)
    label, stem = split_key(job.key)
    return [settings.paths.feature_file(kind, label, stem, s) for kind in f.kinds for s in suffixes]


def _row(job: _Job, status: str, reason: str = "", **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"stem": job.stem, "label": job.label, "path": job.rel, "status": status,
                           "reason": reason, "n_frames": None}
    row.update({name: math.nan for name in DESCRIPTORS})
    row.update(values)
    return row


def _remove_stale(paths: ProjectPaths, cfg: Config, keep: set[str], keep_arrays: set[str]) -> None:
    """Delete outputs and markers of files no longer listed (or no longer ok).

    Only the folders of the requested kinds are cleaned: ``<kind>/<label>/<file>`` is kept when
    ``<label>/<file stem>`` is in ``keep_arrays``; a marker when its key is in ``keep``.
    """
    # the names are tested first: only a file that goes costs a stat (30,000 outputs for 3,000 files)
    for kind in cfg.features.kinds:
        stale = [p for p in (paths.features / kind).glob("*/*") if key_of(p) not in keep_arrays]
        remove_unlisted(stale, lambda p: False, f"stale {kind} file(s)")
    stale = [p for p in _marker_folder(paths).glob("*/*") if p.suffix != ".json" or key_of(p) not in keep]
    remove_unlisted(stale, lambda p: False, "stale marker(s) of stage 03")


# --------------------------------------------------------------------------- worker side

def _process(job: _Job, settings: _Settings) -> tuple[dict[str, Any], dict[str, np.ndarray | None] | None]:
    """One file: its row, and its store vectors when ``ok`` and the store is on; never raises."""
    if job.vectors_only:
        row = Markers(_marker_folder(settings.paths), settings.params_hash).get(job.key)
        if row is not None:
            row.pop("source", None)
            label, stem = split_key(job.key)
            return row, vectors_of_files(settings.views, settings.paths, label, stem, list(settings.store_specs))
    vectors: dict[str, np.ndarray | None] = {}
    row = _compute(job, settings, vectors)
    return row, (vectors if row["status"] == "ok" and settings.store_specs else None)


def _compute(job: _Job, settings: _Settings, vectors: dict[str, np.ndarray | None]) -> dict[str, Any]:
    """Compute and write one file's outputs, then its marker; fills ``vectors`` for the store; never raises."""
    cfg, paths = settings.cfg, settings.paths
    wav = paths.abs(job.rel)
    try:
        source = file_fingerprint(wav)
        if source is None:
            return _failed(job, settings, f"WAV not found: {job.rel} (re-run transform)")
        try:
            y, sr = sf.read(wav, dtype="float32", always_2d=False)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            return _failed(job, settings, f"cannot read WAV: {exc}")
        if y.ndim > 1:
            y = y.mean(axis=1, dtype=np.float32)
        if sr != cfg.audio.sample_rate:
            return _failed(job, settings, f"WAV is at {sr} Hz, not audio.sample_rate {cfg.audio.sample_rate}: "
                                          "re-run transform")
        if not np.isfinite(y).all():
            return _failed(job, settings, "WAV holds NaN or infinite samples")
        if len(y) < cfg.features.n_fft:
            _remove_outputs(job, settings)
            row = _row(job, "too_short", f"{len(y)} samples, fewer than one STFT window "
                                         f"(features.n_fft = {cfg.features.n_fft})", duration=len(y) / sr)
        else:
            features, desc = analyse(y, sr=sr, cutoff=cfg.audio.cutoff, bases=settings.bases, **settings.analysis)
            label, stem = split_key(job.key)
            images = {}
            for kind, array in features.items():
                _write_array(paths.feature_file(kind, label, stem, ".npy"), array)
                if cfg.features.png:
                    vmin, vmax = cfg.features.png_ranges[kind]
                    images[kind] = to_image(array, vmin=vmin, vmax=vmax)
                    write_bytes(paths.feature_file(kind, label, stem, ".png"), png_bytes(images[kind]))
            # the PNGs' images serve the store's "Images" views too: no second mapping per file
            vectors.update(vectors_of_features(settings.views, features, list(settings.store_specs), images))
            row = _row(job, "ok", n_frames=1 + len(y) // cfg.features.hop_length, **desc)
        # last: only now may a re-run trust the files above
        Markers(_marker_folder(paths), settings.params_hash).put(job.key, {**row, "source": source})
        return row
    except Exception as exc:  # one bad file must not stop the stage: it becomes an error row
        return _failed(job, settings, f"{type(exc).__name__}: {exc}")


def _write_array(path: Path, array: np.ndarray) -> None:
    """Save ``array`` as NPY (atomically); the bytes are the same whichever way it is written."""
    if array.nbytes > NPY_IN_MEMORY_BYTES:
        write_npy(path, array)
        return
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    write_bytes(path, buffer.getvalue())


def _failed(job: _Job, settings: _Settings, reason: str) -> dict[str, Any]:
    _remove_outputs(job, settings)
    return _row(job, "error", reason)


def _remove_outputs(job: _Job, settings: _Settings) -> None:
    """Drop outputs of an earlier run so no stale array sits beside a non-ok row."""
    for path in _outputs(job, settings):
        path.unlink(missing_ok=True)
