"""Parallel map over files: local worker processes, or the workers of a Dask cluster.

Locally the map runs in joblib's loky processes (``parallel.n_jobs``), each with one
BLAS/OpenMP thread: the processes already fill the cores.

With ``parallel.scheduler`` set (``tcp://host:port``, or ``--scheduler`` on the command
line) the same map runs on that Dask cluster: items go out in batches of
``parallel.batch_size`` as Dask futures, at most a few batches per worker thread in
flight, and come back in input order. Workers must see the project folder under the same
path (a shared file system) and have audioclust installed. A task whose worker dies is
retried on another worker (``parallel.retries``); since every output is written to a
temporary file and renamed, and a file counts as done only once its marker is written, a
re-run task (or a re-run stage) never trusts a half-written file.

Both paths consume ``items`` lazily and yield results as they come, so a stage can stream
a collection of any size through them with bounded memory.
"""

from __future__ import annotations

import atexit
import os
import warnings
from collections import deque
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable, Iterable, Iterator

from joblib import Parallel, delayed, parallel_config
from threadpoolctl import threadpool_limits

from audioclust.core.errors import ConfigError
from audioclust.core.progress import Progress

# loky replaces a worker whose memory has grown by 300 MB (one that drew many figures, say) with a fresh one and
# warns when items were waiting; they go to the new worker and no result is lost, so the warning only alarmed users
warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given to the executor",
                        category=UserWarning, module="joblib.externals.loky.process_executor")

#: batches per worker thread kept in flight on a Dask cluster: enough to hide the round trip
_IN_FLIGHT_PER_THREAD = 3

_clients: dict[str, Any] = {}


@dataclass(frozen=True)
class Workers:
    """Where a parallel map runs: ``n_jobs`` local processes (-1: every core), or a Dask cluster.

    Parameters
    ----------
    n_jobs : local worker processes (1: in this process).
    scheduler : address of a Dask scheduler (``tcp://host:port``); when set, ``n_jobs`` is ignored.
    batch_size : items per task sent to a Dask worker.
    retries : times a Dask task is retried when its worker dies.
    """

    n_jobs: int = 1
    scheduler: str | None = None
    batch_size: int = 16
    retries: int = 2


def effective_jobs(n_jobs: int) -> int:
    """``n_jobs`` with -1 meaning every core, and never more than the machine has."""
    cores = os.cpu_count() or 1
    return cores if n_jobs in (-1, 0) else max(1, min(n_jobs, cores))


def parallel_imap(
    func: Callable[[Any], Any],
    items: Iterable[Any],
    workers: Workers,
    desc: str | None,
    total: int | None = None,
    unit: str = "file",
    prepare: Callable[[], None] | None = None,
) -> Iterator[Any]:
    """Yield ``func(item)`` for every item, in input order, computed in parallel, showing its progress.

    Parameters
    ----------
    func : picklable callable (a module-level function or a ``functools.partial`` of one).
    items : iterable, consumed lazily (a generator is fine).
    workers : where to run (:class:`Workers`).
    desc : what the progress says (:class:`~audioclust.core.progress.Progress`); None: nothing (the caller
        shows its own).
    total : number of items, for the progress (``len(items)`` when it has one).
    unit : one item in the progress (``file``, ``view``).
    prepare : called in this process before local worker processes start (not when the map runs here or on
        Dask, nor for no items), e.g. to write a cache once that every worker would otherwise write at once.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit) as bar:
        if workers.scheduler:
            results = _dask_imap(func, items, workers)
        elif effective_jobs(workers.n_jobs) == 1:
            results = _serial_imap(func, items)
        else:
            if prepare is not None and total != 0:
                prepare()
            results = _loky_imap(func, items, effective_jobs(workers.n_jobs))
        for result in results:
            bar.update()
            yield result


def parallel_map(func: Callable[[Any], Any], items: Iterable[Any], workers: Workers, desc: str | None,
                 total: int | None = None, unit: str = "file", prepare: Callable[[], None] | None = None) -> list[Any]:
    """``list(parallel_imap(...))``: every result at once, in input order."""
    return list(parallel_imap(func, items, workers, desc, total, unit, prepare))


def _serial_imap(func: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
    with threadpool_limits(limits=1):
        for item in items:
            yield func(item)


def _loky_imap(func: Callable[[Any], Any], items: Iterable[Any], jobs: int) -> Iterator[Any]:
    with parallel_config(backend="loky", inner_max_num_threads=1):
        calls = (delayed(func)(item) for item in items)
        yield from Parallel(n_jobs=jobs, return_as="generator", batch_size="auto")(calls)


def _call_batch(func: Callable[[Any], Any], batch: list[Any]) -> list[Any]:
    """Run on a Dask worker: ``func`` over a batch with one BLAS/OpenMP thread (the worker's
    threads already fill its cores; threadpoolctl costs ~3 ms, so once per batch, not per file)."""
    with threadpool_limits(limits=1):
        return [func(item) for item in batch]


def _dask_imap(func: Callable[[Any], Any], items: Iterable[Any], workers: Workers) -> Iterator[Any]:
    client = dask_client(workers.scheduler)
    threads = max(1, sum(client.nthreads().values()))
    batches = _batched(items, workers.batch_size)
    window: deque[Any] = deque()

    def submit_next() -> bool:
        batch = next(batches, None)
        if batch is None:
            return False
        window.append(client.submit(_call_batch, func, batch, pure=False, retries=workers.retries))
        return True

    while len(window) < _IN_FLIGHT_PER_THREAD * threads and submit_next():
        pass
    while window:
        results = window.popleft().result()
        submit_next()
        yield from results


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def dask_client(address: str) -> Any:
    """A client of the scheduler at ``address``, made once per process and reused by every stage.

    Raises
    ------
    ConfigError
        When no scheduler answers there.
    """
    if address not in _clients:
        from dask.distributed import Client  # optional: only needed with a cluster
        try:
            _clients[address] = Client(address, set_as_default=False, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"no Dask scheduler answers at parallel.scheduler = {address!r} ({exc}): start one "
                              "(`dask scheduler`, then `dask worker ADDRESS` on each machine) or leave the key "
                              "unset to run on this machine") from exc
    return _clients[address]


@atexit.register
def close_clients() -> None:
    """Disconnect from every Dask scheduler this process used (before a cluster shuts down)."""
    for client in _clients.values():
        client.close()
    _clients.clear()
