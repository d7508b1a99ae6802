"""What one run of a stage is: the seeds it runs with, and the provenance it leaves.

Kept apart from :mod:`audioclust.stages._shared` (which brings scikit-learn): every stage module
decorates its ``run`` with :func:`recorded`, and the per-file stages' worker processes import
their module without paying for scikit-learn.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, TypeVar

from audioclust.config import Config
from audioclust.core.paths import ProjectPaths
from audioclust.core.provenance import record_stage


def replicate_seeds(cfg: Config) -> list[int]:
    """The seeds stages 04 and 05 run with: ``experiment.seeds``, or ``[seed]`` when it is empty.

    The first is the primary seed: its partitions are the ones the tables, figures and the report
    show; the others are replicates, summarised as mean ± sd."""
    return [int(s) for s in cfg.experiment.seeds] or [int(cfg.seed)]


def with_seed(cfg: Config, seed: int) -> Config:
    """``cfg`` with ``seed`` (every random part of a stage reads ``cfg.seed``)."""
    return dataclasses.replace(cfg, seed=int(seed))


Run = TypeVar("Run", bound=Callable[..., Any])


def recorded(stage: str) -> Callable[[Run], Run]:
    """Decorate a stage's ``run(cfg, paths, ...)``: each finished run adds its entry (settings, code, machine,
    times) to the experiment's ``provenance.json`` (:func:`audioclust.core.provenance.record_stage`)."""
    def decorate(run: Run) -> Run:
        @functools.wraps(run)
        def recorded_run(cfg: Config, paths: ProjectPaths, *args: Any, **kwargs: Any) -> Any:
            with record_stage(paths.provenance, stage, cfg.to_dict(), replicate_seeds(cfg), paths.dataset,
                              paths.experiment):
                return run(cfg, paths, *args, **kwargs)
        return recorded_run  # type: ignore[return-value]
    return decorate
