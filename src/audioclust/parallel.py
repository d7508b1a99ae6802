"""Parallel map over files: joblib processes, BLAS threads limited, progress bar.

With ``parallel.scheduler`` set (``tcp://host:port``) the same map runs on that
Dask cluster through joblib's dask backend; the workers must see the project folder.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
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
    """Run ``func(item)`` with one BLAS/OpenMP thread: the processes already fill the cores."""
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
    """
    items = list(items)
    total = len(items) if total is None else total
    jobs = effective_jobs(cfg.parallel.n_jobs)
    bar = tqdm(total=total, desc=desc, unit="file", disable=total == 0 or None)
    if jobs == 1 and not cfg.parallel.scheduler:
        out = []
        for item in items:
            out.append(_call_limited(func, item))
            bar.update()
        bar.close()
        return out
    if cfg.parallel.scheduler:
        from dask.distributed import Client  # optional: only needed with a cluster
        client = Client(cfg.parallel.scheduler)
        ctx = parallel_config(backend="dask")
    else:
        client = None
        ctx = nullcontext()
    try:
        with ctx:
            runner = Parallel(n_jobs=jobs, return_as="generator", batch_size="auto")
            out = []
            for result in runner(delayed(_call_limited)(func, item) for item in items):
                out.append(result)
                bar.update()
    finally:
        bar.close()
        if client is not None:
            client.close()
    return out
