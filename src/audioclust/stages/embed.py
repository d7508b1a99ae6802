"""Stage 03 (embeddings): the frame embeddings of pretrained audio models for every transcoded WAV.

Runs after :mod:`audioclust.stages.extract`, for the models of ``embeddings.models``
(:mod:`audioclust.embed`: aisfx and resemblyzer ship with the package; a local Hugging Face,
TorchScript or ONNX checkpoint is named by its path). For every ``ok`` row of
``metadata_transformed.csv`` and every model it writes

- ``features/<name>/<model>/<label or 'unlabelled'>/<stem>.npy``: float32 (dim, n_frames), the
  model's embedding of each block or window along time (the layout of the other features);
- one row of ``features/<name>/embeddings.csv`` (:data:`~audioclust.results.EMBEDDINGS_COLUMNS`).

Stage 04 pools each file's frames into one vector (``views.embedding.pooling``) and clusters
them as the view ``<model>.embedding.npy``, next to the views of the hand-made features.

Work is done in steps of ``embeddings.files_per_step`` files: each WAV is read once and
resampled once per model sample rate (shared by the models at that rate), while the next
step's files are read in a background thread; every model embeds the step in batches
(``batch_size`` blocks or files per forward pass) on ``embeddings.device``.

Row status: ``ok``; ``skipped`` (the stage-02 status was not ok); ``error`` (the WAV cannot be
read, or the model failed on this file: the reason says why). A model that cannot be loaded
stops the stage with :class:`~audioclust.embed.base.ModelError` (a configuration problem,
not a file's).

Resuming: a file's marker (``features/<name>/.embed_done/<model>/<label>/<stem>.json``) holds
the model's key (its options, weights and the ``audio`` section:
:func:`~audioclust.stages._shared.embedding_key`) and the WAV's size and modification time; a
re-run skips a file whose marker matches and whose NPY exists, and does not even load a model
whose files are all done. An unreadable WAV is marked too (until it changes, reading it again
fails again); a file the model failed on is not, so it is retried. Embeddings of files that left
the table are deleted from the folders of the configured models.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

from audioclust.config import Config
from audioclust.core.cache import Markers, file_fingerprint
from audioclust.core.paths import ProjectPaths, file_key, key_of, split_key
from audioclust.core.progress import Progress
from audioclust.core.storage import remove_stale_temps, write_csv, write_npy
from audioclust.embed.spec import ModelSpec
from audioclust.results import EMBEDDINGS_COLUMNS
from audioclust.stages._runs import recorded
from audioclust.stages._shared import embedding_key, embedding_models
from audioclust.stages._skeleton import (
    TRANSFORMED_COLUMNS,
    StageSummary,
    check_transformed,
    chunks,
    remove_unlisted,
)

if TYPE_CHECKING:  # torch comes in with the models, when one has work to do
    from audioclust.embed.base import EmbeddingModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _File:
    key: str    # "<label dir>/<stem>"
    label: str
    stem: str
    rel: str    # the stage-02 WAV, root-relative


@recorded("embed")
def run(cfg: Config, paths: ProjectPaths, return_table: bool = True) -> pd.DataFrame | None:
    """Embed every WAV listed by stage 02 with every model of ``embeddings.models`` (resumable).

    Parameters
    ----------
    cfg : Config
        ``embeddings`` (models, device, batch and step sizes), ``audio`` (what the WAVs hold).
    paths : ProjectPaths
    return_table : bool
        Return the rows written to ``embeddings.csv`` (False: None).

    Returns
    -------
    DataFrame with one row per row of ``metadata_transformed.csv`` and model, columns
    :data:`~audioclust.results.EMBEDDINGS_COLUMNS`, or None.

    Raises
    ------
    StageInputError
        ``metadata_transformed.csv`` is missing or lacks a contract column.
    ModelError
        A model cannot be loaded (missing path, not an audio model, its package not installed).
    """
    specs = embedding_models(cfg)
    if not specs:
        log.info("embed: embeddings.models is empty: nothing to do")
        return pd.DataFrame(columns=EMBEDDINGS_COLUMNS) if return_table else None
    remove_stale_temps(paths.features)
    table = _read_input(paths)
    files, early = _plan_files(table)
    markers = {s.name: Markers(paths.features / ".embed_done" / s.name, embedding_key(cfg, s)) for s in specs}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    todo: dict[str, list[ModelSpec]] = {}  # file key -> the models it still needs
    for spec in specs:
        for f in files:
            done = _reusable(markers[spec.name], f, spec, paths)
            if done is not None:
                rows[(f.key, spec.name)] = done
            else:
                todo.setdefault(f.key, []).append(spec)
    n_reused = len(rows)

    if todo:
        _embed(cfg, paths, [f for f in files if f.key in todo], todo, markers, rows)

    out = []
    for record, row in zip(table.to_dict("records"), early):
        for spec in specs:
            if row is not None:
                out.append({**row, "model": spec.name})
            else:
                out.append(rows[(file_key(record["label"], record["stem"]), spec.name)])
    frame = pd.DataFrame(out, columns=EMBEDDINGS_COLUMNS)
    for column in ("n_frames", "dim"):
        frame[column] = frame[column].astype("Int64")
    write_csv(paths.embeddings_csv, frame)

    keep = {f.key for f in files}
    ok = {(r["model"], file_key(r["label"], r["stem"])) for r in out if r["status"] == "ok"}
    for spec in specs:
        remove_unlisted((paths.features / spec.name).glob("*/*"),
                        lambda p, m=spec.name: (m, key_of(p)) in ok, f"stale {spec.name} embedding(s)")
        remove_unlisted((paths.features / ".embed_done" / spec.name).glob("*/*"),
                        lambda p: p.suffix == ".json" and key_of(p) in keep, f"stale marker(s) of {spec.name}")
    summary = StageSummary("embed", "path", fine=("ok", "skipped"))
    summary.add(frame)
    summary.log(paths.rel(paths.embeddings_csv), f"embed: one row per file and model ({len(table)} × {len(specs)})",
                *([f"{n_reused} of {len(files) * len(specs)} embeddings already done with the same model"]
                  if n_reused else []))
    return frame if return_table else None


def _read_input(paths: ProjectPaths) -> pd.DataFrame:
    check_transformed(paths)
    return pd.read_csv(paths.transformed_csv, dtype=str, keep_default_na=False, usecols=list(TRANSFORMED_COLUMNS))


def _plan_files(table: pd.DataFrame) -> tuple[list[_File], list[dict[str, Any] | None]]:
    """The files to embed, and per input row either None (embed it) or its finished row (skipped, error)."""
    files, early, seen = [], [], set()
    for record in table.to_dict("records"):
        f = _File(key=file_key(record["label"], record["stem"]), label=record["label"], stem=record["stem"],
                  rel=record["path"])
        if record["status"] != "ok":
            detail = f": {record['reason']}" if record["reason"] else ""
            early.append(_row(f, "", "skipped", f"stage-02 status '{record['status']}'{detail}"))
        elif not f.stem or not f.rel:
            early.append(_row(f, "", "error", "no stem or WAV path in metadata_transformed.csv: re-run transform"))
        elif f.key in seen:
            early.append(_row(f, "", "error", f"duplicate label/stem '{f.key}': only the first row is embedded"))
        else:
            seen.add(f.key)
            files.append(f)
            early.append(None)
    return files, early


def _reusable(markers: Markers, f: _File, spec: ModelSpec, paths: ProjectPaths) -> dict[str, Any] | None:
    row = markers.get(f.key)
    if row is None or row.pop("source", None) != file_fingerprint(paths.abs(f.rel)):
        return None
    label, stem = split_key(f.key)
    if row.get("status") == "ok" and not paths.feature_file(spec.name, label, stem, ".npy").is_file():
        return None
    return row


def _row(f: _File, model: str, status: str, reason: str = "", **values: Any) -> dict[str, Any]:
    return {"stem": f.stem, "label": f.label, "path": f.rel, "model": model, "status": status, "reason": reason,
            "n_frames": values.get("n_frames"), "dim": values.get("dim"), "hop_seconds": values.get("hop_seconds")}


def _read_wav(paths: ProjectPaths, f: _File) -> tuple[np.ndarray | None, int, str]:
    """(mono float32 samples, rate, '') or (None, 0, why not)."""
    try:
        y, sr = sf.read(paths.abs(f.rel), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        return None, 0, f"cannot read WAV {f.rel}: {exc} (re-run transform)"
    y = y.mean(axis=1, dtype=np.float32)
    if y.size == 0:
        return None, 0, "the WAV holds no samples"
    if not np.isfinite(y).all():
        return None, 0, "the WAV holds NaN or infinite samples"
    return y, int(sr), ""


def _embed(cfg: Config, paths: ProjectPaths, files: list[_File], todo: dict[str, list[ModelSpec]],
           markers: dict[str, Markers], rows: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Embed ``files`` step by step with the models ``todo`` lists for each; fills ``rows``."""
    from audioclust.embed.registry import load_model

    needed = {s.name: s for specs in todo.values() for s in specs}
    models: dict[str, EmbeddingModel] = {}
    for name, spec in needed.items():
        models[name] = load_model(spec, device=cfg.embeddings.device)
        log.info("embed: %s (%s, %d-d at %d Hz) on %s", name, spec.type, models[name].dim,
                 models[name].sample_rate, models[name].device)
    steps = list(chunks(files, cfg.embeddings.files_per_step))
    # the reader reads the next step while the models run
    with Progress(len(files), "embed") as bar, ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(_read_step, paths, steps[0])
        for i, step in enumerate(steps):
            audio = pending.result()
            if i + 1 < len(steps):
                pending = reader.submit(_read_step, paths, steps[i + 1])
            resampled: dict[int, dict[str, np.ndarray]] = {}
            for name, model in models.items():
                mine = [f for f in step if any(s.name == name for s in todo[f.key])]
                _embed_step(paths, model, mine, audio, resampled, markers[name], rows)
            bar.update(len(step))


