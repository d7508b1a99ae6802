"""Stage 03 on a tiny project whose stage-02 outputs (WAVs + metadata_transformed.csv) are made here."""

import logging
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import tone

from audioclust import results
from audioclust.config import FEATURE_KINDS, load_config
from audioclust.core.errors import StageInputError
from audioclust.core.paths import ProjectPaths
from audioclust.dsp.images import from_image, read_png
from audioclust.stages import extract

SR = 22050
SMALL = ["features.n_fft=512", "features.hop_length=256", "features.n_mels=32", "features.n_mfcc=13",
         "parallel.n_jobs=1"]


def make_stage02(paths: ProjectPaths, items: list[dict]) -> None:
    """Write WAVs under datasets/<name>_wav/ and metadata_transformed.csv (the stage-02 contract).

    Each item: label, stem, and ``y`` (float32 signal), ``raw`` (bytes written as the WAV)
    or ``status`` (a non-ok stage-02 status: no WAV).
    """
    rows = []
    for it in items:
        wav = paths.wav / (it["label"] or "unlabelled") / f"{it['stem']}.wav"
        status = it.get("status", "ok")
        if "y" in it:
            wav.parent.mkdir(parents=True, exist_ok=True)
            sf.write(wav, it["y"], SR, subtype="FLOAT")
        elif "raw" in it:
            wav.parent.mkdir(parents=True, exist_ok=True)
            wav.write_bytes(it["raw"])
        n = len(it.get("y", ()))
        rows.append({"name": f"{it['stem']}.wav", "label": it["label"], "stem": it["stem"],
                     "source_path": f"datasets/{paths.dataset}/{it['label']}/{it['stem']}.wav",
                     "path": paths.rel(wav) if status == "ok" else "", "duration": n / SR,
                     "sample_rate": SR, "status": status,
                     "reason": "" if status == "ok" else "peak below -60 dBFS"})
    paths.metadata.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(paths.transformed_csv, index=False)


@pytest.fixture
def setup(project):
    paths = ProjectPaths(project, "ds")
    make_stage02(paths, [
        {"label": "low", "stem": "a", "y": tone(220.0, seconds=0.3)},
        {"label": "high", "stem": "b", "y": tone(3000.0, seconds=0.2, amp=0.2)},
        {"label": "", "stem": "c", "y": tone(440.0, seconds=0.25)},
        {"label": "low", "stem": "short", "y": tone(220.0, seconds=300 / SR)},   # 300 samples < n_fft 512
        {"label": "high", "stem": "broken", "raw": b"RIFF\x00\x00\x00\x00not a wav at all"},
        {"label": "high", "stem": "quiet", "status": "silent"},
    ])
    return project, paths


def output_files(paths: ProjectPaths) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in paths.features.rglob("*") if p.is_file()}


def test_missing_input_says_which_stage_to_run(project):
    with pytest.raises(StageInputError, match="audioclust transform --dataset ds"):
        extract.run(load_config(project, "ds"), ProjectPaths(project, "ds"))


