"""Report stage: ``results/<name>/report/index.html``, an offline page to read, look and listen.

The page opens from disk (``file://``) with no server and no network: its CSS and
JavaScript are inline, a Content-Security-Policy forbids any other origin, and every
link is relative. It holds:

- the **sound map**: a 2-D projection (``report.projection``: t-SNE, PCA or UMAP, seeded)
  of the matrix that was clustered, one point per file of the result, drawn as SVG by
  plain JavaScript, coloured by cluster or by label (a toggle; the Okabe–Ito colours of
  :mod:`audioclust.report.figures`, the shape changes beyond eight categories); hovering shows a
  file's name, label, cluster and thumbnail, clicking plays it;
- one section per cluster of the result: size, label make-up, the members closest to and
  farthest from the centre (thumbnail and player each), and the list of every member;
- the summary tables of stages 04 and 05 (and their full result tables), every figure of
  ``results/<name>/clustering|autoencoder/figures/`` with an index (linked, not copied: keep
  the report inside ``results/<name>/``), and the grouping comparison when
  ``grouping.pairs_csv`` is set;
- the config (YAML) and the package versions that produced it.

The result shown is ``report.result`` of ``report.source``, or the label-free choice
(:func:`audioclust.results.choose_result`). Tables and cluster sections are plain HTML
(readable without JavaScript); only the map needs it.

Assets, next to ``index.html``
    ``audio/<label>/<stem>.ogg``: the first ``report.audio_seconds`` of each file, mono at
    ``report.audio_rate`` (16 kHz), OGG Vorbis (16-bit WAV with ``report.audio_format: wav``
    or without Vorbis in libsndfile); ``thumbs/<label>/<stem>.webp``: the
    ``report.thumbnail_feature`` image of stage 03 (:func:`audioclust.report.explore.thumbnail`,
    lossy WebP);
    ``map.csv``: the table behind the map (also returned by :func:`run`). A re-run remakes
    only the assets whose source or settings changed (``.assets.json``) and deletes the
    ones no file needs any more. Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audioclust.config import Config, section_hash
from audioclust.core.cache import MemoFolder, file_fingerprint
from audioclust.core.errors import AudioclustError, StageInputError
from audioclust.core.parallel import parallel_map
from audioclust.core.paths import ProjectPaths, file_key, label_folder
from audioclust.core.storage import (
    read_json,
    remove_stale_temps,
    write_bytes,
    write_csv,
    write_json,
    write_text,
)
from audioclust.dsp.numba_cache import load_kernels
from audioclust.report import explore
from audioclust.report import figures as plots
from audioclust.report.explore import EMBEDDING_FILES
from audioclust.report.html import _url, render, report_folder
from audioclust.represent.projection import (
    _normalise,
    project,
    sample_positions,
)
from audioclust.represent.vectors import DESCRIPTOR_FEATURE, ViewSpec
from audioclust.represent.views import build_views
from audioclust.results import (
    MAP_COLUMNS,
    SOURCES,
    Result,
    load_result,
    read_results,
    read_table,
)
from audioclust.stages._runs import recorded
from audioclust.stages._shared import views_settings, workers
from audioclust.stages._skeleton import MAX_LISTED, log_listed, remove_unlisted

log = logging.getLogger(__name__)


_MANIFEST = ".assets.json"



@recorded("report")
def run(cfg: Config, paths: ProjectPaths) -> pd.DataFrame:
    """Write the report (:func:`write_report`) and return its map table.

    Returns
    -------
    DataFrame with :data:`MAP_COLUMNS`, one row per file of the result (also ``map.csv``).
    """
    remove_stale_temps(*paths.generated())
    return _build(cfg, paths)[1]


def write_report(cfg: Config, paths: ProjectPaths) -> Path:
    """Write ``results/<name>/report/index.html`` and its assets; return the page's path.

    Raises
    ------
    StageInputError
        Stage 04 (or, with ``report.source: autoencoder``, stage 05) has not run.
    """
    return _build(cfg, paths)[0]


def _build(cfg: Config, paths: ProjectPaths) -> tuple[Path, pd.DataFrame]:
    r = cfg.report
    out = report_folder(paths)
    result = load_result(paths, r.result, r.source, cfg.cluster.criterion, cfg.cluster.tune_criterion)
    log.info("report: result %s", result.describe())
    X = result_matrix(cfg, paths, result)
    structures, others = _structures(paths, result)
    full = result
    keep = np.arange(len(result.files))
    if r.max_files is not None and len(result.files) > r.max_files:
        keep = sample_positions(result.clusters, r.max_files, cfg.seed)
        result = dataclasses.replace(result, files=result.files.iloc[keep].reset_index(drop=True))
        X = X[keep]
        log.info("report: %d files; the map and the cluster sections show a seeded sample of %d (report.max_files)",
                 len(full.files), len(keep))
    memo = MemoFolder(paths.projections)
    Y = project(X, r.projection, cfg.seed, memo)
    # each other structure on its own map: its clusters, in the projection of the matrix it clustered
    alternatives = {}
    for alt in others.values():
        x, y = _normalise(project(result_matrix(cfg, paths, alt)[keep], r.projection, cfg.seed, memo))
        alternatives[alt.id] = {"cluster": alt.clusters[keep], "x": x, "y": y}
    table = _write_assets(cfg, paths, result, out)
    table["x"], table["y"] = _normalise(Y)
    table = table[MAP_COLUMNS]
    write_csv(out / "map.csv", table)

    grouping = _grouping(cfg, paths, result, out)
    page = render(paths, result, X, table, report=cfg.report, seed=cfg.seed, config=cfg.to_dict(), grouping=grouping,
                  full=full, structures=structures, alternatives=alternatives)
    index = out / "index.html"
    write_text(index, page)
    _log_summary(out, index, table)
    return index, table


def _structures(paths: ProjectPaths, result: Result) -> tuple[pd.DataFrame | None, dict[int, Result]]:
    """The ``structures.csv`` of the stage the result comes from and, by structure, each other structure's
    representative as a :class:`Result` of the same files (None, {} when that stage wrote none)."""
    folder = paths.results / result.source
    if not (folder / "structures.csv").is_file():
        return None, {}
    structures = pd.read_csv(folder / "structures.csv")
    if structures.empty:  # no feature had an eligible row
        return None, {}
    others = {int(rank): str(rep) for rank, rep in zip(structures["structure"], structures["representative"])
              if str(rep) != result.id}
    if not others:
        return structures, {}
    rows = read_results(paths, result.source).set_index("id")
    labels = pd.read_csv(folder / "labels.csv", usecols=lambda c: c in set(others.values()))
    if len(labels) != len(result.files) or not set(others.values()) <= set(labels.columns) & set(rows.index):
        raise StageInputError(f"{paths.rel(folder / 'structures.csv')} does not match the rest of "
                              f"{paths.rel(folder)}: re-run `audioclust cluster {paths.cli}`")
    return structures, {rank: dataclasses.replace(result, id=rep, row=rows.loc[rep].rename(rep), how="alternative",
                                                  files=result.files.assign(cluster=labels[rep].to_numpy(dtype=int)))
                        for rank, rep in others.items()}


# --------------------------------------------------------------------------- assets

@dataclass(frozen=True)
class _Settings:
    seconds: float
    rate: int
    fmt: str
    kind: str | None
    size: tuple[int, int]
    cmap: str


@dataclass(frozen=True)
class _Job:
    key: str
    wav: str
    png: str
    audio_out: str
    thumb_out: str


def _make_assets(job: _Job, settings: _Settings) -> dict[str, Any]:
    """One file's excerpt and thumbnail; failures become a status, never an exception."""
    row: dict[str, Any] = {"audio_status": "ok", "reason": "", "audio_bytes": 0, "thumb_ok": False}
    if not job.wav:
        row.update(audio_status="missing", reason="no WAV path in features.csv")
    else:
        try:
            data = explore.encode_audio(explore.audio_excerpt(job.wav, settings.seconds, settings.rate),
                                        settings.rate, settings.fmt)
            write_bytes(job.audio_out, data)
            row["audio_bytes"] = len(data)
        except (OSError, RuntimeError, ValueError) as exc:
            row.update(audio_status="error", reason=f"{type(exc).__name__}: {exc}")
    if job.thumb_out:
        try:
            write_bytes(job.thumb_out, explore.image_bytes(explore.thumbnail(job.png, settings.size, settings.cmap)))
            row["thumb_ok"] = True
        except OSError as exc:
            row["reason"] = (row["reason"] + "; " if row["reason"] else "") + f"no thumbnail: {exc}"
    return row


