"""Label sources, dataset adapters (stage 00) and the synthetic demo dataset.

* Label sources, used by stage 01 to give each file a label for scoring only:
  ``folder`` (the first sub-folder under ``datasets/<name>/``), ``regex`` (one group of
  a pattern searched in the file name), ``csv`` (``path,label`` rows, paths relative to
  ``datasets/<name>/``) and ``none``. A file the source cannot label gets ``''``.
* :func:`prepare` brings a known corpus (FSDD, UrbanSound8K, ESC-50, or any CSV of
  ``path,label``) into ``datasets/<name>/<label>/`` as symbolic links (or copies),
  never touching the source.
* :func:`generate_demo` writes a small labelled set of synthetic sounds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import signal

from .audio import write_wav
from .config import DatasetConfig
from .errors import ConfigError, DatasetError
from .storage import atomic_path, read_json, write_csv, write_json

log = logging.getLogger(__name__)

#: Output folder name of files without a label.
UNLABELLED = "unlabelled"

_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


def label_folder(label: str) -> str:
    """The folder name of ``label`` in the outputs: the label itself, or ``unlabelled`` when empty."""
    return label or UNLABELLED


def safe_name(text: str, max_bytes: int = 160) -> str:
    """A file-system-safe file or folder name for ``text``.

    Characters not allowed on common file systems (``/ \\ : * ? " < > |``, control
    characters) become ``_``; a leading ``.`` becomes ``_`` (it would hide the file);
    the text is NFC-normalised (macOS stores names decomposed). Spaces and non-ASCII
    letters are kept. A name longer than ``max_bytes`` in UTF-8 is shortened and gets
    an 8-hex hash of the full text, so distinct long names stay distinct.
    """
    name = _UNSAFE.sub("_", unicodedata.normalize("NFC", text)).strip()
    if name.startswith("."):
        name = "_" + name[1:]
    if not name:
        return "_"
    if len(name.encode("utf-8")) > max_bytes:
        digest = hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        short = name.encode("utf-8")[: max_bytes - 10].decode("utf-8", "ignore").rstrip()
        name = f"{short}__{digest}"
    return name


# --------------------------------------------------------------------------- label sources

def folder_label(rel: str) -> str:
    """Label of a file from its path relative to the dataset folder: the first folder, or ``''`` at the root."""
    parts = PurePosixPath(rel).parts
    return parts[0] if len(parts) > 1 else ""


def compile_label_regex(pattern: str) -> re.Pattern[str]:
    """Compile ``dataset.label_regex``; it must hold at least one group (the first is the label)."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"config key 'dataset.label_regex' = {pattern!r} is not a valid regex: {exc}") from exc
    if regex.groups < 1:
        raise ConfigError(f"config key 'dataset.label_regex' = {pattern!r} needs a group, e.g. '^(\\d+)_': "
                          "the text it captures in the file name is the label")
    return regex


def regex_label(name: str, regex: re.Pattern[str]) -> str:
    """The first group of ``regex`` searched in the file name ``name``; ``''`` without a match."""
    match = regex.search(name)
    return (match.group(1) or "") if match else ""


def read_label_csv(csv_path: Path, raw: Path) -> dict[str, str]:
    """Read a label CSV: ``{path relative to raw (posix): label}``.

    Parameters
    ----------
    csv_path : CSV with columns ``path`` and ``label``; a relative ``csv_path`` is taken
        relative to ``raw``. ``path`` values are relative to ``raw`` (``./`` and ``\\`` allowed).
    raw : the dataset folder ``datasets/<name>/``.
    """
    csv_path = csv_path if csv_path.is_absolute() else raw / csv_path
    if not csv_path.is_file():
        raise DatasetError(f"label CSV {csv_path} not found: set 'dataset.label_csv' to a CSV of path,label "
                           f"relative to {raw}")
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise DatasetError(f"label CSV {csv_path} lacks column(s) {', '.join(missing)}; "
                           f"it has: {', '.join(map(str, table.columns))}")
    return {_norm_rel(p): lab.strip() for p, lab in zip(table["path"], table["label"])}


def _norm_rel(path: str) -> str:
    return PurePosixPath(path.strip().replace("\\", "/")).as_posix().removeprefix("./")