def _read_step(paths: ProjectPaths, step: list[_File]) -> dict[str, tuple[np.ndarray | None, int, str, Any]]:
    """Each file's samples, rate, problem and fingerprint (taken before reading, as the markers compare it)."""
    out = {}
    for f in step:
        source = file_fingerprint(paths.abs(f.rel))
        y, sr, problem = _read_wav(paths, f) if source is not None else (None, 0, f"WAV not found: {f.rel} "
                                                                                    "(re-run transform)")
        out[f.key] = (y, sr, problem, source)
    return out


def _embed_step(paths: ProjectPaths, model: EmbeddingModel, step: list[_File],
                audio: dict[str, tuple[np.ndarray | None, int, str, Any]],
                resampled: dict[int, dict[str, np.ndarray]], markers: Markers,
                rows: dict[tuple[str, str], dict[str, Any]]) -> None:
    """One model over one step's files: resample (shared per rate), embed in one call, write and mark."""
    at_rate = resampled.setdefault(model.sample_rate, {})
    ready = []
    for f in step:
        y, sr, problem, _ = audio[f.key]
        if y is None:  # marked too: until the WAV changes, reading it again would fail again
            rows[(f.key, model.name)] = _row(f, model.name, "error", problem)
            markers.put(f.key, {**rows[(f.key, model.name)], "source": audio[f.key][3]})
            continue
        if f.key not in at_rate:
            at_rate[f.key] = y if sr == model.sample_rate else soxr.resample(
                y, sr, model.sample_rate, quality="HQ").astype(np.float32, copy=False)
        ready.append(f)
    for f, frames, problem in _embed_batch(model, ready, [at_rate[f.key] for f in ready]):
        if frames is None:
            rows[(f.key, model.name)] = _row(f, model.name, "error", problem)
            continue
        label, stem = split_key(f.key)
        write_npy(paths.feature_file(model.name, label, stem, ".npy"), np.ascontiguousarray(frames.T, np.float32))
        row = _row(f, model.name, "ok", n_frames=frames.shape[0], dim=frames.shape[1], hop_seconds=model.hop_seconds)
        markers.put(f.key, {**row, "source": audio[f.key][3]})  # last: now a re-run may trust the NPY
        rows[(f.key, model.name)] = row


def _embed_batch(model: EmbeddingModel, files: list[_File], signals: list[np.ndarray]):
    """(file, frames or None, problem) per file: the whole list in one call, file by file when it fails,
    so one bad file becomes one error row."""
    if not files:
        return []
    try:
        return [(f, _checked(model, frames), "") for f, frames in zip(files, model.embed(signals))]
    except Exception as exc:  # find the file that failed; the others still get their embeddings
        if len(files) == 1:
            return [(files[0], None, f"{model.name} failed: {type(exc).__name__}: {exc}")]
        log.debug("%s failed on a step (%s): retrying file by file", model.name, exc)
        return [item for f, y in zip(files, signals) for item in _embed_batch(model, [f], [y])]


def _checked(model: EmbeddingModel, frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2 or frames.shape[0] < 1 or frames.shape[1] != model.dim:
        raise ValueError(f"{model.name} returned shape {frames.shape}, expected (n_frames >= 1, {model.dim})")
    if not np.isfinite(frames).all():
        raise ValueError(f"{model.name} returned non-finite values")
    return frames
