"""Stage 02: decode, clean, mono, resample, low-pass; write ``datasets/<name>_wav/``.

For each ``ok`` row of ``metadata.csv``: decode, replace NaN/inf samples by 0, mix to
mono, resample to ``audio.sample_rate``, zero-phase Butterworth low-pass
(``audio.cutoff``, ``audio.order``), and write a mono 32-bit float WAV to
``datasets/<name>_wav/<label or 'unlabelled'>/<stem>.wav`` — unless its peak is below
``audio.silence_db`` (status ``silent``, no WAV). The table goes to
``metadata_transformed.csv``.

The stage is resumable: each finished file leaves a marker
(``metadata/<name>/.transform_done/<label>/<stem>.json``) holding the hash of the
``audio`` config section and the source file's size and modification time; a re-run
reuses a file only when all of them match and its WAV exists.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from audioclust.config import Config, section_hash
from audioclust.core.cache import Markers, file_fingerprint
from audioclust.core.errors import AudioReadError, StageInputError
from audioclust.core.parallel import parallel_imap
from audioclust.core.paths import ProjectPaths, file_key, label_folder, root_hint
from audioclust.core.progress import Progress
from audioclust.core.storage import CsvStream, count_rows, remove_stale_temps
from audioclust.dsp.decode import load_audio, write_wav
from audioclust.dsp.filters import lowpass, peak_db, resample, sanitize, to_mono
from audioclust.dsp.numba_cache import load_kernels
from audioclust.results import read_metadata
from audioclust.stages._runs import recorded
from audioclust.stages._shared import band_limit_hz, workers
from audioclust.stages._skeleton import StageSummary, remove_unlisted

log = logging.getLogger(__name__)


COLUMNS = ["name", "label", "stem", "source_path", "path", "duration", "sample_rate", "status", "reason",
           "peak_db", "nonfinite"]

def transform_file(job: dict[str, Any], audio: dict[str, Any], marker_folder: str, params_hash: str) -> dict[str, Any]:
    """Transform one file; return its table row (never raises for a bad file).

    Parameters
    ----------
    job : ``source`` and ``out`` (absolute paths as str), ``marker`` (key), ``row`` (the
        row's fixed columns), ``source_fingerprint`` (:func:`~audioclust.core.cache.file_fingerprint` of the source).
    audio : ``sample_rate``, ``cutoff`` (None: no filter), ``order``, ``silence_db``.
    """
    row = dict(job["row"])
    out = Path(job["out"])
    try:
        y, sr = load_audio(job["source"])
        y, n_bad = sanitize(y)
        y = to_mono(y)
        if y.size == 0:
            raise AudioReadError("no audio frames after decoding")
        y = resample(y, orig_sr=sr, target_sr=audio["sample_rate"])
        y = lowpass(y, sr=audio["sample_rate"], cutoff=audio["cutoff"], order=audio["order"])
    except AudioReadError as exc:
        out.unlink(missing_ok=True)
        return {**row, "status": "error", "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 — one broken file must not stop the stage
        out.unlink(missing_ok=True)
        return {**row, "status": "error", "reason": f"unexpected {type(exc).__name__}: {exc}"}
    peak = peak_db(y)
    row.update(duration=y.size / audio["sample_rate"], peak_db=round(peak, 2), nonfinite=n_bad)
    if peak < audio["silence_db"]:
        out.unlink(missing_ok=True)
        row.update(status="silent", reason=f"peak {peak:.1f} dBFS after the transform is below "
                                           f"audio.silence_db ({audio['silence_db']:g} dBFS)")
    else:
        write_wav(out, y, sr=audio["sample_rate"])
        row.update(status="ok", reason="", path=job["out_rel"])
    Markers(Path(marker_folder), params_hash).put(job["marker"], {**row, "source_fingerprint": job["source_fingerprint"]})
    return row


#: rows read, dispatched and written per step: bounds memory on any number of files
CHUNK_ROWS = 2000


@recorded("transform")
def run(cfg: Config, paths: ProjectPaths, return_table: bool = True) -> pd.DataFrame | None:
    """Stage 02: transform every ``ok`` file of ``metadata.csv``; write ``metadata_transformed.csv``.

    Streams: the table is read, dispatched and written in chunks of :data:`CHUNK_ROWS`, so
    memory does not grow with the number of files.

    Parameters
    ----------
    return_table : bool
        Read the table back and return it (False: return None; for very large collections).

    Returns
    -------
    DataFrame with the columns :data:`COLUMNS`, one row per metadata row, in its order, or None.

    Raises
    ------
    StageInputError
        ``metadata.csv`` is missing.
    """
    remove_stale_temps(*paths.generated())
    if not paths.metadata_csv.is_file():
        raise StageInputError(f"{paths.metadata_csv} not found: run `audioclust metadata --dataset {paths.dataset}` "
                              f"first{root_hint(paths.root)}")
    a = cfg.audio
    cutoff = a.cutoff
    if cutoff is not None and cutoff >= a.sample_rate / 2:
        log.warning("audio.cutoff %.0f Hz is at or above Nyquist (%.0f Hz at audio.sample_rate %d): "
                    "no low-pass filter is applied", cutoff, a.sample_rate / 2, a.sample_rate)
        cutoff = None
    audio = {"sample_rate": a.sample_rate, "cutoff": cutoff, "order": a.order, "silence_db": a.silence_db}
    markers = Markers(paths.metadata / ".transform_done", section_hash(cfg, "audio"))
    func = functools.partial(transform_file, audio=audio, marker_folder=str(markers.folder),
                             params_hash=markers.params_hash)

    summary = _Summary()
    keep: set[str] = set()
    with CsvStream(paths.transformed_csv, COLUMNS) as out, \
            Progress(count_rows(paths.metadata_csv), "transform") as bar:
        with pd.read_csv(paths.metadata_csv, dtype=str, keep_default_na=False, chunksize=CHUNK_ROWS) as chunks:
            for chunk in chunks:
                rows, jobs = _plan(chunk, paths, markers, a.sample_rate)
                summary.source_rates.update(pd.to_numeric(chunk.loc[chunk["status"] == "ok", "sample_rate"],
                                                           errors="coerce").dropna().astype(int))
                # the workers resample with librosa: its numba kernels loaded here first (numba_cache)
                for i, result in zip(jobs, parallel_imap(func, [jobs[i] for i in jobs], workers(cfg), desc=None,
                                                         prepare=load_kernels)):
                    rows[i] = result
                table = pd.DataFrame(rows).reindex(columns=COLUMNS)
                table["nonfinite"] = table["nonfinite"].astype("Int64")
                keep.update(table.loc[table["status"] == "ok", "path"])
                summary.add(table, processed=len(jobs))
                out.write(table)
                bar.update(len(table))
    _remove_stale(paths, keep)
    summary.log(paths.rel(paths.transformed_csv))
    note = mixed_band_note(summary.source_rates, band_limit_hz(cfg))
    if note:
        log.warning(note)
    return read_metadata(paths.transformed_csv) if return_table else None


def _plan(chunk: pd.DataFrame, paths: ProjectPaths, markers: Markers,
          sample_rate: int) -> tuple[list[dict[str, Any] | None], dict[int, dict[str, Any]]]:
    """Rows known without work (skipped, unavailable, reused) and the jobs of the others, by position."""
    rows: list[dict[str, Any] | None] = []
    jobs: dict[int, dict[str, Any]] = {}
    for m in chunk.to_dict("records"):
        folder = label_folder(m["label"])
        row = {"name": m["name"], "label": m["label"], "stem": m["stem"], "source_path": m["path"], "path": "",
               "duration": None, "sample_rate": sample_rate, "status": "skipped", "reason": "",
               "peak_db": None, "nonfinite": None}
        out = paths.wav / folder / f"{m['stem']}.wav"
        if m["status"] != "ok":
            row["reason"] = f"stage 01 status {m['status']}: {m['reason']}"
            out.unlink(missing_ok=True)
            rows.append(row)
            continue
        source = paths.abs(m["path"])
        fingerprint = file_fingerprint(source)
        if fingerprint is None:
            rows.append({**row, "status": "error", "reason": "source file unavailable since stage 01: it cannot be "
                                                             "read any more; run stage 01 again"})
            continue
        done = markers.get(file_key(m['label'], m['stem']))
        if done is not None and done.get("source_fingerprint") == fingerprint \
                and done.get("source_path") == m["path"] and (done["status"] != "ok" or out.is_file()):
            rows.append({c: done.get(c) for c in COLUMNS})
            continue
        jobs[len(rows)] = {"source": str(source), "out": str(out), "out_rel": paths.rel(out),
                           "marker": file_key(m['label'], m['stem']), "row": row, "source_fingerprint": fingerprint}
        rows.append(None)
    return rows, jobs


def mixed_band_note(source_rates: Counter, limit_hz: float) -> str | None:
    """A warning when some files were stored at a sample rate too low to hold the band the others hold up to
    ``limit_hz`` (what stage 02 keeps); None when every file holds the same band.

    A file stored at 8 kHz holds nothing above 4 kHz: among files that hold up to 8 kHz, spectral features set it
    apart for that alone. A cutoff a tenth below the lowest Nyquist frequency puts the filter's slope inside the band
    every file holds (the filter is −6 dB at its cutoff and falls 96 dB per octave).

    Parameters
    ----------
    source_rates : number of files per source sample rate (stage 01's ``ok`` rows).
    limit_hz : the highest frequency stage 02 keeps (:func:`~audioclust.stages._shared.band_limit_hz`).
    """
    bands = Counter()
    for rate, n in source_rates.items():
        if rate > 0:
            bands[min(rate / 2, limit_hz)] += n
    if len(bands) < 2:
        return None
    low = min(bands)
    rates = sorted(rate for rate in source_rates if rate > 0 and rate / 2 == low)
    suggested = int(0.9 * low // 100 * 100)
    return (f"{bands[low]} of {sum(bands.values())} files were stored at {', '.join(map(str, rates))} Hz and hold "
            f"nothing above {low:.0f} Hz, while {sum(bands.values()) - bands[low]} hold more, up to {max(bands):.0f} "
            "Hz: spectral features can group the files by that alone (stages 04 and 05 name such structures in the "
            f"follows column of structures.csv); --set audio.cutoff={suggested} keeps only the band every file holds")


def _remove_stale(paths: ProjectPaths, keep: set[str]) -> None:
    """Delete WAVs in ``datasets/<name>_wav/`` that no ``ok`` row names (files removed or renamed since)."""
    if paths.wav.is_dir():
        remove_unlisted(paths.wav.rglob("*.wav"), lambda p: paths.rel(p) in keep,
                        f"stale WAV file(s) from {paths.rel(paths.wav)}")


class _Summary(StageSummary):
    """Counts for the log, gathered chunk by chunk; also what was reused and the non-finite samples replaced."""

    def __init__(self) -> None:
        super().__init__("transform", "source_path", fine=("ok", "skipped"))
        self.processed = self.reused = self.nonfinite_files = self.nonfinite_samples = 0
        self.nonfinite_example = ""
        self.source_rates: Counter = Counter()   # files per source sample rate, of stage 01's ok rows

    def add(self, table: pd.DataFrame, processed: int) -> None:
        super().add(table)
        self.processed += processed
        self.reused += int(len(table) - processed - (table["status"] == "skipped").sum())
        bad = table[table["nonfinite"].fillna(0) > 0]
        if len(bad):
            self.nonfinite_example = self.nonfinite_example or bad["source_path"].iloc[0]
            self.nonfinite_files += len(bad)
            self.nonfinite_samples += int(bad["nonfinite"].sum())

    def log(self, where: str) -> None:
        log.info("transform: %d file(s) to process, %d reused, %d skipped (not ok in stage 01)",
                 self.processed, self.reused, self.status["skipped"])
        super().log(where)
        if self.nonfinite_files:
            log.warning("%d file(s) held NaN/inf samples, replaced by 0 (%d samples), e.g. %s",
                        self.nonfinite_files, self.nonfinite_samples, self.nonfinite_example)
