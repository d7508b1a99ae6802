"""Stage 01: scan ``datasets/<name>/`` into ``metadata/<name>/metadata.csv``.

One row per audio file found (recursively, following symbolic links, skipping hidden
files and folders and other extensions), sorted by path: its label (from the
configured label source), a unique file-system-safe output ``stem``, the header
values (duration, rate, channels, frames, subtype) and a ``status``: ``ok``,
``empty`` (0 bytes or 0 frames) or ``error`` with the ``reason``. Each file is
proved decodable by reading its first and last block (:func:`audioclust.audio.probe`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from .audio import probe
from .config import Config
from .datasets import label_folder, resolve_labels, safe_name
from .errors import AudioReadError, DatasetError
from .parallel import parallel_map
from .paths import ProjectPaths
from .storage import write_csv

log = logging.getLogger(__name__)

COLUMNS = ["name", "extension", "path", "label", "stem", "duration", "sample_rate", "channels", "frames",
           "subtype", "status", "reason", "size"]

#: Header reads take about 0.3 ms a file on a local disk, so below this many files they run in
#: this process (starting workers costs more); above it, in chunks of PROBE_CHUNK files per task.
PARALLEL_MIN_FILES = 20000
PROBE_CHUNK = 500


def scan(raw: Path, extensions: set[str]) -> tuple[list[Path], dict[str, int]]:
    """Audio files under ``raw``, sorted by relative posix path.

    Follows symbolic links (a folder reached twice, as through a link loop, is
    visited once), skips hidden files and folders (name starting with ``.``) and
    files whose lower-case extension is not in ``extensions``.

    Returns
    -------
    files : absolute paths, sorted by their path relative to ``raw``.
    skipped : ``{"hidden": n, "other extension": n}``.
    """
    files: list[Path] = []
    skipped = {"hidden": 0, "other extension": 0}
    seen_dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(raw, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        skipped["hidden"] += sum(d.startswith(".") for d in dirnames)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                skipped["hidden"] += 1
            elif Path(name).suffix.lower().lstrip(".") in extensions:
                files.append(Path(dirpath) / name)
            else:
                skipped["other extension"] += 1
    files.sort(key=lambda p: p.relative_to(raw).as_posix())
    return files, skipped


def probe_row(path: Path) -> dict[str, Any]:
    """Header values and status of one file; never raises for a bad file."""
    try:
        size = path.stat().st_size
    except OSError:
        size = None
    if size == 0:
        return {"status": "empty", "reason": "empty file (0 bytes)", "size": 0}
    try:
        info = probe(path)
    except AudioReadError as exc:
        return {"status": "error", "reason": str(exc), "size": size}
    except Exception as exc:  # noqa: BLE001 — a decoder crash on one file must not stop the scan
        return {"status": "error", "reason": f"unexpected {type(exc).__name__} while reading: {exc}", "size": size}
    if info["frames"] == 0:
        return {**info, "status": "empty", "reason": "no audio frames (the file holds only a header)", "size": size}
    return {**info, "status": "ok", "reason": "", "size": size}


def probe_rows(paths: list[Path]) -> list[dict[str, Any]]:
    """:func:`probe_row` of each path: one parallel task per chunk of files."""
    return [probe_row(p) for p in paths]


def make_stems(rels: list[str], labels: list[str], folder_labels: bool) -> list[str]:
    """Unique, file-system-safe output stems.

    The stem is the path below the label folder (``folder_labels``) or below the
    dataset folder, without extension, with ``/`` written ``__`` — the file stem itself
    for a file directly in it. Stems are unique (ignoring case) within each output
    folder (:func:`label_folder`); a clash (``a.wav`` and ``a.flac``) gets the
    extension appended, then a counter.
    """
    stems, used = [], set()
    for rel, label in zip(rels, labels):
        parts = PurePosixPath(rel).parts
        inner = parts[1:] if folder_labels and len(parts) > 1 else parts
        base = safe_name("__".join((*inner[:-1], PurePosixPath(inner[-1]).stem)))
        stem, n = base, 1
        ext = PurePosixPath(rel).suffix.lower().lstrip(".")
        while (label_folder(label), stem.casefold()) in used:
            n += 1
            stem = f"{base}_{ext}" if n == 2 else f"{base}_{ext}{n - 1}"
        used.add((label_folder(label), stem.casefold()))
        stems.append(stem)
    return stems


def _printable(rel: str) -> tuple[str, str]:
    """``rel`` fit for a UTF-8 CSV, and a reason when the file name is not valid UTF-8."""
    try:
        rel.encode("utf-8")
        return rel, ""
    except UnicodeEncodeError:
        fixed = rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return fixed, f"file name is not valid UTF-8 (shown as {fixed!r}): rename the file"


def run(cfg: Config, paths: ProjectPaths) -> pd.DataFrame:
    """Stage 01: scan ``paths.raw`` and write ``paths.metadata_csv``.

    Returns
    -------
    DataFrame with the columns :data:`COLUMNS`, one row per audio file, sorted by ``path``.

    Raises
    ------
    DatasetError
        ``datasets/<name>/`` is missing or holds no audio file; the label CSV is missing.
    """
    raw = paths.raw
    if not raw.is_dir():
        raise DatasetError(
            f"dataset folder {raw} does not exist: put the audio files there (one sub-folder per label, "
            f"or any layout with dataset.labels regex/csv/none), or create it with "
            f"`audioclust generate-demo --dataset {paths.dataset}` (synthetic demo) or "
            f"`audioclust prepare <fsdd|urbansound8k|esc50|csv> --dataset {paths.dataset} --source DIR`")
    sf_ext = {e.lower().lstrip(".") for e in cfg.dataset.extensions}
    ff_ext = {e.lower().lstrip(".") for e in cfg.dataset.ffmpeg_extensions}
    files, skipped = scan(raw, sf_ext | ff_ext)
    if not files:
        raise DatasetError(f"no audio files in {raw} (extensions: {', '.join(sorted(sf_ext | ff_ext))}); "
                           "add files or extend dataset.extensions")
    log.info("found %d audio file(s) in %s (skipped: %d hidden, %d other extension)",
             len(files), paths.rel(raw), skipped["hidden"], skipped["other extension"])

    names = [_printable(f.relative_to(raw).as_posix()) for f in files]
    rels = [n for n, _ in names]
    labels = resolve_labels(rels, cfg.dataset, raw)
    stems = make_stems(rels, labels, folder_labels=cfg.dataset.labels == "folder")
    if len(files) >= PARALLEL_MIN_FILES:
        chunks = [files[i:i + PROBE_CHUNK] for i in range(0, len(files), PROBE_CHUNK)]
        infos = [info for chunk in parallel_map(probe_rows, chunks, cfg, desc=f"metadata ({PROBE_CHUNK} files/step)")
                 for info in chunk]
    else:
        infos = [probe_row(f) for f in tqdm(files, desc="metadata", unit="file")]

    rows = []
    for f, rel, (_, bad_name), label, stem, info in zip(files, rels, names, labels, stems, infos):
        if bad_name:
            info = {**info, "status": "error", "reason": bad_name}
        rows.append({"name": PurePosixPath(rel).name, "extension": f.suffix.lower().lstrip("."),
                     "path": paths.rel(paths.raw / rel), "label": label, "stem": stem, **info})
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    table["reason"] = table["reason"].fillna("")
    table["subtype"] = table["subtype"].fillna("")
    for col in ("sample_rate", "channels", "frames", "size"):
        table[col] = table[col].astype("Int64")
    write_csv(paths.metadata_csv, table)
    log_summary(table, paths.rel(paths.metadata_csv))
    return table


def log_summary(table: pd.DataFrame, where: str) -> None:
    """Log counts per status and per label, total duration, and the first problems."""
    counts = table["status"].value_counts()
    log.info("metadata: %d file(s) → %s: %s", len(table), where,
             ", ".join(f"{s} {n}" for s, n in counts.items()))
    ok = table[table["status"] == "ok"]
    if len(ok):
        per_label = ok["label"].replace("", "(none)").value_counts().sort_index()
        log.info("ok files per label: %s; total duration %.1f s",
                 ", ".join(f"{k} {v}" for k, v in per_label.items()), ok["duration"].sum())
    for _, row in table[table["status"] != "ok"].head(10).iterrows():
        log.warning("%s: %s — %s", row["path"], row["status"], row["reason"])
