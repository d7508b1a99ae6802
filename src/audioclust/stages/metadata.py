"""Stage 01: scan ``datasets/<name>/`` into ``metadata/<name>/metadata.csv``.

One row per audio file found (recursively, following symbolic links, skipping hidden
files and folders and other extensions), sorted by path: its label (from the
configured label source), a unique file-system-safe output ``stem``, the header
values (duration, rate, channels, frames, subtype) and a ``status``: ``ok``,
``empty`` (0 bytes or 0 frames), ``too_long`` (longer than ``dataset.max_duration``:
the later stages hold a whole recording in memory) or ``error`` with the ``reason``.
Each file is proved decodable by reading its first and last block
(:func:`audioclust.dsp.decode.probe`).
"""

from __future__ import annotations

import logging
import os
from collections import Counter, deque
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import pandas as pd

from audioclust.config import Config
from audioclust.core.errors import AudioReadError, DatasetError
from audioclust.core.labels import LabelResolver
from audioclust.core.parallel import parallel_imap
from audioclust.core.paths import ProjectPaths, label_folder, root_hint, safe_name
from audioclust.core.progress import Progress
from audioclust.core.storage import CsvStream, remove_stale_temps
from audioclust.dsp.decode import probe
from audioclust.results import read_metadata
from audioclust.stages._runs import recorded
from audioclust.stages._shared import workers
from audioclust.stages._skeleton import StageSummary, chunks

log = logging.getLogger(__name__)


COLUMNS = ["name", "extension", "path", "label", "stem", "duration", "sample_rate", "channels", "frames",
           "subtype", "status", "reason", "size"]

#: Header reads take about 0.3 ms a file on a local disk, so below this many files they run in
#: this process (starting workers costs more); above it, in chunks of PROBE_CHUNK files per task.
PARALLEL_MIN_FILES = 20000

PROBE_CHUNK = 500


def iter_audio_files(raw: Path, extensions: set[str], skipped: dict[str, int] | None = None) -> Iterator[Path]:
    """Audio files under ``raw``, one at a time, in sorted order of their path relative to ``raw``.

    Streams (no list of the whole tree): each folder's entries are sorted by name, a folder
    as ``name/`` so that the walk yields exactly the order of the sorted relative paths.
    Follows symbolic links (a folder reached twice, as through a link loop, is visited once),
    skips hidden files and folders (name starting with ``.``) and files whose lower-case
    extension is not in ``extensions``, counting them in ``skipped`` (``hidden``,
    ``other extension``).
    """
    skipped = {} if skipped is None else skipped
    skipped.setdefault("hidden", 0)
    skipped.setdefault("other extension", 0)
    seen_dirs: set[str] = set()

    def walk(folder: str) -> Iterator[Path]:
        real = os.path.realpath(folder)
        if real in seen_dirs:
            return
        seen_dirs.add(real)
        try:
            with os.scandir(folder) as it:
                entries = [(e.name + "/" if _is_dir(e) else e.name, e.path) for e in it]
        except OSError as exc:
            log.warning("cannot list %s: %s", folder, exc)
            return
        for name, path in sorted(entries):
            if name.startswith("."):
                skipped["hidden"] += 1
            elif name.endswith("/"):
                yield from walk(path)
            elif PurePosixPath(name).suffix.lower().lstrip(".") in extensions:
                yield Path(path)
            else:
                skipped["other extension"] += 1

    yield from walk(os.fspath(raw))


def audio_extensions(cfg: Config) -> set[str]:
    """The extensions stage 01 lists: ``dataset.extensions`` and ``dataset.ffmpeg_extensions``, lower case, no dot."""
    return {e.lower().lstrip(".") for e in (*cfg.dataset.extensions, *cfg.dataset.ffmpeg_extensions)}


def _no_audio(raw: Path, extensions: set[str]) -> DatasetError:
    return DatasetError(f"no audio files in {raw} (extensions: {', '.join(sorted(extensions))}); "
                        "add files or extend dataset.extensions")


TOP_LEVEL = "(top level)"