def _write_assets(cfg: Config, paths: ProjectPaths, result: Result, out: Path) -> pd.DataFrame:
    """Excerpts and thumbnails of every file of the result (reused when up to date)."""
    r = cfg.report
    fmt = explore.audio_format(r.audio_format)
    suffix = explore.AUDIO_FORMATS[fmt][0]
    kind = r.thumbnail_feature
    if not cfg.features.png or kind not in cfg.features.kinds:
        log.warning("report: no thumbnails: report.thumbnail_feature '%s' needs features.png: true and '%s' in "
                    "features.kinds", kind, kind)
        kind = None
    settings = _Settings(seconds=r.audio_seconds, rate=r.audio_rate, fmt=fmt, kind=kind,
                         size=(int(r.thumbnail_size[0]), int(r.thumbnail_size[1])), cmap=plots.SEQUENTIAL)
    # only what changes the assets: another report.result or projection reuses them
    settings_key = section_hash(cfg, extra={"settings": dataclasses.asdict(settings),
                                            "thumbnail": [explore.THUMBNAIL_SUFFIX, explore.THUMBNAIL_QUALITY],
                                            "png_range": cfg.features.png_ranges.get(kind or "", None)})
    manifest = read_json(out / _MANIFEST) or {}
    previous = manifest.get("files", {}) if manifest.get("key") == settings_key else {}

    jobs, rows, todo = [], [], []
    for label, stem, wav in zip(result.files["label"], result.files["stem"], result.files["path"]):
        folder = label_folder(label)
        key = file_key(label, stem)
        job = _Job(key=key, wav=str(paths.abs(wav)) if wav else "",
                   png=str(explore.feature_png(paths, kind, label, stem)) if kind else "",
                   audio_out=str(out / "audio" / folder / f"{stem}{suffix}"),
                   thumb_out=str(out / "thumbs" / folder / f"{stem}{explore.THUMBNAIL_SUFFIX}") if kind else "")
        jobs.append(job)
        old = previous.get(key)
        fresh = (isinstance(old, dict) and old.get("wav") == file_fingerprint(job.wav)
                 and old.get("png") == (file_fingerprint(job.png) if kind else None)
                 and (old.get("audio_status") != "ok" or Path(job.audio_out).is_file())
                 and (not old.get("thumb_ok") or Path(job.thumb_out).is_file()))
        rows.append(old if fresh else None)
        if not fresh:
            todo.append(len(jobs) - 1)
    if len(jobs) > len(todo):
        log.info("report: assets of %d of %d files are up to date", len(jobs) - len(todo), len(jobs))
    # the workers resample the excerpts with librosa: its numba kernels loaded here first (numba_cache)
    made = parallel_map(functools.partial(_make_assets, settings=settings), [jobs[i] for i in todo], workers(cfg),
                        desc="report assets", prepare=load_kernels)
    for i, row in zip(todo, made):
        rows[i] = {**row, "wav": file_fingerprint(jobs[i].wav), "png": file_fingerprint(jobs[i].png) if kind else None}
    write_json(out / _MANIFEST, {"key": settings_key, "files": {j.key: row for j, row in zip(jobs, rows)}})
    _remove_stale(out, {Path(j.audio_out) for j in jobs} | {Path(j.thumb_out) for j in jobs if j.thumb_out})

    records = []
    for row, cluster, label, stem in zip(rows, result.files["cluster"], result.files["label"], result.files["stem"]):
        folder = label_folder(label)
        records.append({
            "stem": stem, "label": label, "cluster": int(cluster),
            "audio": _url(["audio", folder, f"{stem}{suffix}"]) if row["audio_status"] == "ok" else "",
            "thumb": _url(["thumbs", folder, f"{stem}{explore.THUMBNAIL_SUFFIX}"]) if row.get("thumb_ok") else "",
            "audio_status": row["audio_status"], "reason": row["reason"], "audio_bytes": int(row["audio_bytes"])})
    return pd.DataFrame(records)