def test_outputs_at_contract_paths_and_table(setup):
    project, paths = setup
    cfg = load_config(project, "ds", overrides=SMALL)
    table = extract.run(cfg, paths)

    assert list(table.columns) == results.FEATURES_COLUMNS
    assert table["stem"].tolist() == ["a", "b", "c", "short", "broken", "quiet"]
    assert table["status"].tolist() == ["ok", "ok", "ok", "too_short", "error", "skipped"]
    assert "300 samples" in table.loc[3, "reason"] and "n_fft = 512" in table.loc[3, "reason"]
    assert "cannot read WAV" in table.loc[4, "reason"]
    assert "silent" in table.loc[5, "reason"]
    assert table.loc[3, "duration"] == pytest.approx(300 / SR)
    assert table.loc[:2, "n_frames"].tolist() == [1 + int(0.3 * SR) // 256, 1 + int(0.2 * SR) // 256,
                                                  1 + int(0.25 * SR) // 256]
    assert table.loc[0, "rms_mean"] == pytest.approx(0.5 / math.sqrt(2), rel=0.1)
    assert table.loc[1, "centroid_mean"] == pytest.approx(3000, rel=0.05)
    assert math.isnan(table.loc[4, "rms_mean"])
    on_disk = pd.read_csv(paths.features_csv, keep_default_na=False, dtype={"label": str})
    assert on_disk["status"].tolist() == table["status"].tolist()
    assert on_disk.loc[2, "label"] == ""

    n_bins = {"spectrogram": 257, "mel": 32, "chroma": 12, "mfcc": 13, "mfcc_no_c0": 12}
    for stem, label, row in [("a", "low", 0), ("c", "unlabelled", 2)]:
        n_frames = table.loc[row, "n_frames"]
        for kind in FEATURE_KINDS:
            array = np.load(paths.feature_file(kind, label, stem, ".npy"))
            assert array.dtype == np.float32 and array.shape == (n_bins[kind], n_frames)
            vmin, vmax = cfg.features.png_ranges[kind]
            image = read_png(paths.feature_file(kind, label, stem, ".png"))
            assert image.shape == array.shape
            inside = (array >= vmin) & (array <= vmax)
            back = from_image(image, vmin=vmin, vmax=vmax)
            assert np.abs(back - array)[inside].max() <= (vmax - vmin) / 510 + 1e-4
    # no arrays for rows that are not ok
    for kind in FEATURE_KINDS:
        assert not [p for p in (paths.features / kind).rglob("*") if p.stem in ("short", "broken", "quiet")]


def test_rerun_touches_nothing_and_changed_parameter_recomputes(setup):
    project, paths = setup
    first = extract.run(load_config(project, "ds", overrides=SMALL), paths)
    before = output_files(paths)
    assert len([p for p in before if p.suffix == ".npy"]) == 3 * 5

    again = extract.run(load_config(project, "ds", overrides=SMALL), paths)
    after = output_files(paths)
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed == {paths.features_csv}  # only the table is rewritten
    pd.testing.assert_frame_equal(first, again)

    extract.run(load_config(project, "ds", overrides=SMALL + ["features.n_mels=20"]), paths)
    assert np.load(paths.feature_file("mel", "low", "a", ".npy")).shape[0] == 20
    newer = output_files(paths)
    assert newer[paths.feature_file("spectrogram", "high", "b", ".npy")] != before[
        paths.feature_file("spectrogram", "high", "b", ".npy")]


def test_partial_run_without_marker_is_recomputed(setup):
    project, paths = setup
    cfg = load_config(project, "ds", overrides=SMALL)
    extract.run(cfg, paths)
    npy = paths.feature_file("mel", "low", "a", ".npy")
    good = np.load(npy)
    # a run killed after writing arrays but before the marker: garbage array, no marker
    np.save(npy, np.zeros_like(good))
    (paths.features / ".extract_done" / "low" / "a.json").unlink()
    untouched = paths.feature_file("mel", "high", "b", ".npy")
    mtime = untouched.stat().st_mtime_ns

    extract.run(cfg, paths)
    np.testing.assert_array_equal(np.load(npy), good)
    assert untouched.stat().st_mtime_ns == mtime


def test_remade_wav_or_deleted_output_is_recomputed(setup):
    project, paths = setup
    cfg = load_config(project, "ds", overrides=SMALL)
    extract.run(cfg, paths)
    sf.write(paths.wav / "low" / "a.wav", tone(880.0, seconds=0.3), SR, subtype="FLOAT")  # stage 02 re-made it
    paths.feature_file("chroma", "high", "b", ".png").unlink()
    table = extract.run(cfg, paths)
    assert table.loc[0, "zcr_mean"] == pytest.approx(2 * 880 / SR, rel=0.1)
    assert paths.feature_file("chroma", "high", "b", ".png").is_file()


def test_errors_are_retried_and_too_short_is_remembered(setup):
    project, paths = setup
    cfg = load_config(project, "ds", overrides=SMALL)
    extract.run(cfg, paths)
    markers = paths.features / ".extract_done"
    assert (markers / "low" / "short.json").is_file()
    assert not (markers / "high" / "broken.json").exists()
    sf.write(paths.wav / "high" / "broken.wav", tone(1000.0, seconds=0.1), SR, subtype="FLOAT")  # fixed
    table = extract.run(cfg, paths)
    assert table.loc[4, "status"] == "ok"


def test_the_log_lists_this_stages_problems_by_path_not_files_earlier_stages_left_out(setup, caplog):
    project, paths = setup
    caplog.set_level(logging.INFO, logger="audioclust")
    table = extract.run(load_config(project, "ds", overrides=SMALL), paths)
    assert table["status"].value_counts().to_dict() == {"ok": 3, "too_short": 1, "error": 1, "skipped": 1}
    assert "extract: 6 file(s) → features/ds/features.csv: ok 3" in caplog.text and "skipped 1" in caplog.text
    listed = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(listed) == 2 and {line.split(":")[0] for line in listed} == {
        "datasets/ds_wav/low/short.wav", "datasets/ds_wav/high/broken.wav"}


def test_wrong_sample_rate_and_nan_samples_are_error_rows(project):
    paths = ProjectPaths(project, "ds")
    make_stage02(paths, [{"label": "x", "stem": "nan", "y": np.full(2000, np.nan, np.float32)},
                         {"label": "x", "stem": "ok", "y": tone(500.0, seconds=0.1)}])
    sf.write(paths.wav / "x" / "ok.wav", tone(500.0, seconds=0.1), 16000, subtype="FLOAT")
    table = extract.run(load_config(project, "ds", overrides=SMALL), paths)
    assert table["status"].tolist() == ["error", "error"]
    assert "NaN" in table.loc[0, "reason"]
    assert "16000 Hz" in table.loc[1, "reason"] and "re-run transform" in table.loc[1, "reason"]


def test_two_workers_give_the_same_outputs(setup, monkeypatch):
    project, paths = setup
    serial = extract.run(load_config(project, "ds", overrides=SMALL), paths)
    before = {p: p.read_bytes() for p in output_files(paths)}
    for p in list(paths.features.rglob("*")):
        if p.is_file():
            p.unlink()
    monkeypatch.setattr(extract, "PARALLEL_MIN_FILES", 1)  # worker processes even for these few files
    parallel = extract.run(load_config(project, "ds", overrides=SMALL + ["parallel.n_jobs=2"]), paths)
    pd.testing.assert_frame_equal(serial, parallel)
    after = {p: p.read_bytes() for p in output_files(paths)}
    assert sorted(after) == sorted(before)
    assert [p for p in before if before[p] != after[p]] == []  # arrays, images, markers, table, store


def test_few_files_are_computed_in_this_process(setup, monkeypatch):
    """Starting workers pays off only from a few hundred files: below PARALLEL_MIN_FILES none start."""
    project, paths = setup
    computed = []
    real = extract._compute
    monkeypatch.setattr(extract, "_compute", lambda job, s, v: computed.append(job.stem) or real(job, s, v))
    table = extract.run(load_config(project, "ds", overrides=SMALL + ["parallel.n_jobs=2"]), paths)
    assert computed == ["a", "b", "c", "short", "broken"]  # here, not in a worker: "quiet" was skipped
    assert table["status"].tolist() == ["ok", "ok", "ok", "too_short", "error", "skipped"]


def test_large_arrays_stream_into_the_same_npy_bytes(setup, monkeypatch):
    project, paths = setup
    cfg = load_config(project, "ds", overrides=SMALL)
    extract.run(cfg, paths)
    in_memory = {p: p.read_bytes() for p in paths.features.rglob("*.npy")}
    for p in in_memory:
        p.unlink()
    monkeypatch.setattr(extract, "NPY_IN_MEMORY_BYTES", 0)  # every array written through write_npy
    extract.run(cfg, paths)
    assert {p: p.read_bytes() for p in paths.features.rglob("*.npy")} == in_memory


def test_workers_import_no_scikit_learn():
    """Each worker process imports this module to find its function: scikit-learn would add a second."""
    code = "import sys, audioclust.stages.extract; print(sorted(m for m in ('sklearn', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_failure_before_the_marker_leaves_no_trusted_output(setup, monkeypatch):
    project, paths = setup
    cfg = load_config(project, "ds", overrides=SMALL)
    real = extract.png_bytes
    calls = {"n": 0}

    def failing(image, **kw):  # the 3rd PNG of file b fails: its NPYs are already written
        calls["n"] += 1
        if calls["n"] == 5 + 3:
            raise OSError("disk full")
        return real(image, **kw)

    monkeypatch.setattr(extract, "png_bytes", failing)
    table = extract.run(cfg, paths)
    assert table.loc[1, "status"] == "error" and "disk full" in table.loc[1, "reason"]
    assert not (paths.features / ".extract_done" / "high" / "b.json").exists()
    assert not paths.feature_file("spectrogram", "high", "b", ".npy").exists()  # partial outputs removed
    monkeypatch.setattr(extract, "png_bytes", real)
    assert extract.run(cfg, paths).loc[1, "status"] == "ok"


def test_outputs_of_files_that_left_the_table_are_removed(setup):
    project, paths = setup
    cfg = load_config(project, "ds", overrides=SMALL)
    extract.run(cfg, paths)
    leftover = paths.feature_file("mel", "low", ".a.npy.x1y2.tmp", "")  # temp file of a killed run
    leftover.write_bytes(b"half")
    table = pd.read_csv(paths.transformed_csv, dtype=str, keep_default_na=False)
    table[table["stem"] != "a"].to_csv(paths.transformed_csv, index=False)
    extract.run(cfg, paths)
    assert not paths.feature_file("mel", "low", "a", ".npy").exists()
    assert not paths.feature_file("spectrogram", "low", "a", ".png").exists()
    assert not (paths.features / ".extract_done" / "low" / "a.json").exists()
    assert not leftover.exists()
    assert paths.feature_file("mel", "high", "b", ".npy").exists()