def folder_overview(cfg: Config, paths: ProjectPaths) -> pd.DataFrame:
    """What stage 01 will list, per first folder below ``datasets/<name>/`` (the label folders).

    Index ``folder`` (``(top level)`` for files directly in the dataset folder, as an unlabelled collection
    has them), columns ``files`` (audio files at any depth) and ``example`` (the first that is not empty, or
    None). Raises DatasetError, as stage 01 does, when there is no audio file.
    """
    extensions = audio_extensions(cfg)
    counts: dict[str, int] = {}
    examples: dict[str, Path | None] = {}
    for f in iter_audio_files(paths.raw, extensions):
        parts = f.relative_to(paths.raw).parts
        folder = parts[0] if len(parts) > 1 else TOP_LEVEL
        counts[folder] = counts.get(folder, 0) + 1
        if examples.get(folder) is None:
            examples[folder] = f if _size(f) else None
    if not counts:
        raise _no_audio(paths.raw, extensions)
    table = pd.DataFrame({"files": counts, "example": examples})
    table.index.name = "folder"
    return table


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # a dangling or looping link: no example
        return 0


def _is_dir(entry: os.DirEntry) -> bool:
    """Whether a folder entry is a folder; a link that loops is not (it becomes a file row with a reason)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


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


def check_duration(info: dict[str, Any], max_duration: float | None) -> dict[str, Any]:
    """``info`` with status ``too_long`` when its duration is above ``max_duration`` (None: no limit)."""
    if max_duration is None or not info["duration"] > max_duration:
        return info
    return {**info, "status": "too_long",
            "reason": f"{info['duration'] / 60:.1f} min is longer than dataset.max_duration "
                      f"({max_duration / 60:g} min): stages 02-03 hold a whole recording in memory (about 3 and "
                      f"5 GiB per hour of audio and worker); split it into shorter files, or raise "
                      f"dataset.max_duration"}


def probe_rows(paths: list[Path]) -> list[dict[str, Any]]:
    """:func:`probe_row` of each path: one parallel task per chunk of files."""
    return [probe_row(p) for p in paths]


class StemMaker:
    """Unique, file-system-safe output stems, one file at a time.

    The stem is the path below the label folder (``folder_labels``) or below the
    dataset folder, without extension, with ``/`` written ``__`` — the file stem itself
    for a file directly in it. Stems are unique (ignoring case) within each output
    folder (:func:`label_folder`); a clash (``a.wav`` and ``a.flac``) gets the
    extension appended, then a counter.
    """

    def __init__(self, folder_labels: bool) -> None:
        self.folder_labels = folder_labels
        self.used: set[tuple[str, str]] = set()

    def __call__(self, rel: str, label: str) -> str:
        parts = PurePosixPath(rel).parts
        inner = parts[1:] if self.folder_labels and len(parts) > 1 else parts
        base = safe_name("__".join((*inner[:-1], PurePosixPath(inner[-1]).stem)))
        stem, n = base, 1
        ext = PurePosixPath(rel).suffix.lower().lstrip(".")
        while (label_folder(label), stem.casefold()) in self.used:
            n += 1
            stem = f"{base}_{ext}" if n == 2 else f"{base}_{ext}{n - 1}"
        self.used.add((label_folder(label), stem.casefold()))
        return stem


def make_stems(rels: list[str], labels: list[str], folder_labels: bool) -> list[str]:
    """:class:`StemMaker` over a list of files."""
    maker = StemMaker(folder_labels)
    return [maker(rel, label) for rel, label in zip(rels, labels)]


def _printable(rel: str) -> tuple[str, str]:
    """``rel`` fit for a UTF-8 CSV, and a reason when the file name is not valid UTF-8."""
    try:
        rel.encode("utf-8")
        return rel, ""
    except UnicodeEncodeError:
        fixed = rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return fixed, f"file name is not valid UTF-8 (shown as {fixed!r}): rename the file"


@recorded("metadata")
def run(cfg: Config, paths: ProjectPaths, return_table: bool = True) -> pd.DataFrame | None:
    """Stage 01: scan ``paths.raw`` and write ``paths.metadata_csv``.

    Streams: files are listed, probed and written in chunks of :data:`PROBE_CHUNK`, so
    memory does not grow with the number of files.

    Parameters
    ----------
    return_table : bool
        Read the table back and return it (False: return None; for very large collections).

    Returns
    -------
    DataFrame with the columns :data:`COLUMNS`, one row per audio file, sorted by ``path``, or None.

    Raises
    ------
    DatasetError
        ``datasets/<name>/`` is missing or holds no audio file; the label CSV is missing.
    """
    remove_stale_temps(*paths.generated())
    raw = paths.raw
    if not raw.is_dir():
        raise DatasetError(
            f"dataset folder {raw} does not exist: put the audio files there (one sub-folder per label, "
            f"or any layout with dataset.labels regex/csv/none), or create it with "
            f"`audioclust generate-demo --dataset {paths.dataset}` (synthetic demo) or "
            f"`audioclust prepare <fsdd|urbansound8k|esc50|csv> --dataset {paths.dataset} --source DIR`"
            f"{root_hint(paths.root)}")
    extensions = audio_extensions(cfg)
    skipped: dict[str, int] = {}
    n_files = sum(1 for _ in iter_audio_files(raw, extensions, skipped))  # a cheap first pass: the total
    if not n_files:
        raise _no_audio(raw, extensions)
    log.info("found %d audio file(s) in %s (skipped: %d hidden, %d other extension)",
             n_files, paths.rel(raw), skipped["hidden"], skipped["other extension"])

    labeller = LabelResolver(raw, labels=cfg.dataset.labels, label_regex=cfg.dataset.label_regex,
                             label_csv=cfg.dataset.label_csv)
    stems = StemMaker(folder_labels=cfg.dataset.labels == "folder")
    summary = _Summary()
    pending: deque[list[Path]] = deque()  # chunks handed to the probes, awaiting their results

    def feed() -> Iterator[list[Path]]:
        for chunk in chunks(iter_audio_files(raw, extensions), PROBE_CHUNK):
            pending.append(chunk)
            yield chunk

    infos = parallel_imap(probe_rows, feed(), workers(cfg), desc=None) if n_files >= PARALLEL_MIN_FILES \
        else map(probe_rows, feed())
    with CsvStream(paths.metadata_csv, COLUMNS) as out, \
            Progress(n_files, "metadata") as bar:
        for chunk_infos in infos:
            files = pending.popleft()
            names = [_printable(f.relative_to(raw).as_posix()) for f in files]
            rels = [n for n, _ in names]
            rows = []
            for f, rel, (_, bad_name), label, info in zip(files, rels, names, labeller(rels), chunk_infos):
                if bad_name:
                    info = {**info, "status": "error", "reason": bad_name}
                elif info["status"] == "ok":
                    info = check_duration(info, cfg.dataset.max_duration)
                rows.append({"name": PurePosixPath(rel).name, "extension": f.suffix.lower().lstrip("."),
                             "path": paths.rel(paths.raw / rel), "label": label, "stem": stems(rel, label), **info})
            table = _frame(rows)
            summary.add(table)
            out.write(table)
            bar.update(len(rows))
    labeller.report()
    summary.log(paths.rel(paths.metadata_csv))
    return read_metadata(paths.metadata_csv) if return_table else None


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    table["reason"] = table["reason"].fillna("")
    table["subtype"] = table["subtype"].fillna("")
    for col in ("sample_rate", "channels", "frames", "size"):
        table[col] = table[col].astype("Int64")
    return table


class _Summary(StageSummary):
    """Counts for the log, gathered chunk by chunk; also the ok files per label and their duration."""

    def __init__(self) -> None:
        super().__init__("metadata", "path")
        self.labels: Counter[str] = Counter()
        self.duration = 0.0

    def add(self, table: pd.DataFrame) -> None:
        super().add(table)
        ok = table[table["status"] == "ok"]
        self.labels.update(ok["label"].replace("", "(none)"))
        self.duration += float(ok["duration"].sum())

    def log(self, where: str) -> None:
        notes = [f"ok files per label: {', '.join(f'{k} {v}' for k, v in sorted(self.labels.items()))}; "
                 f"total duration {self.duration:.1f} s"] if self.labels else []
        super().log(where, *notes)
