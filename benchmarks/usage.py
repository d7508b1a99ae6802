"""Resource use of the benchmarks' processes: peak summed RSS and CPU seconds, sampled in a thread."""

from __future__ import annotations

import os
import threading

import psutil


class Usage:
    """Peak resident memory (sampled every 200 ms, so the sampler costs little) and CPU time
    of some processes and all their descendants (default: this process).

    CPU seconds (user + system) are less sensitive than wall time to other work on a
    shared machine: they say what the stage costs, wall time what it took.
    """

    def __init__(self, pids: list[int] | None = None) -> None:
        self.pids = pids
        self.peak = 0
        self.cpu = 0.0
        self._cpu: dict[int, float] = {}
        self._start: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        procs = []
        for pid in self.pids or [os.getpid()]:
            try:
                root = psutil.Process(pid)
                procs += [root, *root.children(recursive=True)]
            except psutil.Error:
                pass
        total = 0
        for proc in procs:
            try:
                with proc.oneshot():
                    total += proc.memory_info().rss
                    t = proc.cpu_times()
                    self._cpu[proc.pid] = t.user + t.system
            except psutil.Error:
                pass
        self.peak = max(self.peak, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.2)

    def __enter__(self) -> "Usage":
        self._sample()
        self._start = dict(self._cpu)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.cpu = sum(t - self._start.get(pid, 0.0) for pid, t in self._cpu.items())
