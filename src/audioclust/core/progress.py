"""Progress of the stages' long loops, in the form the console can show.

- stderr is a terminal: a tqdm bar.
- an interactive Jupyter kernel with ipywidgets installed: tqdm's notebook widget.
- anything else (output piped to a file, a CI log, a notebook executed by papermill, where a
  widget would be saved as a static ``0%``): plain log lines through :mod:`logging`, at most one
  every :data:`INTERVAL` seconds and one per tenth of the work (but one at least every
  :data:`MAX_SILENCE` seconds while the work advances), then, for a loop that took longer than
  :data:`INTERVAL`, the final count::

      cluster: 12/23 views (52 %), 0.8 views/s, ~14 s left
      cluster: 23/23 views in 29 s (0.8 views/s)

The environment variable ``AUDIOCLUST_PROGRESS`` (``bar``, ``notebook``, ``plain`` or ``off``)
overrides the choice; :func:`audioclust.notebooks.run_notebooks` sets ``plain`` for the kernels
it starts, which see no terminal and cannot tell that nobody watches their widgets.

A loop inside a stage-level loop (``inner=True``: k selection inside each view) shows a
transient bar on a terminal and nothing otherwise: the stage-level loop already reports.
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar

from tqdm import tqdm

log = logging.getLogger(__name__)

T = TypeVar("T")

#: the environment variable that overrides how progress is shown
ENV = "AUDIOCLUST_PROGRESS"
KINDS = ("bar", "notebook", "plain", "off")
#: seconds between two plain lines at least; also the shortest loop that gets a final line
INTERVAL = 10.0
#: share of the work between two plain lines at least ...
STEP = 0.1
#: ... unless this many seconds passed without a line
MAX_SILENCE = 60.0


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (a notebook, JupyterLab, papermill)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


def console_kind() -> str:
    """How progress is shown here: ``bar``, ``notebook``, ``plain`` or ``off`` (see the module docstring)."""
    chosen = os.environ.get(ENV, "").strip().lower()
    if chosen in KINDS:
        return chosen
    if in_kernel():
        return "notebook" if importlib.util.find_spec("ipywidgets") is not None else "plain"
    try:
        return "bar" if sys.stderr.isatty() else "plain"
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return "plain"


class Progress:
    """Progress of one loop over ``total`` items (None: not known in advance).

    Use it as a context manager and call :meth:`update` as items finish; :func:`progress`
    wraps an iterable in one.

    Parameters
    ----------
    total : number of items; 0 shows nothing.
    desc : what the loop does, the start of every line (``cluster``); None shows nothing.
    unit : one item (``file``, ``view``); lines add an ``s`` for several.
    inner : a loop inside a stage-level loop (see the module docstring).
    final : write the final count line (False where the caller logs its own closing line).
    interval : :data:`INTERVAL`, for this loop.
    """

    def __init__(self, total: int | None, desc: str | None, unit: str = "file", *, inner: bool = False,
                 final: bool = True, interval: float = INTERVAL) -> None:
        kind = "off" if desc is None or total == 0 else console_kind()
        if inner and (kind != "bar" or multiprocessing.parent_process() is not None):
            kind = "off"  # bars of several worker processes would overwrite one another
        self.kind, self.total, self.desc, self.unit = kind, total, desc, unit
        self.final, self.interval = final, interval
        self.done = 0
        self._start = self._last = time.monotonic()
        self._last_done = 0
        self._lines = 0
        self._bar: Any = None
        if kind == "bar":
            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=not inner, file=sys.stderr)
        elif kind == "notebook":
            from tqdm.notebook import tqdm as widget
            self._bar = widget(total=total, desc=desc, unit=unit, leave=not inner)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(complete=exc_type is None)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.kind == "plain" and self._due(time.monotonic()):
            self._write(self._line())

    def close(self, complete: bool = True) -> None:
        """End the loop; a completed plain loop that took a while writes its final count."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.kind == "plain" and complete and self.final and self.done \
                and (self._lines or time.monotonic() - self._start >= self.interval):
            self._write(self._final_line())
        self.kind = "off"  # closed: later updates and closes show nothing

    def _due(self, now: float) -> bool:
        since = now - self._last
        if since < self.interval or (self.total is not None and self.done >= self.total):
            return False  # the final line reports the end
        if self.total is None or since >= MAX_SILENCE:
            return True
        return self.done - self._last_done >= STEP * self.total

    def _write(self, line: str) -> None:
        log.info("%s", line)
        self._last, self._last_done = time.monotonic(), self.done
        self._lines += 1

    def _line(self) -> str:
        elapsed = time.monotonic() - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total is None:
            return f"{self.desc}: {self.done} {self._units(self.done)}, {_rate(rate, self.unit)}"
        left = f", ~{_duration((self.total - self.done) / rate)} left" if rate > 0 else ""
        return (f"{self.desc}: {self.done}/{self.total} {self._units(self.total)} "
                f"({100 * self.done / self.total:.0f} %), {_rate(rate, self.unit)}{left}")

    def _final_line(self) -> str:
        elapsed = time.monotonic() - self._start
        count = self.done if self.total is None else f"{self.done}/{self.total}"
        rate = _rate(self.done / elapsed, self.unit) if elapsed > 0 else ""
        return f"{self.desc}: {count} {self._units(self.done)} in {_duration(elapsed)}" + (f" ({rate})" if rate else "")

    def _units(self, n: int) -> str:
        return self.unit if n == 1 else f"{self.unit}s"


def progress(items: Iterable[T], desc: str | None, unit: str = "file", total: int | None = None,
             inner: bool = False) -> Iterator[T]:
    """Yield ``items``, showing the loop's :class:`Progress` (``total``: ``len(items)`` when it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit, inner=inner) as bar:
        for item in items:
            yield item
            bar.update()


def _rate(per_second: float, unit: str) -> str:
    """``0.8 views/s``, or ``12 s/view`` for slow work."""
    if per_second >= 1 or per_second == 0:
        return f"{per_second:.1f} {unit}s/s"
    return f"{_duration(1 / per_second)}/{unit}"


def _duration(seconds: float) -> str:
    """``14 s``, ``3 min 20 s``, ``2 h 05 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
