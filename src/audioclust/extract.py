"""Stage 03: features of every transcoded WAV — NPY + PNG per feature kind, and ``features.csv``.

Reads ``metadata/<name>/metadata_transformed.csv`` (stage 02). For every ``ok`` row it
loads the WAV, computes the requested features and the scalar descriptors from one STFT
(:func:`audioclust.features.analyse`) and writes

- ``features/<name>/<kind>/<label or 'unlabelled'>/<stem>.npy``: float32 (n_bins, n_frames);
- the same path with ``.png`` (``features.png``): 8-bit grey, fixed range per kind
  (``features.png_ranges``), low frequencies at the bottom (see :mod:`audioclust.features`);
- one row of ``features/<name>/features.csv`` (:data:`COLUMNS`).

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
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from .config import Config, section_hash
from .datasets import label_folder
from .errors import ConfigError, StageInputError
from .features import DESCRIPTORS, analyse, png_bytes, resolve_fmax, to_image
from .parallel import parallel_map
from .paths import ProjectPaths
from .storage import Markers, write_bytes, write_csv, write_npy

log = logging.getLogger(__name__)

COLUMNS: list[str] = ["stem", "label", "path", "status", "reason", "n_frames", *DESCRIPTORS]
_INPUT_COLUMNS = ("label", "stem", "path", "status", "reason")


@dataclass(frozen=True)
class _Job:
    """One transformed row to compute: where its WAV is and where its outputs go."""

    key: str      # "<label dir>/<stem>": marker key and output sub-path
    label: str    # as in the input table (may be empty)
    stem: str
    rel: str      # the WAV, root-relative (the ``path`` column)


@dataclass(frozen=True)
class _Settings:
    """What a worker needs besides the job (pickled once per task, so kept small)."""

    cfg: Config
    paths: ProjectPaths
    params_hash: str


def run(cfg: Config, paths: ProjectPaths) -> pd.DataFrame:
    """Compute the features of every WAV listed by stage 02 (resumable, in parallel).

    Parameters
    ----------
    cfg : Config
        ``features`` (what to compute), ``audio`` (sample rate, cutoff), ``parallel``.
    paths : ProjectPaths

    Returns
    -------
    DataFrame with one row per row of ``metadata_transformed.csv``, columns :data:`COLUMNS`
    (also written to ``features/<name>/features.csv``).

    Raises
    ------
    StageInputError
        When ``metadata_transformed.csv`` is missing or lacks a contract column.
    ConfigError
        When the mel band limits do not fit the sample rate.
    """
    table = _read_input(paths)
    _check_config(cfg)
    settings = _Settings(cfg=cfg, paths=paths, params_hash=section_hash(cfg, "features", "audio"))
    markers = Markers(_marker_folder(paths), settings.params_hash)

    rows: list[dict[str, Any] | None] = []
    todo: list[tuple[int, _Job]] = []
    seen: set[str] = set()
    for record in table.to_dict("records"):
        job = _Job(key=f"{label_folder(record['label'])}/{record['stem']}", label=record["label"],
                   stem=record["stem"], rel=record["path"])
        if record["status"] != "ok":
            detail = f": {record['reason']}" if record["reason"] else ""
            rows.append(_row(job, "skipped", f"stage-02 status '{record['status']}'{detail}"))
        elif not job.stem or not job.rel:
            rows.append(_row(job, "error", "no stem or WAV path in metadata_transformed.csv: re-run transform"))
        elif job.key in seen:
            rows.append(_row(job, "error", f"duplicate label/stem '{job.key}': only the first row is computed"))
        else:
            seen.add(job.key)
            done = _reusable(markers, job, settings)
            rows.append(done)
            if done is None:
                todo.append((len(rows) - 1, job))

    reused = len(seen) - len(todo)
    if reused:
        log.info("%d of %d files already done with the same parameters; computing %d",
                 reused, len(seen), len(todo))
    results = parallel_map(partial(_process, settings=settings), [job for _, job in todo], cfg,
                           desc="extract")
    for (index, _), row in zip(todo, results):
        rows[index] = row

    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["n_frames"] = frame["n_frames"].astype("Int64")
    _remove_stale(paths, cfg, keep=seen, keep_arrays={
        f"{label_folder(r['label'])}/{r['stem']}" for r in rows if r is not None and r["status"] == "ok"})
    write_csv(paths.features_csv, frame)
    counts = Counter(frame["status"])
    log.info("extract: %d rows -> %s (%s)", len(frame), paths.rel(paths.features_csv),
             ", ".join(f"{s}: {n}" for s, n in sorted(counts.items())) or "empty")
    for status in ("error", "too_short"):
        for stem, reason in frame.loc[frame["status"] == status, ["stem", "reason"]].head(5).itertuples(index=False):
            log.warning("%s %s: %s", status, stem, reason)
    return frame


# --------------------------------------------------------------------------- parent side

def _read_input(paths: ProjectPaths) -> pd.DataFrame:
    source = paths.transformed_csv
    if not source.is_file():
        raise StageInputError(
            f"{paths.rel(source)} not found: run `audioclust transform --dataset {paths.dataset}` first")
    table = pd.read_csv(source, dtype=str, keep_default_na=False)
    missing = [c for c in _INPUT_COLUMNS if c not in table.columns]
    if missing:
        raise StageInputError(
            f"{paths.rel(source)} lacks the column(s) {', '.join(missing)}: "
            f"re-run `audioclust transform --dataset {paths.dataset}`")
    return table


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
    if row is None or row.pop("source", None) != _fingerprint(settings.paths.abs(job.rel)):
        return None
    if row.get("status") == "ok" and not all(p.is_file() for p in _outputs(job, settings)):
        return None
    return row


def _fingerprint(wav: Path) -> list[int] | None:
    """Size and modification time of the WAV: a re-made WAV invalidates the marker."""
    try:
        st = os.stat(wav)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _outputs(job: _Job, settings: _Settings) -> list[Path]:
    f = settings.cfg.features
    suffixes = (".npy", ".png") if f.png else (".npy",)
    label, stem = job.key.split("/", 1)
    return [settings.paths.feature_file(kind, label, stem, s) for kind in f.kinds for s in suffixes]


def _row(job: _Job, status: str, reason: str = "", **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"stem": job.stem, "label": job.label, "path": job.rel, "status": status,
                           "reason": reason, "n_frames": None}
    row.update({name: math.nan for name in DESCRIPTORS})
    row.update(values)
    return row


def _remove_stale(paths: ProjectPaths, cfg: Config, keep: set[str], keep_arrays: set[str]) -> None:
    """Delete outputs and markers of files no longer listed (or no longer ok), and temp files of killed runs.

    Only the folders of the requested kinds are cleaned: ``<kind>/<label>/<file>`` is kept when
    ``<label>/<file stem>`` is in ``keep_arrays``; a marker when its key is in ``keep``.
    """
    for kind in cfg.features.kinds:
        for path in (paths.features / kind).glob("*/*"):
            if path.is_file() and f"{path.parent.name}/{path.stem}" not in keep_arrays:
                path.unlink(missing_ok=True)
    for path in _marker_folder(paths).glob("*/*"):
        if path.is_file() and (path.suffix != ".json" or f"{path.parent.name}/{path.stem}" not in keep):
            path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- worker side

def _process(job: _Job, settings: _Settings) -> dict[str, Any]:
    """Compute and write one file's outputs, then its marker; never raises."""
    cfg, paths = settings.cfg, settings.paths
    wav = paths.abs(job.rel)
    try:
        source = _fingerprint(wav)
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
            features, desc = analyse(y, sr=sr, cfg=cfg.features, cutoff=cfg.audio.cutoff)
            label, stem = job.key.split("/", 1)
            for kind, array in features.items():
                write_npy(paths.feature_file(kind, label, stem, ".npy"), array)
                if cfg.features.png:
                    vmin, vmax = cfg.features.png_ranges[kind]
                    write_bytes(paths.feature_file(kind, label, stem, ".png"),
                                png_bytes(to_image(array, vmin=vmin, vmax=vmax)))
            row = _row(job, "ok", n_frames=1 + len(y) // cfg.features.hop_length, **desc)
        # last: only now may a re-run trust the files above
        Markers(_marker_folder(paths), settings.params_hash).put(job.key, {**row, "source": source})
        return row
    except Exception as exc:  # one bad file must not stop the stage: it becomes an error row
        return _failed(job, settings, f"{type(exc).__name__}: {exc}")


def _failed(job: _Job, settings: _Settings, reason: str) -> dict[str, Any]:
    _remove_outputs(job, settings)
    return _row(job, "error", reason)


def _remove_outputs(job: _Job, settings: _Settings) -> None:
    """Drop outputs of an earlier run so no stale array sits beside a non-ok row."""
    for path in _outputs(job, settings):
        path.unlink(missing_ok=True)
