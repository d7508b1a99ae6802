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
from pathlib import Path
from typing import Any

import pandas as pd

from .audio import load_audio, lowpass, peak_db, resample, sanitize, to_mono, write_wav
from .config import Config, section_hash
from .datasets import label_folder
from .errors import AudioReadError, StageInputError
from .parallel import parallel_map
from .paths import ProjectPaths
from .storage import Markers, write_csv

log = logging.getLogger(__name__)

COLUMNS = ["name", "label", "stem", "source_path", "path", "duration", "sample_rate", "status", "reason",
           "peak_db", "nonfinite"]

#: Numeric columns of the metadata tables; every other column is text.
NUMERIC = ("duration", "sample_rate", "channels", "frames", "size", "peak_db", "nonfinite")


def read_metadata(path: Path) -> pd.DataFrame:
    """Read ``metadata.csv`` or ``metadata_transformed.csv``.

    Text stays text (a label ``0`` or ``NA`` is the string, an empty cell is ``''``);
    the :data:`NUMERIC` columns are numbers with NaN for empty cells.
    """
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in NUMERIC:
        if col in table:
            table[col] = pd.to_numeric(table[col], errors="coerce")
    return table


def _source_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns}


def transform_file(job: dict[str, Any], audio: dict[str, Any], marker_folder: str, params_hash: str) -> dict[str, Any]:
    """Transform one file; return its table row (never raises for a bad file).

    Parameters
    ----------
    job : ``source`` and ``out`` (absolute paths as str), ``marker`` (key), ``row`` (the
        row's fixed columns), ``source_key`` (size and mtime of the source).
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
        y = lowpass(y, audio["sample_rate"], audio["cutoff"], audio["order"])
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
        write_wav(out, y, audio["sample_rate"])
        row.update(status="ok", reason="", path=job["out_rel"])
    Markers(Path(marker_folder), params_hash).put(job["marker"], {**row, **job["source_key"]})
    return row


def run(cfg: Config, paths: ProjectPaths) -> pd.DataFrame:
    """Stage 02: transform every ``ok`` file of ``metadata.csv``; write ``metadata_transformed.csv``.

    Returns
    -------
    DataFrame with the columns :data:`COLUMNS`, one row per metadata row, in its order.

    Raises
    ------
    StageInputError
        ``metadata.csv`` is missing.
    """
    if not paths.metadata_csv.is_file():
        raise StageInputError(f"{paths.rel(paths.metadata_csv)} not found: run "
                              f"`audioclust metadata --dataset {paths.dataset}` first")
    meta = read_metadata(paths.metadata_csv)
    a = cfg.audio
    cutoff = a.cutoff
    if cutoff is not None and cutoff >= a.sample_rate / 2:
        log.warning("audio.cutoff %.0f Hz is at or above Nyquist (%.0f Hz at audio.sample_rate %d): "
                    "no low-pass filter is applied", cutoff, a.sample_rate / 2, a.sample_rate)
        cutoff = None
    audio = {"sample_rate": a.sample_rate, "cutoff": cutoff, "order": a.order, "silence_db": a.silence_db}
    markers = Markers(paths.metadata / ".transform_done", section_hash(cfg, "audio"))

    rows: list[dict[str, Any] | None] = []
    jobs: list[tuple[int, dict[str, Any]]] = []
    for i, m in enumerate(meta.to_dict("records")):
        folder = label_folder(m["label"])
        row = {"name": m["name"], "label": m["label"], "stem": m["stem"], "source_path": m["path"], "path": "",
               "duration": None, "sample_rate": a.sample_rate, "status": "skipped", "reason": "",
               "peak_db": None, "nonfinite": None}
        out = paths.wav / folder / f"{m['stem']}.wav"
        if m["status"] != "ok":
            row["reason"] = f"stage 01 status {m['status']}: {m['reason']}"
            out.unlink(missing_ok=True)
            rows.append(row)
            continue
        source = paths.abs(m["path"])
        try:
            key = _source_key(source)
        except OSError as exc:
            rows.append({**row, "status": "error", "reason": f"source file unavailable since stage 01: {exc}"})
            continue
        done = markers.get(f"{folder}/{m['stem']}")
        if done is not None and all(done.get(k) == v for k, v in key.items()) \
                and done.get("source_path") == m["path"] and (done["status"] != "ok" or out.is_file()):
            rows.append({c: done.get(c) for c in COLUMNS})
            continue
        rows.append(None)
        jobs.append((i, {"source": str(source), "out": str(out), "out_rel": paths.rel(out),
                         "marker": f"{folder}/{m['stem']}", "row": row, "source_key": key}))

    log.info("transform: %d file(s) to process, %d reused, %d skipped (not ok in stage 01)",
             len(jobs), sum(r is not None and r["status"] != "skipped" for r in rows),
             sum(r is not None and r["status"] == "skipped" for r in rows))
    func = functools.partial(transform_file, audio=audio, marker_folder=str(markers.folder),
                             params_hash=markers.params_hash)
    for (i, _), result in zip(jobs, parallel_map(func, [j for _, j in jobs], cfg, desc="transform")):
        rows[i] = result

    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    table["nonfinite"] = table["nonfinite"].astype("Int64")
    _remove_stale(paths, set(table.loc[table["status"] == "ok", "path"]))
    write_csv(paths.transformed_csv, table)
    log_summary(table, paths.rel(paths.transformed_csv))
    return table


def _remove_stale(paths: ProjectPaths, keep: set[str]) -> None:
    """Delete WAVs in ``datasets/<name>_wav/`` that no ``ok`` row names (files removed or renamed since)."""
    if not paths.wav.is_dir():
        return
    stale = [p for p in paths.wav.rglob("*.wav") if paths.rel(p) not in keep]
    for p in stale:
        p.unlink()
    if stale:
        log.info("removed %d stale WAV file(s) from %s", len(stale), paths.rel(paths.wav))


def log_summary(table: pd.DataFrame, where: str) -> None:
    """Log counts per status, files with replaced non-finite samples, and the first problems."""
    counts = table["status"].value_counts()
    log.info("transform: %d file(s) → %s: %s", len(table), where,
             ", ".join(f"{s} {n}" for s, n in counts.items()))
    nonfinite = table[table["nonfinite"].fillna(0) > 0]
    if len(nonfinite):
        log.warning("%d file(s) held NaN/inf samples, replaced by 0 (%d samples), e.g. %s", len(nonfinite),
                    int(nonfinite["nonfinite"].sum()), nonfinite["source_path"].iloc[0])
    for _, row in table[~table["status"].isin(["ok", "skipped"])].head(10).iterrows():
        log.warning("%s: %s — %s", row["source_path"], row["status"], row["reason"])
