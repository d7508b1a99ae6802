"""Packed feature store: one memory-mappable float32 file per view, one row per file.

Opening 100,000 small NPY files takes minutes; one packed matrix maps in milliseconds.
Stage 03 fills the store as it extracts (each worker computes the view vectors of its file
from the arrays it already holds), stage 04 and the autoencoder read it, and stage 04 adds
any view whose settings it does not find (from the per-file arrays, once). The per-file
NPY/PNG files stay the source of truth: the store is derived from them and can be deleted.

Layout of ``features/<name>/store/``:

``index.csv``
    Every row of ``features.csv`` in order: ``key`` (``<label folder>/<stem>``), ``label``,
    ``stem``, ``status``, and ``row``: the file's row in the arrays (-1 when it has none).
``<view name>.f32``
    Raw little-endian float32, C order, shape ``(n_rows, dim)``: the vectors of the ``ok``
    files before any dataset-wide transform (NaN where a file's feature could not be read).
``store.json``
    ``{"version", "n_rows", "views": {name: {"key": settings hash, "dim": dim}}}``, written
    last: a store without it (a killed run) is ignored and rebuilt.

A view is valid when its recorded key equals the hash of the settings that make it
(:func:`audioclust.represent.views.settings_key`); anything else is recomputed, never trusted.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from audioclust.core.storage import pid_suffix, read_json, write_csv, write_json

log = logging.getLogger(__name__)


VERSION = 1

INDEX_COLUMNS = ["key", "label", "stem", "status", "row"]

#: write buffer per view file of :class:`StoreWriter`: rows of a few hundred bytes each reach the
#: disk in large writes, not one system call per row and view
WRITE_BUFFER_BYTES = 256 * 1024


class FeatureStore:
    """A store on disk, read-only.

    Attributes
    ----------
    folder : Path
    index : DataFrame with :data:`INDEX_COLUMNS`
    views : dict ``name -> {"key": str, "dim": int}``
    n_rows : int
        Rows of every array (the ``ok`` files).
    """

    def __init__(self, folder: Path, index: pd.DataFrame, views: dict[str, dict[str, Any]], n_rows: int) -> None:
        self.folder = Path(folder)
        self.index = index
        self.views = views
        self.n_rows = n_rows
        self._rows: dict[str, int] | None = None
        self._maps: dict[tuple[str, str], np.ndarray | None] = {}

    @classmethod
    def open(cls, folder: Path) -> FeatureStore | None:
        """The store in ``folder``, or None when there is none or it is incomplete."""
        meta = read_json(Path(folder) / "store.json")
        if not isinstance(meta, dict) or meta.get("version") != VERSION:
            return None
        try:
            index = pd.read_csv(Path(folder) / "index.csv", dtype=str, keep_default_na=False)
            index["row"] = index["row"].astype(int)
        except (OSError, ValueError, KeyError, pd.errors.ParserError):
            return None
        n_rows = int(meta.get("n_rows", -1))
        if int((index["row"] >= 0).sum()) != n_rows:
            return None
        return cls(Path(folder), index, dict(meta.get("views", {})), n_rows)

    def row_of(self) -> dict[str, int]:
        """``key -> row`` of the files that have vectors."""
        if self._rows is None:
            has = self.index[self.index["row"] >= 0]
            self._rows = dict(zip(has["key"], has["row"]))
        return self._rows

    def vectors(self, name: str, key: str) -> np.memmap | None:
        """The whole ``(n_rows, dim)`` array of view ``name`` mapped read-only, when made with settings ``key``."""
        if (name, key) not in self._maps:
            self._maps[name, key] = self._map(name, key)
        return self._maps[name, key]  # type: ignore[return-value]

    def _map(self, name: str, key: str) -> np.ndarray | None:
        info = self.views.get(name)
        path = self.folder / f"{name}.f32"
        if info is None or info.get("key") != key or not path.is_file():
            return None
        dim = int(info["dim"])
        if path.stat().st_size != self.n_rows * dim * 4:
            return None
        if self.n_rows == 0:
            return np.zeros((0, dim), np.float32)  # type: ignore[return-value]
        return np.memmap(path, dtype="<f4", mode="r", shape=(self.n_rows, dim))

    def matrix(self, name: str, key: str, keys: list[str]) -> np.ndarray | None:
        """View ``name`` for ``keys`` (``label folder/stem``), in that order: ndarray of shape (len(keys), dim),
        float32 (a copy); None when the view is missing, stale or lacks one of the files."""
        array = self.vectors(name, key)
        if array is None:
            return None
        rows = self.row_of()
        try:
            order = np.fromiter((rows[k] for k in keys), dtype=np.int64, count=len(keys))
        except KeyError:
            return None
        if order.size == self.n_rows and np.array_equal(order, np.arange(self.n_rows)):
            return np.array(array, dtype=np.float32)
        return np.asarray(array[order], dtype=np.float32)


class StoreWriter:
    """Write a store row by row (bounded memory), then swap it in.

    New arrays go to temporary files beside the old ones, so the old store stays readable
    (stage 03 copies unchanged rows from it) until :meth:`commit` replaces them; ``store.json``
    is removed first and written last.

    Parameters
    ----------
    folder : Path
    view_keys : dict ``name -> settings key`` of the views to write.
    """

    def __init__(self, folder: Path, view_keys: dict[str, str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.view_keys = dict(view_keys)
        self.dims: dict[str, int] = {}
        self.n_rows = 0
        tag = pid_suffix()
        self._tmp = {name: self.folder / f"{name}.f32{tag}" for name in self.view_keys}
        self._handles = {name: open(path, "wb", buffering=WRITE_BUFFER_BYTES) for name, path in self._tmp.items()}
        self._index_tmp = self.folder / f"index.csv{tag}"
        self._index_handle = open(self._index_tmp, "w", newline="", encoding="utf-8")
        self._index = csv.writer(self._index_handle, lineterminator="\n")
        self._index.writerow(INDEX_COLUMNS)
        self._pending: dict[str, int] = {}  # rows written before a view's dimension was known

    def add(self, key: str, label: str, stem: str, status: str,
            vectors: dict[str, np.ndarray | None] | None = None) -> None:
        """One row of ``features.csv``; ``vectors`` (name -> vector or None) only for a file with status ``ok``."""
        if status != "ok" or vectors is None:
            self._index.writerow([key, label, stem, status, -1])
            return
        for name, handle in self._handles.items():
            vector = vectors.get(name)
            if vector is None:
                if name in self.dims:
                    handle.write(np.full(self.dims[name], np.nan, "<f4").tobytes())
                else:
                    self._pending[name] = self._pending.get(name, 0) + 1
                continue
            vector = np.asarray(vector, dtype="<f4").ravel()
            if name not in self.dims:
                self.dims[name] = vector.size
                handle.write(np.full((self._pending.pop(name, 0), vector.size), np.nan, "<f4").tobytes())
            elif vector.size != self.dims[name]:
                raise ValueError(f"view {name}: a vector of {vector.size} values after vectors of {self.dims[name]}")
            handle.write(vector)  # its buffer, not a bytes copy
        self._index.writerow([key, label, stem, status, self.n_rows])
        self.n_rows += 1

    def commit(self) -> FeatureStore:
        """Close the files and put them in place; returns the new store."""
        self._close()
        (self.folder / "store.json").unlink(missing_ok=True)
        views = {}
        for name, tmp in self._tmp.items():
            if name not in self.dims:  # no file had this view: nothing to keep
                tmp.unlink(missing_ok=True)
                continue
            os.replace(tmp, self.folder / f"{name}.f32")
            views[name] = {"key": self.view_keys[name], "dim": self.dims[name]}
        os.replace(self._index_tmp, self.folder / "index.csv")
        for stale in self.folder.glob("*.f32"):
            if stale.stem not in views:
                stale.unlink()
        write_json(self.folder / "store.json", {"version": VERSION, "n_rows": self.n_rows, "views": views})
        return FeatureStore.open(self.folder)  # type: ignore[return-value]

    def abort(self) -> None:
        """Drop what was written; the old store is left as it was."""
        self._close()
        for tmp in (*self._tmp.values(), self._index_tmp):
            tmp.unlink(missing_ok=True)

    def _close(self) -> None:
        for handle in (*self._handles.values(), self._index_handle):
            if not handle.closed:
                handle.close()


def add_view(store: FeatureStore, name: str, key: str, matrix: np.ndarray) -> None:
    """Put (or replace) view ``name`` of an existing store: ``matrix`` has one row per store row, in order."""
    if matrix.shape[0] != store.n_rows:
        raise ValueError(f"view {name}: {matrix.shape[0]} rows for a store of {store.n_rows}")
    meta = read_json(store.folder / "store.json") or {}
    (store.folder / "store.json").unlink(missing_ok=True)
    tmp = store.folder / f"{name}.f32{pid_suffix()}"
    np.ascontiguousarray(matrix, dtype="<f4").tofile(tmp)
    os.replace(tmp, store.folder / f"{name}.f32")
    views = dict(meta.get("views", {}))
    views[name] = {"key": key, "dim": int(matrix.shape[1])}
    store.views = views
    store._maps.pop((name, key), None)
    write_json(store.folder / "store.json", {"version": VERSION, "n_rows": store.n_rows, "views": views})


def create(folder: Path, rows: Iterable[tuple[str, str, str, str]]) -> FeatureStore:
    """A store with an index and no view yet: ``rows`` are ``(key, label, stem, status)`` of ``features.csv``."""
    records, n = [], 0
    for key, label, stem, status in rows:
        records.append([key, label, stem, status, n if status == "ok" else -1])
        n += status == "ok"
    folder = Path(folder)
    (folder / "store.json").unlink(missing_ok=True)
    write_csv(folder / "index.csv", pd.DataFrame(records, columns=INDEX_COLUMNS))
    for stale in folder.glob("*.f32"):
        stale.unlink()
    write_json(folder / "store.json", {"version": VERSION, "n_rows": n, "views": {}})
    return FeatureStore.open(folder)  # type: ignore[return-value]
