"""Labelled benchmark corpora generated on this machine, without downloads.

Four generators write a dataset folder ``DEST/<primary label>/<file>.wav`` (mono, 22 050 Hz,
16-bit PCM) that audioclust reads like any other (``dataset.labels: folder``):

* :mod:`audioclust.corpora.instruments` — single notes of eight General MIDI instruments from
  eight families (piano, marimba, church organ, nylon guitar, violin, trumpet, clarinet, flute)
  rendered by FluidSynth from the FluidR3 soundfont (Debian packages ``fluidsynth`` and
  ``fluid-soundfont-gm``). Every instrument plays the same pitches, all inside the range it
  really has, at several velocities; each note is held 0.9–1.4 s, then 0.5 s of release.
  Label sets: ``instrument`` (the folder), ``pitch_class`` (``C``, ``C#`` … ``B``),
  ``midi_note``, ``velocity``. Files: ``violin/violin_Cs4_v80.wav`` (``s`` for a sharp).
* :mod:`audioclust.corpora.music` — excerpts of instrumental music in eight styles (ballad,
  rock, jazz, strings, techno, bossa, reggae, waltz), rendered by FluidSynth from generated MIDI
  with the same soundfont. A style is an arrangement (melody, chord and bass instruments, drum
  pattern, metre, tempo range, mode, progressions); each piece draws its tempo, progression,
  melody and level, and every style plays every key equally often. Label sets: ``style`` (the
  folder), ``key`` (the tonic's pitch class), ``tempo`` (bpm). Files: ``jazz/jazz_Fs_07.wav``.
* :mod:`audioclust.corpora.speech` — the words *zero* … *nine* spoken by espeak-ng (Debian
  package ``espeak-ng``) in up to eight voices (accent + voice variant + base pitch and speed),
  each repeated with jittered speed, pitch and level. Label sets: ``word`` (the folder),
  ``voice``. Files: ``seven/seven_en-gb+f4_r1.wav``.
* :mod:`audioclust.corpora.textures` — eight classes of synthetic environmental textures made
  with numpy/scipy (rain, wind, stream, fire, engine, birdsong, siren, typing), 2–5 s each,
  every file drawn with its own level, duration, class parameters and background noise floor.
  Label set: ``class`` (the folder). Files: ``rain/rain_017.wav``.

Sizes: ``tiny`` (6–16 files, for tests), ``small`` (96–144 files), ``bench`` (384–576
files: every label of every label set equally often; the music's tempos are drawn). The same size and seed give the same
files (byte-identical for the textures; the same names, labels and durations for the
tool-rendered corpora).

Run
---
``python -m audioclust.corpora {instruments,music,speech,textures} DEST [--size tiny|small|bench]
[--seed N] [--n-jobs N]``, e.g. ``python -m audioclust.corpora speech datasets/speech --size
bench``; the command prints what it wrote. From Python: :func:`instruments.generate`,
:func:`music.generate`, :func:`speech.generate`, :func:`textures.generate`.

Label CSVs
----------
Audio folders hold audio only, so the label tables are written next to ``DEST``, not in it:

* ``<DEST>.labels.csv``: column ``path`` (relative to ``DEST``, with ``/``) and one column per
  label set (``instrument,pitch_class,midi_note,velocity`` / ``style,key,tempo`` / ``word,voice`` /
  ``class``);
* ``<DEST>.<label set>.csv``: columns ``path,label`` for one label set, the form that
  ``dataset.label_csv`` reads (:func:`audioclust.core.labels.read_label_csv`).

To score a clustering of ``datasets/speech`` against the voices instead of the words:

    audioclust run --dataset speech --set dataset.labels=csv \\
        --set dataset.label_csv=../speech.voice.csv

(a relative ``label_csv`` is taken relative to the dataset folder, ``datasets/speech/``).

Re-running
----------
``DEST`` must be new or a folder that the same generator wrote: a folder holding any other
file (or a label CSV beside it that the generator did not write) raises
:class:`~audioclust.core.errors.DatasetError` and nothing is written. A hidden manifest
(``DEST/.audioclust-corpus.json``, skipped by stage 01) records each file's parameters; a
re-run skips the files whose parameters and size are unchanged, renders the missing, damaged
or changed ones, and removes the files of an earlier run that the new arguments no longer make.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import soundfile as sf

from audioclust.core.cache import stable_hash
from audioclust.core.errors import DatasetError
from audioclust.core.parallel import Workers, parallel_imap
from audioclust.core.storage import read_json, remove_stale_temps, write_csv, write_json
from audioclust.dsp.decode import write_wav

log = logging.getLogger(__name__)

#: Sizes every generator knows, smallest first.
SIZES = ("tiny", "small", "bench")

#: Sample rate of every generated file, Hz.
SR = 22050

#: The hidden manifest inside a generated folder (stage 01 skips hidden files).
MANIFEST = ".audioclust-corpus.json"

#: A rendered clip must reach this RMS (dBFS) to count as sound.
MIN_RMS_DB = -60.0


@dataclass(frozen=True)
class Clip:
    """One file of a corpus: where it goes, its labels and everything its audio depends on.

    Parameters
    ----------
    rel : path relative to the corpus folder, ``<primary label>/<name>.wav``.
    labels : label set -> label, in column order (the first is the folder).
    params : JSON-able parameters of the renderer; equal parameters give the same audio.
    """

    rel: str
    labels: dict[str, str]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Summary:
    """What a generator wrote.

    Parameters
    ----------
    kind : ``instruments``, ``music``, ``speech`` or ``textures``.
    dest : the corpus folder.
    files : number of files in the corpus.
    written : files rendered by this run (the others were kept from an earlier run).
    seconds : total audio duration, s.
    elapsed : wall-clock time of the run, s.
    counts : label set -> label -> number of files.
    mean_seconds : label set -> label -> mean duration, s.
    csvs : the label CSVs written next to ``dest``: ``labels`` (every label set) and one per label set.
    """

    kind: str
    dest: Path
    files: int
    written: int
    seconds: float
    elapsed: float
    counts: dict[str, dict[str, int]]
    mean_seconds: dict[str, dict[str, float]]
    csvs: dict[str, Path]


def check_size(size: str) -> None:
    """Raise :class:`DatasetError` unless ``size`` is one of :data:`SIZES`."""
    if size not in SIZES:
        raise DatasetError(f"unknown corpus size {size!r}; choose one of {', '.join(SIZES)}")


def require_tool(name: str, *, package: str) -> str:
    """The path of the command-line tool ``name``; :class:`DatasetError` naming its Debian package when missing."""
    path = shutil.which(name)
    if path is None:
        raise DatasetError(f"{name} not found on PATH: install it with `apt-get install {package}`")
    return path


def run_tool(command: list[str], *, what: str, package: str, timeout: float) -> None:
    """Run a rendering tool; :class:`DatasetError` with its error output when it is missing or fails.

    Parameters
    ----------
    command : the tool and its arguments.
    what : the file being rendered, for the messages.
    package : the Debian package that provides the tool.
    timeout : seconds the tool may run.
    """
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise DatasetError(f"{command[0]} not found while rendering {what}: install it with "
                           f"`apt-get install {package}`") from exc
    except subprocess.TimeoutExpired as exc:
        raise DatasetError(f"{command[0]} ran longer than {timeout:g} s while rendering {what}") from exc
    if done.returncode != 0:
        raise DatasetError(f"{command[0]} failed (exit {done.returncode}) while rendering {what}: "
                           f"{(done.stderr or done.stdout).strip()[-500:]}")


def clip_rng(*parts: Any) -> np.random.Generator:
    """A random generator seeded by ``parts`` (the seed and a clip's identity), the same on every run."""
    return np.random.default_rng(int(stable_hash(list(parts), length=15), 16))


def csv_paths(dest: str | Path, *, columns: Sequence[str]) -> dict[str, Path]:
    """The label CSVs beside ``dest``, absolute: ``labels`` (every column) and one per label set in ``columns``."""
    dest = Path(dest).absolute()
    return {name: dest.parent / f"{dest.name}.{name}.csv" for name in ("labels", *columns)}


def write_corpus(dest: str | Path, *, kind: str, clips: Sequence[Clip], render: Callable[[Clip], np.ndarray],
                 n_jobs: int = -1) -> Summary:
    """Render ``clips`` into ``dest`` and write the label CSVs beside it.

    Parameters
    ----------
    dest : the corpus folder; created when missing.
    kind : the generator's name, recorded in the manifest.
    clips : the files to make; each clip's ``labels`` have the same keys (the CSV columns).
    render : picklable function of a clip returning its mono float signal at :data:`SR`
        (peak below 1).
    n_jobs : worker processes (-1: every core).

    Returns
    -------
    Summary
        Counts, durations and paths of what is now in ``dest``.

    Raises
    ------
    DatasetError
        ``dest`` holds files this generator did not write, or a label CSV beside it was not
        written by it (nothing is written then); a renderer's tool failed.
    """
    start = time.perf_counter()
    dest = Path(dest)
    columns = list(clips[0].labels)
    csvs = csv_paths(dest, columns=columns)
    manifest = _own_manifest(dest, kind=kind, csvs=csvs)
    old: dict[str, dict[str, Any]] = manifest.get("files", {})
    keys = {c.rel: stable_hash({"kind": kind, "params": c.params}) for c in clips}
    todo = [c for c in clips if not _kept(dest / c.rel, entry=old.get(c.rel), key=keys[c.rel])]

    dest.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(dest)
    # every file this run may leave behind is listed before it is written: a killed run's files stay ours
    pending = {**old, **{c.rel: {"key": None} for c in todo}}
    write_json(dest / MANIFEST, {"kind": kind, "files": pending, "csvs": sorted(p.name for p in csvs.values())})
    made = dict(parallel_imap(partial(_make, render=render, dest=dest), todo, Workers(n_jobs=n_jobs),
                              desc=kind if todo else None))
    files = {c.rel: {**made[c.rel], "key": keys[c.rel]} if c.rel in made else old[c.rel] for c in clips}
    for rel in set(old) - set(files):
        (dest / rel).unlink(missing_ok=True)
    _remove_empty_folders(dest)
    write_json(dest / MANIFEST, {"kind": kind, "files": files, "csvs": sorted(p.name for p in csvs.values())})

    table = pd.DataFrame([{"path": c.rel, **c.labels} for c in clips], columns=["path", *columns])
    write_csv(csvs["labels"], table)
    for column in columns:
        write_csv(csvs[column], pd.DataFrame({"path": table["path"], "label": table[column]}))

    seconds = pd.Series([files[c.rel]["seconds"] for c in clips])
    summary = Summary(
        kind=kind, dest=dest, files=len(clips), written=len(todo), seconds=float(seconds.sum()),
        elapsed=time.perf_counter() - start,
        counts={col: dict(sorted(Counter(table[col]).items())) for col in columns},
        mean_seconds={col: {str(k): float(v) for k, v in seconds.groupby(table[col]).mean().sort_index().items()}
                      for col in columns},
        csvs=csvs)
    log.info("%s: %d file(s) in %s (%d written, %d kept), %.0f s of audio, in %.1f s", kind, summary.files, dest,
             summary.written, summary.files - summary.written, summary.seconds, summary.elapsed)
    return summary


def _own_manifest(dest: Path, *, kind: str, csvs: dict[str, Path]) -> dict[str, Any]:
    """The manifest of an earlier run of ``kind`` into ``dest`` (``{}`` for a new folder); raise on anything foreign."""
    if dest.exists() and not dest.is_dir():
        raise DatasetError(f"{dest} exists and is not a folder: choose another DEST")
    manifest = read_json(dest / MANIFEST) if dest.is_dir() else None
    if manifest is not None and manifest.get("kind") != kind:
        raise DatasetError(f"{dest} holds a generated {manifest.get('kind')!r} corpus, not {kind!r}: "
                           "choose another DEST")
    manifest = manifest or {}
    own = set(manifest.get("files", {}))
    foreign = sorted(rel for rel in _visible_files(dest) if rel not in own)
    if foreign:
        raise DatasetError(f"{dest} holds {len(foreign)} file(s) that no {kind} generator wrote (e.g. "
                           f"{', '.join(foreign[:3])}); corpora are written only into a new folder or one the same "
                           "generator wrote: choose another DEST")
    clashes = sorted(str(p) for p in csvs.values() if p.exists() and p.name not in manifest.get("csvs", []))
    if clashes:
        raise DatasetError(f"{', '.join(clashes)} already exist(s) and were not written by this generator for {dest}: "
                           "move them away or choose another DEST")
    return manifest


def _visible_files(folder: Path) -> list[str]:
    """Files under ``folder`` (relative, posix), hidden files and folders aside."""
    if not folder.is_dir():
        return []
    return [rel for rel in (p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())
            if not any(part.startswith(".") for part in rel.split("/"))]


def _kept(path: Path, *, entry: dict[str, Any] | None, key: str) -> bool:
    """Whether ``path`` is the file an earlier run made with the same parameters, undamaged."""
    return (entry is not None and entry.get("key") == key and path.is_file()
            and path.stat().st_size == entry.get("size"))


def _make(clip: Clip, *, render: Callable[[Clip], np.ndarray], dest: Path) -> tuple[str, dict[str, Any]]:
    """Render one clip, check it and write it as 16-bit PCM; return its manifest entry."""
    y = np.asarray(render(clip), dtype=np.float32)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    rms_db = 10 * np.log10(float(np.mean(y.astype(np.float64) ** 2)) + 1e-20) if y.size else -np.inf
    if not 0 < peak < 1 or rms_db < MIN_RMS_DB:
        raise DatasetError(f"rendering {clip.rel} gave a peak of {peak:.3f} and an RMS of {rms_db:.1f} dBFS: "
                           "expected sound below full scale")
    path = dest / clip.rel
    write_wav(path, y, sr=SR, subtype="PCM_16")
    return clip.rel, {"size": path.stat().st_size, "seconds": round(sf.info(path).frames / SR, 6)}


def _remove_empty_folders(dest: Path) -> None:
    for folder in sorted((p for p in dest.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
