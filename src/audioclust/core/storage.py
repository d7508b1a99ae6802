"""Atomic writes: every file is written to a temporary sibling and renamed into place.

A killed run never leaves a half-written file under its final name. Temporary names carry
the writing process's id, so the next run removes what a killed run left
(:func:`remove_stale_temps`) and never what a run still in progress is writing. What a stage
has finished is recorded by :class:`audioclust.core.cache.Markers`, written last.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


# mkstemp creates files readable by the owner only; outputs get the usual permissions
_UMASK = os.umask(0)

os.umask(_UMASK)

_FILE_MODE = 0o666 & ~_UMASK


def temp_prefix(path: Path) -> str:
    """The prefix of ``path``'s temporary siblings: hidden, with the writer's process id."""
    return f".{path.name}.{os.getpid()}."


def pid_suffix() -> str:
    """The suffix of temporary files and folders written in place (packed store, checkpoint staging): ``.tmp<pid>``."""
    return f".tmp{os.getpid()}"


#: Temporary names: ``.<name>.<pid>.<random>.tmp`` (atomic writes) or ``<name>.tmp<pid>`` (the packed store).
_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[a-z0-9_]+\.tmp$|^.+\.tmp(\d+)$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temps(*folders: Path) -> int:
    """Remove the temporary files that dead processes left under ``folders``; return how many.

    A file whose writer is still running (another stage on the same dataset, a worker of
    this run) is left alone: its name carries the writer's process id.
    """
    removed = 0
    for folder in folders:
        if not folder.is_dir():
            continue
        for dirpath, dirnames, names in os.walk(folder):
            for name in [*names, *dirnames]:
                match = _TEMP_NAME.match(name)
                if match and not _alive(int(match.group(1) or match.group(2))):
                    path = Path(dirpath, name)
                    if name in dirnames:  # a staging folder (checkpoints while training)
                        dirnames.remove(name)
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
                    removed += 1
    if removed:
        log.info("removed %d temporary file(s) that an interrupted run left", removed)
    return removed


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling through its open descriptor, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            os.fchmod(handle.fileno(), _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=_json_default))


def write_npy(path: str | Path, array: np.ndarray) -> None:
    """``np.save`` straight into the temporary file (no in-memory copy of a large array)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    write_text(path, frame.to_csv(index=False, lineterminator="\n"))


class CsvStream:
    """Write a CSV in pieces (bounded memory) to a temporary sibling, renamed onto ``path`` by :meth:`commit`.

    Use as a context manager: leaving it by an exception drops the temporary file and keeps
    whatever ``path`` held before.
    """

    def __init__(self, path: str | Path, columns: list[str]) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=temp_prefix(self.path), suffix=".tmp", dir=self.path.parent)
        self._handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self._handle.write(",".join(self.columns) + "\n")
        self.n_rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        """Append the rows of ``frame`` (its columns in :attr:`columns` order)."""
        frame.reindex(columns=self.columns).to_csv(self._handle, header=False, index=False, lineterminator="\n")
        self.n_rows += len(frame)

    def commit(self) -> None:
        os.fchmod(self._handle.fileno(), _FILE_MODE)
        self._handle.close()
        os.replace(self._tmp, self.path)

    def __enter__(self) -> "CsvStream":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self._handle.close()
            Path(self._tmp).unlink(missing_ok=True)


def count_rows(path: str | Path) -> int | None:
    """Data rows of a CSV, for progress bars: its lines minus the header (None when unreadable)."""
    try:
        with open(path, "rb") as fh:
            return max(0, sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b"")) - 1)
    except OSError:
        return None


def read_json(path: str | Path) -> Any | None:
    """The JSON in ``path``, or None when it is missing or unreadable (treated as not done)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return obj.as_posix()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