class LabelResolver:
    """Labels of files, per ``cfg.labels``, chunk by chunk (a label CSV is read once).

    Call it with paths relative to ``raw`` (posix) as often as needed, then :meth:`report`
    once: the files no source could label (label ``''``) are logged as one warning per kind.
    Labels are made safe as folder names (:func:`safe_name`).
    """

    def __init__(self, cfg: DatasetConfig, raw: Path) -> None:
        self.cfg, self.raw = cfg, raw
        self.regex = compile_label_regex(cfg.label_regex or "") if cfg.labels == "regex" else None
        self.table = read_label_csv(Path(cfg.label_csv or ""), raw) if cfg.labels == "csv" else None
        self.n = self.misses = 0
        self.examples: list[str] = []
        self.listed: set[str] = set()

    def __call__(self, rels: Sequence[str]) -> list[str]:
        if self.cfg.labels == "none":
            labels = [""] * len(rels)
        elif self.cfg.labels == "folder":
            labels = [folder_label(r) for r in rels]
        elif self.regex is not None:
            labels = [regex_label(PurePosixPath(r).name, self.regex) for r in rels]
        else:
            assert self.table is not None
            labels = [self.table.get(r, "") for r in rels]
            self.listed.update(r for r in rels if r in self.table)
        self.n += len(rels)
        for r, lab in zip(rels, labels):
            if not lab:
                self.misses += 1
                if len(self.examples) < 3:
                    self.examples.append(r)
        return [safe_name(lab) if lab else "" for lab in labels]

    def report(self) -> None:
        """Log, once, how many files got no label and why."""
        cfg, examples = self.cfg, ", ".join(self.examples)
        if cfg.labels == "folder" and 0 < self.misses < self.n:
            log.warning("%d file(s) lie directly in %s, outside any label folder: label ''", self.misses, self.raw)
        elif cfg.labels == "regex" and self.misses:
            log.warning("label_regex %r matched no label in %d file name(s) (label ''), e.g. %s",
                        cfg.label_regex, self.misses, examples)
        elif cfg.labels == "csv" and self.table is not None:
            if self.misses:
                log.warning("%d file(s) are not listed in %s (label ''), e.g. %s", self.misses, cfg.label_csv,
                            examples)
            absent = len(self.table) - len(self.listed)
            if absent:
                log.warning("%d row(s) of %s name files that were not found", absent, cfg.label_csv)


def resolve_labels(rels: Sequence[str], cfg: DatasetConfig, raw: Path) -> list[str]:
    """Labels of files given by their paths relative to ``raw`` (posix), per ``cfg.labels``
    (:class:`LabelResolver` in one call)."""
    resolver = LabelResolver(cfg, raw)
    labels = resolver(rels)
    resolver.report()
    return labels


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


