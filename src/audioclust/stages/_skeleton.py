"""The parts every per-file stage shares: its closing summary and the removal of outputs no file needs.

Stages 01-03 and the report's assets work file by file, in chunks, reusing what their
markers say is done (:class:`~audioclust.core.cache.Markers`). Each ends by logging what it
did (:class:`StageSummary`) and by deleting the outputs of files that are gone from its input
(:func:`remove_unlisted`), so a renamed or removed recording leaves nothing behind.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TypeVar

import pandas as pd

from audioclust.core.errors import StageInputError
from audioclust.core.paths import ProjectPaths, root_hint

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Problems listed one by one in the log; the rest are counted (the table holds them all).
MAX_LISTED = 10


class StageSummary:
    """Status counts and problem rows of one stage, gathered chunk by chunk, logged once at the end.

    Parameters
    ----------
    stage : the stage's name in the log.
    name_column : the column that names a file in the stage's table (``path``, ``source_path`` ...).
    fine : statuses that are not problems (``ok``, and e.g. ``skipped`` where the file was left
        out by an earlier stage that already said why).
    """

    def __init__(self, stage: str, name_column: str, fine: Iterable[str] = ("ok",)) -> None:
        self.stage, self.name_column, self.fine = stage, name_column, set(fine)
        self.status: Counter[str] = Counter()
        self.problems: list[tuple[str, str, str]] = []
        self.n_problems = 0

    def add(self, table: pd.DataFrame) -> None:
        """Count the rows of one chunk of the stage's table."""
        self.status.update(table["status"])
        bad = table[~table["status"].isin(self.fine)]
        self.n_problems += len(bad)
        self.problems += list(bad[[self.name_column, "status", "reason"]].itertuples(index=False, name=None))[
            :MAX_LISTED - len(self.problems)]

    def log(self, where: str, *notes: str) -> None:
        """Log the counts and ``notes``, then the first problems and how many more ``where`` lists."""
        log.info("%s: %d file(s) → %s: %s", self.stage, sum(self.status.values()), where,
                 ", ".join(f"{s} {n}" for s, n in self.status.most_common()) or "none")
        for note in notes:
            log.info("%s", note)
        log_listed(self.stage, [f"{name}: {status} — {reason}" for name, status, reason in self.problems],
                   self.n_problems, f"the reason column of {where}")


def log_listed(stage: str, listed: Sequence[str], total: int, where: str) -> None:
    """Log the first problems of a stage (``listed``, at most :data:`MAX_LISTED`), one a line, then how many
    more of the ``total`` there are and ``where`` they all are (``the reason column of metadata/x/metadata.csv``)."""
    shown = listed[:MAX_LISTED]
    for line in shown:
        log.warning("%s", line)
    if total > len(shown):
        log.warning("%s: ... and %d more: see %s", stage, total - len(shown), where)


def remove_unlisted(candidates: Iterable[Path], keep: Callable[[Path], bool], what: str) -> int:
    """Delete each file of ``candidates`` that ``keep`` rejects; log and return how many went.

    ``what`` names them in the log (``"stale WAV file(s) from datasets/x_wav"``).
    """
    removed = 0
    for path in candidates:
        if path.is_file() and not keep(path):
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d %s", removed, what)
    return removed


#: The columns of ``metadata_transformed.csv`` (stage 02) that stage 03's two parts, features and
#: embeddings, read.
TRANSFORMED_COLUMNS: tuple[str, ...] = ("label", "stem", "path", "status", "reason")


def check_transformed(paths: ProjectPaths) -> None:
    """Stage 02's table exists and has :data:`TRANSFORMED_COLUMNS`; otherwise a :class:`StageInputError`
    saying to run transform."""
    source = paths.transformed_csv
    if not source.is_file():
        raise StageInputError(
            f"{source} not found: run `audioclust transform --dataset {paths.dataset}` first{root_hint(paths.root)}")
    header = pd.read_csv(source, dtype=str, nrows=0).columns
    missing = [c for c in TRANSFORMED_COLUMNS if c not in header]
    if missing:
        raise StageInputError(
            f"{paths.rel(source)} lacks the column(s) {', '.join(missing)}: "
            f"re-run `audioclust transform --dataset {paths.dataset}`")


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), consumed lazily."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk
