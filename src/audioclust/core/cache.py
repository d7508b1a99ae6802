"""What lets a stage skip work it has done: the one content hash, the one file fingerprint, completion markers.

* :func:`stable_hash` keys every cache: stage markers (a config section's hash), the packed
  feature store and view cache, checkpoints, the report's projection.
* :func:`file_fingerprint` says whether an input file changed since an output was made from it.
* :class:`Markers` record, per item, that it is done and with which parameters.
* :func:`read_memo` / :func:`write_memo` keep arrays computed from a whole dataset (a view's
  transformed matrix, the report's projection) in an ``.npz`` with the key they were made for.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

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
