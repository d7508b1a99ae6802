"""Stage 00: a dataset folder made ready, never written into when it holds somebody's files.

* :func:`prepare` brings a known corpus (FSDD, UrbanSound8K, ESC-50, or any CSV of
  ``path,label``) into ``datasets/<name>/<label>/`` as symbolic links (or copies),
  never touching the source.
* :func:`generate_demo` writes a small labelled set of synthetic sounds
  (:mod:`audioclust.dsp.synth`).
* :func:`bring_in` is notebook 00's one call: the demo, a corpus, or the files already there.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from audioclust.core.errors import DatasetError
from audioclust.core.paths import root_hint, safe_name
from audioclust.core.storage import atomic_path, read_json, write_csv, write_json
from audioclust.dsp.decode import write_wav
from audioclust.dsp.synth import DEMO_FAMILIES, demo_sound

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- adapters (stage 00)

CORPORA = ("fsdd", "urbansound8k", "esc50", "csv")

_FSDD_NAME = re.compile(r"^(\d+)_([^_]+)_(\d+)\.wav$", re.IGNORECASE)


@dataclass(frozen=True)
class _Item:
    """One file to bring into the dataset folder."""

    src: Path
    label: str
    name: str
    fold: str = ""


def prepare(corpus: str, source: str | Path, dest: str | Path, label: str | None = None,
            mode: str = "symlink") -> int:
    """Bring a corpus into ``dest/<label>/<file>`` as links or copies; the source is never modified.

    Parameters
    ----------
    corpus : ``fsdd`` (``source``: its ``recordings/`` folder or the folder holding it; label
        ``digit`` (default) or ``speaker`` from ``{digit}_{speaker}_{index}.wav``),
        ``urbansound8k`` (``source`` holds ``metadata/UrbanSound8K.csv`` and ``audio/fold<k>/``;
        label ``class`` (default) or ``classID``), ``esc50`` (``source`` holds ``meta/esc50.csv``
        and ``audio/``; label ``category`` (default) or ``target``), ``csv`` (``source`` is a CSV
        with columns ``path`` (relative to the CSV's folder, or absolute) and ``label``, or the
        column named by ``label``; an optional ``fold`` column is kept).
    source : the corpus folder, or the CSV file for ``csv``.
    dest : the dataset folder, ``datasets/<name>/``.
    label : which label to use (see ``corpus``).
    mode : ``symlink`` (absolute links, no extra disk) or ``copy``.

    Returns
    -------
    Number of files now in ``dest`` from this corpus. Corpora with folds also get
    ``dest/folds.csv`` (``path,label,fold``, paths relative to ``dest``), usable as
    ``dataset.label_csv``.

    Raises
    ------
    DatasetError
        Unknown corpus/label/mode, missing metadata CSV, columns or audio files (named), or a
        ``dest`` that holds files this selection of the corpus would not make (a user's own
        folder is never written into). Nothing is written then.
    """
    if corpus not in CORPORA:
        raise DatasetError(f"unknown corpus {corpus!r}; choose one of {', '.join(CORPORA)}")
    if mode not in ("symlink", "copy"):
        raise DatasetError(f"mode must be 'symlink' or 'copy', got {mode!r}")
    source, dest = Path(source).expanduser().absolute(), Path(dest)
    if not source.exists():
        raise DatasetError(f"{corpus} source {source} does not exist")
    items = _dedupe(_PLANNERS[corpus](source, label))
    if not items:
        raise DatasetError(f"no audio files found for {corpus} in {source}")
    missing = [str(it.src) for it in items if not it.src.is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} audio file(s) listed for {corpus} are missing, e.g. "
                           + ", ".join(missing[:5]))
    targets = [dest / it.label / it.name if it.label else dest / it.name for it in items]
    foreign = _foreign_files(dest, {t.relative_to(dest).as_posix() for t in targets} | {"folds.csv"})
    if foreign:
        raise DatasetError(f"{dest} already holds {len(foreign)} file(s) that are not this {corpus} selection's "
                           f"(e.g. {', '.join(foreign[:3])}); preparation writes only into a new folder or one "
                           "it prepared the same way: choose another --dataset name")
    todo = [(it, t) for it, t in zip(items, targets) if not _in_place(it.src, t, mode)]
    for _, target in todo:
        if target.exists() and not target.is_symlink():
            raise DatasetError(f"{target} already exists and is not a link to or copy of this corpus' file; "
                               "remove it or prepare into another --dataset name")
    for item, target in todo:
        with atomic_path(target) as tmp:
            tmp.unlink()
            if mode == "symlink":
                tmp.symlink_to(item.src)
            else:
                shutil.copy2(item.src, tmp)
    if any(it.fold for it in items):
        write_csv(dest / "folds.csv", pd.DataFrame({
            "path": [t.relative_to(dest).as_posix() for t in targets],
            "label": [it.label for it in items], "fold": [it.fold for it in items]}))
    log.info("%s: %d file(s) in %s (%d new, %s), %d label(s)", corpus, len(items), dest, len(todo), mode,
             len({it.label for it in items}))
    return len(items)


def _foreign_files(dest: Path, own: set[str]) -> list[str]:
    """Files under ``dest`` (relative, sorted; hidden ones aside) that are not in ``own``."""
    if not dest.is_dir():
        return []
    return sorted(rel for rel in (p.relative_to(dest).as_posix() for p in dest.rglob("*")
                                  if not p.is_dir() and not any(part.startswith(".") for part in
                                                                p.relative_to(dest).parts))
                  if rel not in own)


def _in_place(src: Path, target: Path, mode: str) -> bool:
    """Whether ``target`` already is the link to (or a copy of) ``src`` that ``mode`` would make."""
    if mode == "symlink":
        return target.is_symlink() and Path(os.readlink(target)) == src
    if target.is_symlink() or not target.is_file():
        return False
    a, b = src.stat(), target.stat()
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns  # copy2 keeps the mtime


def _dedupe(items: list[_Item]) -> list[_Item]:
    """Drop repeated sources and rename distinct files that would land on the same name."""
    seen: set[Path] = set()
    used: set[tuple[str, str]] = set()
    out = []
    for it in items:
        if it.src in seen:
            continue
        seen.add(it.src)
        name, n = it.name, 1
        while (it.label, name.casefold()) in used:
            n += 1
            name = f"{Path(it.name).stem}__{n}{Path(it.name).suffix}"
        used.add((it.label, name.casefold()))
        out.append(_Item(it.src, it.label, name, it.fold))
    return out


def _choose(label: str | None, allowed: tuple[str, ...], corpus: str) -> str:
    label = label or allowed[0]
    if label not in allowed:
        raise DatasetError(f"{corpus} label must be one of {', '.join(allowed)}, got {label!r}")
    return label


def _read_meta(path: Path, columns: Sequence[str], corpus: str) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetError(f"{corpus} metadata {path} not found: point --source at the corpus folder")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DatasetError(f"{path} lacks column(s) {', '.join(missing)}; it has: {', '.join(map(str, table.columns))}")
    return table


def _plan_fsdd(source: Path, label: str | None) -> list[_Item]:
    label = _choose(label, ("digit", "speaker"), "fsdd")
    folder = source / "recordings" if (source / "recordings").is_dir() else source
    items, odd = [], []
    for path in sorted(folder.glob("*.wav")) + sorted(folder.glob("*.WAV")):
        match = _FSDD_NAME.match(path.name)
        if not match:
            odd.append(path.name)
            continue
        items.append(_Item(path, safe_name(match.group(1 if label == "digit" else 2)), path.name))
    if odd:
        log.warning("fsdd: skipped %d file(s) not named {digit}_{speaker}_{index}.wav, e.g. %s",
                    len(odd), ", ".join(odd[:3]))
    return items


def _plan_urbansound8k(source: Path, label: str | None) -> list[_Item]:
    label = _choose(label, ("class", "classID"), "urbansound8k")
    table = _read_meta(source / "metadata" / "UrbanSound8K.csv", ("slice_file_name", "fold", "classID", "class"),
                       "urbansound8k")
    return [_Item(source / "audio" / f"fold{fold}" / name, safe_name(lab), name, fold)
            for name, fold, lab in zip(table["slice_file_name"], table["fold"], table[label])]


def _plan_esc50(source: Path, label: str | None) -> list[_Item]:
    label = _choose(label, ("category", "target"), "esc50")
    table = _read_meta(source / "meta" / "esc50.csv", ("filename", "fold", "target", "category"), "esc50")
    return [_Item(source / "audio" / name, safe_name(lab), name, fold)
            for name, fold, lab in zip(table["filename"], table["fold"], table[label])]


def _plan_csv(source: Path, label: str | None) -> list[_Item]:
    if not source.is_file():
        raise DatasetError(f"csv source {source} must be a CSV file with columns path,label")
    column = label or "label"
    table = _read_meta(source, ("path", column), "csv")
    folds = table["fold"] if "fold" in table.columns else [""] * len(table)
    items = []
    for rel, lab, fold in zip(table["path"], table[column], folds):
        path = Path(rel.strip())
        path = path if path.is_absolute() else source.parent / path
        items.append(_Item(path, safe_name(lab.strip()) if lab.strip() else "", safe_name(path.name), fold))
    return items


_PLANNERS: dict[str, Callable[[Path, str | None], list[_Item]]] = {
    "fsdd": _plan_fsdd, "urbansound8k": _plan_urbansound8k, "esc50": _plan_esc50, "csv": _plan_csv}


# --------------------------------------------------------------------------- demo generator

#: Bumped when the demo sounds change, so an existing demo folder is regenerated.
DEMO_VERSION = 1

DEMO_MANIFEST = ".demo_manifest.json"


def bring_in(dest: str | Path, corpus: str | None = "auto", source: str | Path | None = None,
             label: str | None = None, mode: str = "symlink", seed: int = 0) -> int:
    """Make ``dest`` (``datasets/<name>/``) ready for stage 01, as notebook 00 asks.

    Parameters
    ----------
    corpus : ``demo`` (:func:`generate_demo`), a corpus name of :func:`prepare`, None (the
        files are already in ``dest``), or ``auto``: ``demo`` for a folder named ``demo``, else None.
    source, label, mode : as :func:`prepare`.
    seed : the demo's seed.

    Returns
    -------
    The number of audio files in ``dest`` (hidden files aside).

    Raises
    ------
    DatasetError
        ``dest`` is missing while nothing is to be brought in, or it holds somebody's files
        that preparation would mix with others (it is never written into then).
    """
    dest = Path(dest)
    if corpus == "auto":
        corpus = "demo" if dest.name == "demo" else None
    if corpus == "demo":
        return generate_demo(dest, seed=seed)
    if corpus:
        if source is None:
            raise DatasetError(f"corpus {corpus!r} needs SOURCE: the corpus folder (for csv: the CSV file)")
        return prepare(corpus, source, dest, label=label, mode=mode)
    if not dest.is_dir():
        dest = dest.resolve()
        raise DatasetError(f"dataset folder {dest} does not exist: put your audio files there (one sub-folder per "
                           f"label, if you have labels), or set CORPUS to bring a corpus in"
                           f"{root_hint(dest.parent.parent)}")  # dest is <project>/datasets/<name>
    return len(_foreign_files(dest, set()))


def generate_demo(folder: str | Path, seed: int = 0, n_per_class: int = 20, sr: int = 22050,
                  seconds: float = 1.0) -> int:
    """Write the synthetic demo dataset: ``folder/<family>/<family>_<i>.wav`` (PCM 16-bit).

    Seven families of distinct sounds (:data:`DEMO_FAMILIES`: low and high harmonic
    tones, up and down chirps, pink-noise bursts, click trains, AM/FM tones), each file
    jittered in pitch, duration, envelope, level and background noise. The same
    arguments give byte-identical files. A manifest (``.demo_manifest.json``, hidden
    from stage 01) records the arguments; a re-run rewrites only missing or changed
    files, and removes files of an earlier demo that the new arguments no longer make.

    Returns
    -------
    The number of files in the demo set (``7 * n_per_class``).

    Raises
    ------
    DatasetError
        ``folder`` holds files and no demo manifest: it is somebody's data, left untouched.
    """
    folder = Path(folder)
    if not (folder / DEMO_MANIFEST).is_file() and _foreign_files(folder, set()):
        raise DatasetError(f"{folder} holds files the demo did not write; the demo is written only into a new "
                           "folder or an earlier demo's (use --dataset demo, or another new name)")
    params = {"version": DEMO_VERSION, "seed": seed, "n_per_class": n_per_class, "sr": sr, "seconds": seconds}
    manifest = read_json(folder / DEMO_MANIFEST) or {}
    old_files = manifest.get("files", {}) if isinstance(manifest.get("files"), dict) else {}
    same = manifest.get("params") == params
    files: dict[str, int] = {}
    written = 0
    for label in DEMO_FAMILIES:
        for i in range(n_per_class):
            rel = f"{label}/{label}_{i:03d}.wav"
            path = folder / rel
            if not (same and path.is_file() and path.stat().st_size == old_files.get(rel)):
                write_wav(path, demo_sound(label, i, seed=seed, sr=sr, seconds=seconds), sr=sr, subtype="PCM_16")
                written += 1
            files[rel] = path.stat().st_size
    for rel in set(old_files) - set(files):
        (folder / rel).unlink(missing_ok=True)
    write_json(folder / DEMO_MANIFEST, {"params": params, "files": files})
    log.info("demo: %d file(s) in %s (%d written, %d kept)", len(files), folder, written, len(files) - written)
    return len(files)