def _envelope(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Attack of 5–50 ms, then an exponential decay of random depth."""
    attack = rng.uniform(0.005, 0.05)
    return np.minimum(t / attack, 1.0) * np.exp(-t * rng.uniform(0.3, 2.5) / max(t[-1], 1e-3))


def _harmonic(rng: np.random.Generator, t: np.ndarray, f0: float, n_harm: int, power: float) -> np.ndarray:
    return sum(rng.uniform(0.7, 1.0) / k ** power * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
               for k in range(1, n_harm + 1)) * _envelope(rng, t)


def _tone_low(rng, t, sr):
    return _harmonic(rng, t, rng.uniform(100.0, 200.0), n_harm=6, power=1.0)


def _tone_high(rng, t, sr):
    return _harmonic(rng, t, rng.uniform(1000.0, 2000.0), n_harm=3, power=2.0)


def _sweep(rng, t, f_start, f_end):
    y = signal.chirp(t, f0=f_start, t1=t[-1], f1=f_end, method="logarithmic")
    return y * np.minimum(t / rng.uniform(0.005, 0.03), 1.0)


def _chirp_up(rng, t, sr):
    return _sweep(rng, t, rng.uniform(200.0, 400.0), rng.uniform(3000.0, 5000.0))


def _chirp_down(rng, t, sr):
    return _sweep(rng, t, rng.uniform(3000.0, 5000.0), rng.uniform(200.0, 400.0))


def _noise_pink(rng, t, sr):
    """Pink (1/f power) noise in 1–3 bursts of 0.1–0.35 s."""
    spectrum = np.fft.rfft(rng.standard_normal(len(t)))
    freqs = np.fft.rfftfreq(len(t), d=1.0 / sr)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n=len(t))
    gate = np.zeros_like(t)
    for _ in range(rng.integers(1, 4)):
        start, length = rng.uniform(0, 0.7 * t[-1]), rng.uniform(0.1, 0.35)
        ramp = np.clip(np.minimum(t - start, start + length - t) / 0.01, 0.0, 1.0)
        gate = np.maximum(gate, ramp)
    return noise * gate


def _clicks(rng, t, sr):
    """A train of 6–15 clicks per second, each a 2 ms decaying 2.5–4 kHz ring."""
    rate = rng.uniform(6.0, 15.0)
    impulses = np.zeros_like(t)
    times = np.arange(rng.uniform(0, 1 / rate), t[-1], 1 / rate)
    times += rng.normal(0, 0.05 / rate, size=len(times))
    idx = np.clip((times * sr).astype(int), 0, len(t) - 1)
    impulses[idx] = rng.uniform(0.6, 1.0, size=len(idx))
    tk = np.arange(int(0.01 * sr)) / sr
    kernel = np.exp(-tk / 0.002) * np.sin(2 * np.pi * rng.uniform(2500.0, 4000.0) * tk)
    return np.convolve(impulses, kernel)[: len(t)]


def _am_fm(rng, t, sr):
    """A 400–700 Hz carrier with 4–7 Hz vibrato (±20–40 Hz) and 2–5 Hz tremolo."""
    fc, fm, dev = rng.uniform(400.0, 700.0), rng.uniform(4.0, 7.0), rng.uniform(20.0, 40.0)
    phase = 2 * np.pi * fc * t + dev / fm * np.sin(2 * np.pi * fm * t)
    depth = rng.uniform(0.5, 0.9)
    tremolo = 1 - depth / 2 + depth / 2 * np.cos(2 * np.pi * rng.uniform(2.0, 5.0) * t)
    return np.sin(phase) * tremolo


#: Families of the demo set, in label order: (rng, t, sr) -> float64 signal of the shape of t.
DEMO_FAMILIES: dict[str, Callable[[np.random.Generator, np.ndarray, int], np.ndarray]] = {
    "tone_low": _tone_low, "tone_high": _tone_high, "chirp_up": _chirp_up, "chirp_down": _chirp_down,
    "noise_pink": _noise_pink, "clicks": _clicks, "am_fm": _am_fm,
}


def demo_sound(label: str, index: int, seed: int = 0, sr: int = 22050, seconds: float = 1.0) -> np.ndarray:
    """One demo sound: family ``label``, jittered by ``(seed, family, index)``.

    The duration is ``seconds`` ±20 %, the peak −12…−1 dBFS, plus white noise
    40–50 dB below the peak and 5 ms fades.

    Returns
    -------
    ndarray of shape (frames,), float32.
    """
    family = list(DEMO_FAMILIES).index(label)
    rng = np.random.default_rng([seed, family, index])
    n = max(int(round(seconds * rng.uniform(0.8, 1.2) * sr)), 16)
    t = np.arange(n) / sr
    y = DEMO_FAMILIES[label](rng, t, sr)
    y = y / (np.max(np.abs(y)) or 1.0)
    y = y + 10 ** (rng.uniform(-50, -40) / 20) * rng.standard_normal(n)
    fade = np.clip(np.minimum(t, t[-1] - t) / 0.005, 0.0, 1.0)
    y = y * fade
    return (y * 10 ** (rng.uniform(-12, -1) / 20) / np.max(np.abs(y))).astype(np.float32)


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
        raise DatasetError(f"dataset folder {dest} does not exist: put your audio files there (one sub-folder per "
                           "label, if you have labels), or set CORPUS to bring a corpus in")
    return sum(1 for rel in _foreign_files(dest, set()))


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
                write_wav(path, demo_sound(label, i, seed=seed, sr=sr, seconds=seconds), sr, subtype="PCM_16")
                written += 1
            files[rel] = path.stat().st_size
    for rel in set(old_files) - set(files):
        (folder / rel).unlink(missing_ok=True)
    write_json(folder / DEMO_MANIFEST, {"params": params, "files": files})
    log.info("demo: %d file(s) in %s (%d written, %d kept)", len(files), folder, written, len(files) - written)
    return len(files)
