"""Parallel map over files: joblib processes, BLAS threads limited, progress bar.

With ``parallel.scheduler`` set (``tcp://host:port``) the same map runs on that
Dask cluster through joblib's dask backend; the workers must see the project folder.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Sequence

from joblib import Parallel, delayed, parallel_config
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from .config import Config


def effective_jobs(n_jobs: int) -> int:
    """``n_jobs`` with -1 meaning every core, and never more than the machine has."""
    cores = os.cpu_count() or 1
    return cores if n_jobs in (-1, 0) else max(1, min(n_jobs, cores))


def _call_limited(func: Callable[..., Any], item: Any) -> Any:
    """``func(item)`` with one BLAS/OpenMP thread; used on Dask workers, whose thread
    pools joblib cannot limit up front (threadpoolctl costs ~3 ms a call: not per file locally)."""
    with threadpool_limits(limits=1):
        return func(item)


def parallel_map(
    func: Callable[..., Any],
    items: Sequence[Any] | Iterable[Any],
    cfg: Config,
    desc: str,
    total: int | None = None,
) -> list[Any]:
    """``[func(item) for item in items]`` in parallel, in input order, with a progress bar.

    ``func`` must be picklable (a module-level function or ``functools.partial``).
    Each worker process runs with one BLAS/OpenMP thread: the processes already fill the cores.
    """
    items = list(items)
    total = len(items) if total is None else total
    jobs = effective_jobs(cfg.parallel.n_jobs)
    bar = tqdm(total=total, desc=desc, unit="file", disable=total == 0 or None)
    out: list[Any] = []
    try:
        if cfg.parallel.scheduler:
            from dask.distributed import Client  # optional: only needed with a cluster
            with Client(cfg.parallel.scheduler), parallel_config(backend="dask"):
                calls = (delayed(_call_limited)(func, item) for item in items)
                for result in Parallel(n_jobs=-1, return_as="generator")(calls):
                    out.append(result)
                    bar.update()
        elif jobs == 1:
            with threadpool_limits(limits=1):
                for item in items:
                    out.append(func(item))
                    bar.update()
        else:
            with parallel_config(backend="loky", inner_max_num_threads=1):
                calls = (delayed(func)(item) for item in items)
                for result in Parallel(n_jobs=jobs, return_as="generator", batch_size="auto")(calls):
                    out.append(result)
                    bar.update()
    finally:
        bar.close()
    return out
