"""transform.py (stage 02): the WAVs, the table, resuming, and the originals left untouched."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone

from audioclust import results
from audioclust.config import load_config
from audioclust.core.errors import AudioReadError, StageInputError
from audioclust.core.paths import ProjectPaths
from audioclust.stages import metadata, transform

CONTRACT = ["name", "label", "stem", "source_path", "path", "duration", "sample_rate", "status", "reason"]


def _write(path: Path, y: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype=subtype)
    return path


def _stages(project: Path, **overrides):
    cfg = load_config(project, "ds", overrides={"parallel.n_jobs": 1, **overrides})
    paths = ProjectPaths(project, "ds")
    metadata.run(cfg, paths)
    return transform.run(cfg, paths), paths


def _hashes(folder: Path) -> dict[str, str]:
    return {p.as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def small(project: Path) -> Path:
    raw = project / "datasets" / "ds"
    # stereo 44.1 kHz: 440 Hz left, 440 Hz + 10 kHz right; the 10 kHz part lies above the 8192 Hz cutoff
    left = tone(440.0, 1.0, 44100, 0.4)
    right = left + tone(10000.0, 1.0, 44100, 0.4)
    _write(raw / "mix" / "stereo.wav", np.stack([left, right], axis=1), 44100)
    _write(raw / "mix" / "low rate.flac", tone(300.0, 0.5, 8000), 8000)
    _write(raw / "quiet" / "hush.wav", tone(440.0, 0.5, 22050, amp=1e-4), 22050, "FLOAT")  # -80 dBFS
    _write(raw / "top.wav", tone(1000.0, 0.2, 22050), 22050)
    (raw / "mix" / "broken.wav").write_text("not audio")
    return project


def test_missing_metadata_says_to_run_stage_01(project):
    cfg = load_config(project, "ds")
    with pytest.raises(StageInputError, match="run `audioclust metadata --dataset ds` first"):
        transform.run(cfg, ProjectPaths(project, "ds"))


def test_wavs_and_table(small):
    table, paths = _stages(small)
    assert table.columns.tolist()[:len(CONTRACT)] == CONTRACT
    by_stem = table.set_index("stem")
    assert by_stem["status"].to_dict() == {"broken": "skipped", "low rate": "ok", "stereo": "ok", "hush": "silent",
                                           "top": "ok"}
    assert by_stem.loc["broken", "reason"].startswith("stage 01 status error: cannot decode .wav")
    assert by_stem.loc["hush", "reason"] == ("peak -80.0 dBFS after the transform is below audio.silence_db "
                                             "(-60 dBFS)")
    assert by_stem.loc["hush", "path"] == "" and by_stem.loc["broken", "path"] == ""
    assert by_stem.loc["top", "path"] == "datasets/ds_wav/unlabelled/top.wav"
    assert by_stem.loc["low rate", "path"] == "datasets/ds_wav/mix/low rate.wav"
    assert (table["sample_rate"] == 22050).all()
    assert by_stem.loc["low rate", "duration"] == pytest.approx(0.5)
    assert by_stem.loc["stereo", "source_path"] == "datasets/ds/mix/stereo.wav"
    assert sorted(p.relative_to(paths.wav).as_posix() for p in paths.wav.rglob("*")) == [
        "mix", "mix/low rate.wav", "mix/stereo.wav", "unlabelled", "unlabelled/top.wav"]

    y, sr = sf.read(paths.wav / "mix" / "stereo.wav", dtype="float32")
    info = sf.info(paths.wav / "mix" / "stereo.wav")
    assert (sr, info.channels, info.subtype, len(y)) == (22050, 1, "FLOAT", 22050)
    spectrum = np.abs(np.fft.rfft(y)) / (len(y) / 2)
    freqs = np.fft.rfftfreq(len(y), 1 / sr)
    # mono = mean: 0.4 at 440 Hz, 0.2 at 10 kHz before the filter, which takes that 1.8 kHz above 8192 Hz down
    assert spectrum[np.argmin(np.abs(freqs - 440))] == pytest.approx(0.4, abs=0.01)
    ten_k = spectrum[np.argmin(np.abs(freqs - 10000))]
    assert 20 * np.log10(ten_k / 0.2) < -40.0


def test_originals_are_never_modified(small):
    raw = small / "datasets" / "ds"
    before = _hashes(raw)
    stamps = {p: os.stat(p).st_mtime_ns for p in before}
    _stages(small)
    _stages(small, **{"audio.cutoff": 4000.0})
    assert _hashes(raw) == before
    assert {p: os.stat(p).st_mtime_ns for p in before} == stamps


def test_rerun_reuses_and_changed_parameters_recompute(small, monkeypatch, caplog):
    table, paths = _stages(small)
    wav = paths.wav / "mix" / "stereo.wav"
    first = wav.read_bytes()

    def must_not_decode(path):
        raise AssertionError(f"{path} decoded again")

    monkeypatch.setattr(transform, "load_audio", must_not_decode)
    with caplog.at_level(logging.INFO, logger="audioclust"):
        again, _ = _stages(small)
    assert again.equals(table)
    assert "0 file(s) to process, 4 reused" in caplog.text
    monkeypatch.undo()

    _stages(small, **{"audio.cutoff": 2000.0})  # another audio parameter: every file again
    filtered, sr = sf.read(wav, dtype="float32")
    assert wav.read_bytes() != first
    spectrum = np.abs(np.fft.rfft(filtered))
    assert np.fft.rfftfreq(len(filtered), 1 / sr)[np.argmax(spectrum)] == pytest.approx(440.0, abs=1.0)


def test_a_changed_source_is_recomputed_and_a_removed_one_cleaned_up(small, monkeypatch):
    table, paths = _stages(small)
    raw = small / "datasets" / "ds"
    _write(raw / "top.wav", tone(2000.0, 0.3, 22050), 22050)
    (raw / "mix" / "low rate.flac").unlink()
    decoded = []
    real = transform.load_audio
    monkeypatch.setattr(transform, "load_audio", lambda p: decoded.append(Path(p).name) or real(p))
    table, _ = _stages(small)
    assert decoded == ["top.wav"]
    assert table.set_index("stem").loc["top", "duration"] == pytest.approx(0.3)
    assert not (paths.wav / "mix" / "low rate.wav").exists()  # its source is gone: the stale WAV too


def test_cutoff_above_nyquist_warns_once_and_keeps_the_signal(small, caplog):
    with caplog.at_level(logging.WARNING, logger="audioclust"):
        table, paths = _stages(small, **{"audio.sample_rate": 16000, "audio.cutoff": 8000.0})
    assert caplog.text.count("no low-pass filter is applied") == 1
    y, sr = sf.read(paths.wav / "unlabelled" / "top.wav", dtype="float32")
    assert sr == 16000 and len(y) == 3200
    assert np.max(np.abs(y[100:-100])) == pytest.approx(0.5, abs=0.01)


def test_parallel_runs_of_both_stages_give_the_same_tables(small, monkeypatch):
    """Worker processes (n_jobs=2) for stage 01 (forced below its size threshold) and stage 02."""
    serial, paths = _stages(small)
    serial_meta = paths.metadata_csv.read_bytes()
    (paths.metadata / ".transform_done").rename(paths.metadata / "old_markers")
    monkeypatch.setattr(metadata, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(metadata, "PROBE_CHUNK", 2)
    parallel, _ = _stages(small, **{"parallel.n_jobs": 2})
    assert paths.metadata_csv.read_bytes() == serial_meta
    assert parallel.equals(serial)


def test_transform_file_records_errors(tmp_path):
    job = {"source": str(tmp_path / "gone.wav"), "out": str(tmp_path / "o.wav"), "out_rel": "o.wav",
           "marker": "x/gone", "row": {"stem": "gone"}, "source_key": {}}
    audio = {"sample_rate": 22050, "cutoff": 8000.0, "order": 8, "silence_db": -60.0}
    row = transform.transform_file(job, audio, str(tmp_path / "markers"), "h")
    assert row["status"] == "error" and "file not found" in row["reason"]
    assert not (tmp_path / "markers").exists()  # errors are retried on the next run
    with pytest.raises(AudioReadError):
        transform.load_audio(tmp_path / "gone.wav")


def test_a_file_above_max_duration_is_recorded_and_left_out(small):
    # stereo.wav lasts 1.0 s, the others 0.5 s or less: a limit of 0.75 s leaves out only stereo.wav
    table, paths = _stages(small, **{"dataset.max_duration": 0.75})
    meta = results.read_metadata(paths.metadata_csv).set_index("name")
    assert meta.loc["stereo.wav", "status"] == "too_long"
    assert "longer than dataset.max_duration" in meta.loc["stereo.wav", "reason"]
    assert (meta.drop(index=["stereo.wav", "broken.wav"])["status"] == "ok").all()
    row = table.set_index("name").loc["stereo.wav"]
    assert row["status"] == "skipped" and row["reason"].startswith("stage 01 status too_long")
    assert not (paths.wav / "mix" / "stereo.wav").exists()
    ok = table[table["status"] == "ok"]
    assert sorted(ok["name"]) == ["low rate.flac", "top.wav"]   # hush.wav is silent
    assert all(paths.abs(p).is_file() for p in ok["path"])
    # null: no limit
    table, _ = _stages(small, **{"dataset.max_duration": None})
    assert table.set_index("name").loc["stereo.wav", "status"] == "ok"


def test_files_stored_at_a_lower_rate_are_named_with_the_cutoff_that_evens_the_band(project, caplog):
    for i, sr in enumerate([8000, 8000, 22050, 44100, 44100]):
        _write(project / "datasets" / "ds" / "a" / f"f{i}.wav", tone(440.0, sr=sr), sr)
    with caplog.at_level(logging.WARNING, logger="audioclust.stages.transform"):
        _stages(project)
    assert ("2 of 5 files were stored at 8000 Hz and hold nothing above 4000 Hz, while 3 hold more, up to 8192 Hz"
            in caplog.text)
    assert "--set audio.cutoff=3600 keeps only the band every file holds" in caplog.text
    # with that cutoff every file holds the band stage 02 keeps: nothing to say
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="audioclust.stages.transform"):
        _stages(project, **{"audio.cutoff": 3600})
    assert "were stored at" not in caplog.text
