"""What lets a stage skip work it has done: the one content hash, the one file fingerprint, completion markers.

* :func:`stable_hash` keys every cache: stage markers (a config section's hash), the packed
  feature store and view cache, checkpoints, the report's projection.
* :func:`file_fingerprint` says whether an input file changed since an output was made from it.
* :class:`Markers` record, per item, that it is done and with which parameters.
* :func:`read_memo` / :func:`write_memo` keep arrays computed from a whole dataset (a view's
  transformed matrix, the report's projection) in an ``.npz`` with the key they were made for.
* :func:`content_hash` keys a memo by what went in (arrays and tables by their bytes), and
  :class:`MemoFolder` holds many memos, one file per key: stage 04's rows, the 2-D projections.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import time

import numpy as np
import pandas as pd

from audioclust.core.storage import read_json, write_bytes, write_json

log = logging.getLogger(__name__)


def stable_hash(payload: Any, length: int = 12) -> str:
    """Short hex digest of ``payload`` (JSON with sorted keys; other objects by ``str``): the same on every run."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_fingerprint(path: str | Path) -> list[int] | None:
    """``[size, mtime_ns]`` of a file, None when it cannot be read: a re-made input invalidates what was made from it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


class Markers:
    """Completion markers of one stage: ``<folder>/<key>.json`` holding a result row.

    ``key`` is the item's relative path without extension (``label/stem``). The
    marker stores the parameter hash it was made with; :meth:`get` returns the
    row only when that hash matches, so a changed parameter recomputes.
    """

    def __init__(self, folder: Path, params_hash: str) -> None:
        self.folder = Path(folder)
        self.params_hash = params_hash

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        data = read_json(self._path(key))
        if not isinstance(data, dict) or data.get("params_hash") != self.params_hash:
            return None
        return data.get("row")

    def put(self, key: str, row: dict[str, Any]) -> None:
        write_json(self._path(key), {"params_hash": self.params_hash, "row": row})


def read_memo(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The arrays saved at ``path`` by :func:`write_memo` when they were made for ``key``; else None."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "key" not in data.files or str(data["key"]) != key:
                return None
            return {k: data[k] for k in data.files if k != "key"}
    except (OSError, ValueError):
        return None


def write_memo(path: Path, key: str, **arrays: np.ndarray) -> None:
    """Save ``arrays`` with ``key`` at ``path`` (``.npz``, written atomically)."""
    buffer = io.BytesIO()
    np.savez(buffer, key=np.array(key), **arrays)
    write_bytes(path, buffer.getvalue())


def content_hash(obj: Any, length: int = 16) -> str:
    """Hex digest of nested data by content: arrays, tables and series by their bytes (and shape and
    dtype), dicts by sorted key, lists and tuples in order, anything else as JSON (``str`` when not JSON)."""
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()[:length]


def _feed(digest: Any, obj: Any) -> None:
    if isinstance(obj, pd.DataFrame):
        _feed(digest, ["frame", [str(c) for c in obj.columns], [obj[c].to_numpy() for c in obj.columns]])
    elif isinstance(obj, pd.Series):
        _feed(digest, ["series", obj.to_numpy()])
    elif isinstance(obj, np.ndarray):
        array = np.ascontiguousarray(obj)
        digest.update(repr(("array", array.shape, array.dtype.str)).encode())
        digest.update(json.dumps(array.tolist(), default=str).encode() if array.dtype.hasobject else array.tobytes())
    elif isinstance(obj, dict):
        digest.update(b"{")
        for key in sorted(obj, key=str):
            _feed(digest, str(key))
            _feed(digest, obj[key])
        digest.update(b"}")
    elif isinstance(obj, (list, tuple)):
        digest.update(b"[")
        for item in obj:
            _feed(digest, item)
        digest.update(b"]")
    else:
        digest.update(json.dumps(obj.item() if isinstance(obj, np.generic) else obj, default=str).encode())


class MemoFolder:
    """Memos of one kind in one folder, ``<key>.npz`` each (:func:`write_memo`).

    Safe across processes: every read and write is of one whole file, written atomically.
    A memo that is read is touched, so :meth:`prune` removes only those no run has used
    for ``max_age_days``.

    Parameters
    ----------
    folder : where the memos live (made on the first write).
    read : False ignores every memo (a forced recomputation), which is still written anew.
    """

    def __init__(self, folder: Path, read: bool = True) -> None:
        self.folder = Path(folder)
        self.read = read

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays memoised under ``key``, or None (missing, unreadable, or ``read`` is off)."""
        if not self.read:
            return None
        memo = read_memo(self.path(key), key)
        if memo is not None:
            try:
                os.utime(self.path(key))
            except OSError:
                pass
        return memo

    def put(self, key: str, **arrays: np.ndarray) -> None:
        write_memo(self.path(key), key, **arrays)

    def prune(self, max_age_days: float = 30.0) -> int:
        """Remove memos unused for ``max_age_days``; return how many went."""
        if not self.folder.is_dir():
            return 0
        cutoff = time.time() - max_age_days * 86400
        removed = 0
        for path in self.folder.glob("*.npz"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        return removed


def json_array(obj: Any) -> np.ndarray:
    """``obj`` as JSON in a 0-d string array, to travel in a memo beside its arrays (:func:`from_json_array`)."""
    return np.array(json.dumps(obj, sort_keys=True, default=_plain))


def from_json_array(array: np.ndarray) -> Any:
    return json.loads(str(array))


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