def _remove_stale(out: Path, keep: set[Path]) -> None:
    """Delete excerpts and thumbnails that no file of the report uses any more."""
    for sub in ("audio", "thumbs"):
        if (out / sub).is_dir():
            remove_unlisted((out / sub).rglob("*"), lambda p: p in keep, f"stale report {sub} file(s)")


# --------------------------------------------------------------------------- grouping

def _grouping(cfg: Config, paths: ProjectPaths, result: Result, out: Path) -> dict[str, Any] | None:
    """The comparison with ``grouping.pairs_csv`` (None when not set; the error text when it fails)."""
    if not cfg.grouping.pairs_csv:
        return None
    from audioclust.analysis.grouping import compare_grouping
    clusters = result.files[["stem", "label", "path"]].assign(cluster=result.files["cluster"])
    try:
        found = compare_grouping(paths.abs(cfg.grouping.pairs_csv), clusters, out / "grouping",
                                 n_communities=cfg.grouping.n_communities, seed=cfg.seed, cluster_column="cluster")
    except AudioclustError as exc:
        log.warning("report: grouping comparison failed: %s", exc)
        return {"error": str(exc)}
    return found


def _log_summary(out: Path, index: Path, table: pd.DataFrame) -> None:
    counts = Counter(table["audio_status"])
    bad = table[table["audio_status"] != "ok"]
    log_listed("report", [f"report: no audio for {label_folder(row['label'])}/{row['stem']}: {row['reason']}"
                          for _, row in bad.head(MAX_LISTED).iterrows()],
               len(bad), f"the reason column of {out / 'map.csv'}")
    sizes = {sub: sum(p.stat().st_size for p in (out / sub).rglob("*") if p.is_file()) if (out / sub).is_dir() else 0
             for sub in ("audio", "thumbs")}
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    ok = max(1, counts.get("ok", 0))
    log.info("report: %d files (audio %s); %.1f MB in all: audio %.1f MB (%.1f kB per file), thumbnails %.1f MB, "
             "page %.0f kB", len(table), ", ".join(f"{s}: {c}" for s, c in sorted(counts.items())), total / 1e6,
             sizes["audio"] / 1e6, sizes["audio"] / ok / 1e3, sizes["thumbs"] / 1e6, index.stat().st_size / 1e3)
    log.info("report: open %s", index.resolve().as_uri())


