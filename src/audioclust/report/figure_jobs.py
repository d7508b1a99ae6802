"""Figures as jobs: drawn in parallel, and only when their inputs changed.

A stage describes each figure as a :class:`FigureJob` (a file stem, a module-level function
that returns a :class:`~matplotlib.figure.Figure`, and its arguments). :func:`draw_figures`
hashes every job's function and arguments (:func:`~audioclust.core.cache.content_hash`), draws
only those whose hash differs from the one recorded in the folder's ``.figures.json`` (or whose
files are missing), in worker processes, and removes the figures of earlier runs that no job
asks for any more (stage 04). :func:`draw_jobs` only draws them in worker processes, for a stage
that keeps its own record of what is current (stage 05's memo of each model).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from threadpoolctl import threadpool_limits

from audioclust import __version__
from audioclust.core.cache import content_hash
from audioclust.core.parallel import Workers, parallel_map
from audioclust.core.storage import read_json, write_json
from audioclust.report import names
from audioclust.report.figures import save_figure

log = logging.getLogger(__name__)

#: the record of what each figure of a folder was drawn from
MANIFEST = ".figures.json"


@dataclass(frozen=True)
class FigureJob:
    """One figure to draw: ``make(**kwargs)`` saved as ``<folder>/<stem>.png`` and ``.pdf``.

    ``make`` must be a module-level function (it travels to a worker process by name).
    """

    stem: str
    make: Callable[..., Figure]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """What the figure is drawn from: the function, its arguments and the package version."""
        return content_hash([self.make.__module__, self.make.__qualname__, self.kwargs, __version__], 24)


def draw_figures(jobs: Sequence[FigureJob], folder: Path, kinds: Iterable[str], workers: Workers,
                 recompute: bool = False) -> list[Path]:
    """Draw the jobs whose inputs changed; remove stale figures of ``kinds``; return every job's files.

    Parameters
    ----------
    jobs : the figures this run shows.
    folder : where they go (PNG + PDF each).
    kinds : the figure kinds (:func:`~audioclust.report.names.figure_kind`) this stage owns: a file of
        these kinds that no job names is an earlier run's, and is deleted.
    workers : processes that draw (one figure each at a time).
    recompute : True draws every job, whatever the record says.
    """
    folder = Path(folder)
    record = {} if recompute else (read_json(folder / MANIFEST) or {})
    keys = {job.stem: job.key() for job in jobs}
    files = {job.stem: [folder / f"{job.stem}{suffix}" for suffix in (".png", ".pdf")] for job in jobs}
    todo = [job for job in jobs if record.get(job.stem) != keys[job.stem]
            or not all(p.is_file() for p in files[job.stem])]
    for job in todo:
        record.pop(job.stem, None)   # a run killed while drawing must not vouch for a half-done set
    if todo:
        write_json(folder / MANIFEST, record)
        draw_jobs(todo, folder, workers)
    write_json(folder / MANIFEST, {stem: keys[stem] for stem in keys})
    kinds = set(kinds)
    kept = {p for paths in files.values() for p in paths}
    stale = [p for p in (folder.iterdir() if folder.is_dir() else [])
             if p.suffix in (".png", ".pdf") and names.figure_kind(p.stem) in kinds and p not in kept]
    for path in stale:
        path.unlink()
    log.info("%s: %d figures (PNG + PDF), %d drawn, %d unchanged%s", folder.parent.name, len(jobs), len(todo),
             len(jobs) - len(todo), f"; {len(stale)} files of an earlier run removed" if stale else "")
    return sorted(kept)


def draw_jobs(jobs: Sequence[FigureJob], folder: Path, workers: Workers, desc: str = "figures") -> list[Path]:
    """Draw every job into ``folder`` (PNG + PDF each), ``workers`` processes at a time; no record is kept.
    Returns the files, in job order."""
    drawn = parallel_map(partial(_draw, folder=Path(folder)), jobs, workers, desc=desc, unit="figure")
    return [path for paths in drawn for path in paths]


def _draw(job: FigureJob, folder: Path) -> list[Path]:
    """Draw and save one figure (in a worker process, with one BLAS/OpenMP thread)."""
    with threadpool_limits(limits=1):
        return save_figure(job.make(**job.kwargs), folder / job.stem)