def result_matrix(cfg: Config, paths: ProjectPaths, result: Result) -> np.ndarray:
    """The matrix that was clustered, one row per file of ``result.files``.

    Stage 04: the view of the row (feature, kind, source) through
    :func:`audioclust.represent.views.build_views`, which reads its cache when ``cfg`` has the
    settings stage 04 ran with (else the view is rebuilt with the current ones). Stage 05:
    ``embeddings/<view>/pretrained.npy`` (``ae_kmeans``, ``ae_spectral``) or ``dcec.npy`` (``dcec``).

    Returns
    -------
    ndarray of shape (n_files, n_dims), float32

    Raises
    ------
    StageInputError
        The embedding is missing or the matrix does not have one row per file.
    """
    row = result.row
    if result.source == "autoencoder":
        name = EMBEDDING_FILES.get(str(row.get("stage")))
        path = result.folder / "embeddings" / str(row.get("view")) / (name or "")
        if name is None or not path.is_file():
            raise StageInputError(f"no embedding for {result.id} at {paths.rel(path)}: re-run "
                                  f"`audioclust autoencoder {paths.cli}`")
        X = np.load(path, allow_pickle=False)
    else:
        feature, kind = str(row["feature"]), str(row["kind"])
        spec = ViewSpec(feature, kind, "csv" if kind == DESCRIPTOR_FEATURE else str(row["source"]))
        X = build_views(views_settings(cfg), paths, read_table(paths), specs=[spec])[0].X
    if X.ndim != 2 or X.shape[0] != len(result.files):
        raise StageInputError(f"the matrix of {result.id} has shape {X.shape}, not one row per file "
                              f"({len(result.files)}): re-run `audioclust {SOURCES[result.source]} {paths.cli}`")
    return np.asarray(X, dtype=np.float32)
