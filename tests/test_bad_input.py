"""Bad and unusual input through stages 01 and 02: every file gets a row, the stages finish.

One project holds every case; both stages run once (module fixture) and each case is
checked against the two tables. Without ffmpeg an .m4a file is an error that says so
(ffmpeg is reported missing here even where it is installed, to make that case exact).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import REPO, tone

from audioclust import results
from audioclust.config import load_config
from audioclust.core.paths import ProjectPaths
from audioclust.dsp import decode as audio
from audioclust.stages import metadata, transform

SR = 22050
HAS_MP3 = "MP3" in sf.available_formats()


def _write(path: Path, y: np.ndarray, sr: int = SR, subtype: str = "PCM_16", **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype=subtype, **kw)


def _build(raw: Path) -> bool:
    """Write every case into ``raw``; return whether a non-UTF-8 file name could be made."""
    t440 = tone(440.0, 0.5, SR)
    _write(raw / "errors" / "full.wav", t440)
    full = (raw / "errors" / "full.wav").read_bytes()
    (raw / "errors" / "full.wav").unlink()
    (raw / "errors" / "zero.wav").write_bytes(b"")
    (raw / "errors" / "truncated.wav").write_bytes(full[: len(full) // 3])
    (raw / "errors" / "text.wav").write_text("these are field notes, not audio\n" * 20)
    _write(raw / "errors" / "header_only.wav", np.zeros(0, np.float32))
    (raw / "errors" / "song.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(512))
    (raw / "errors" / "dangling.wav").symlink_to(raw / "errors" / "moved_away.wav")
    # links that loop sit next to a good file in their folder: the folder must still be listed
    (raw / "loops").mkdir()
    (raw / "loops" / "self.wav").symlink_to("self.wav")
    (raw / "loops" / "ping.wav").symlink_to("pong.wav")
    (raw / "loops" / "pong.wav").symlink_to("ping.wav")
    _write(raw / "loops" / "good.wav", t440)

    _write(raw / "levels" / "silent.wav", np.zeros(SR // 2, np.float32))
    _write(raw / "levels" / "short.wav", tone(440.0, 100 / SR, SR))  # 100 samples: less than one FFT frame
    nan = t440.copy()
    nan[[10, 500, 7000]] = [np.nan, np.inf, -np.inf]
    _write(raw / "levels" / "nan.wav", nan, subtype="FLOAT")
    _write(raw / "levels" / "all_nan.wav", np.full(1000, np.nan, np.float32), subtype="FLOAT")
    _write(raw / "levels" / "overload.wav", 4 * t440, subtype="FLOAT")  # peak 2.0: twice full scale

    _write(raw / "channels" / "stereo.wav", np.stack([t440, 0.5 * t440], axis=1))
    _write(raw / "channels" / "six.wav", np.stack([t440 * k / 6 for k in range(6)], axis=1), subtype="PCM_24")

    _write(raw / "depths" / "u8.wav", t440, subtype="PCM_U8")
    _write(raw / "depths" / "s24.wav", t440, subtype="PCM_24")
    _write(raw / "depths" / "s32.wav", t440, subtype="PCM_32")
    _write(raw / "depths" / "float.wav", t440, subtype="FLOAT")
    _write(raw / "rates" / "hi 96k.wav", tone(440.0, 0.25, 96000), sr=96000)

    _write(raw / "formats" / "a.flac", t440)
    _write(raw / "formats" / "a.ogg", t440, subtype="VORBIS")
    if HAS_MP3:
        _write(raw / "formats" / "a.mp3", t440, subtype="MPEG_LAYER_III")
    _write(raw / "formats" / "LOUD.WAV", t440)

    _write(raw / "names" / "mi canción ñ.wav", t440)
    _write(raw / "names" / "日本語 ファイル.wav", t440)
    _write(raw / "names" / "what?.wav", t440)
    (raw / "names" / "readme.txt").write_text("notes")
    (raw / "names" / ".DS_Store").write_bytes(b"\x00")
    _write(raw / "names" / ".hidden.wav", t440)
    _write(raw / ".git" / "x.wav", t440)

    _write(raw / "nested" / "deep.wav", t440)
    _write(raw / "nested" / "a" / "b" / "c" / "deep.wav", t440)
    try:
        fd = os.open(os.fsencode(raw / "errors") + b"/bad \xff name.wav", os.O_WRONLY | os.O_CREAT)
        os.write(fd, full)
        os.close(fd)
        return True
    except OSError:  # a file system that insists on UTF-8 names
        return False


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_project")
    (root / "configs").mkdir()
    (root / "configs" / "default.yaml").write_text((REPO / "configs" / "default.yaml").read_text())
    paths = ProjectPaths(root, "bad")
    bad_name = _build(paths.raw)
    cfg = load_config(root, "bad", overrides={"parallel.n_jobs": 1})
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("audioclust")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(audio, "ffmpeg_executable", lambda: None)
            meta = metadata.run(cfg, paths)
            trans = transform.run(cfg, paths)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    log_text = "\n".join(r.getMessage() for r in records)
    return {"paths": paths, "meta": meta.set_index("path"), "trans": trans.set_index("source_path"),
            "log": log_text, "bad_name": bad_name}


def _rows(staged, rel: str) -> tuple[pd.Series, pd.Series]:
    key = f"datasets/bad/{rel}"
    return staged["meta"].loc[key], staged["trans"].loc[key]


def _out(staged, row: pd.Series) -> tuple[np.ndarray, int]:
    return sf.read(staged["paths"].abs(row["path"]), dtype="float32")


@pytest.mark.parametrize("rel, status, reason", [
    ("errors/zero.wav", "empty", "empty file (0 bytes)"),
    ("errors/header_only.wav", "empty", "no audio frames"),
    ("errors/truncated.wav", "error", "truncated WAV: its header announces 22050 bytes"),
    ("errors/text.wav", "error", "the file holds text, not audio"),
    ("errors/song.m4a", "error", "format .m4a needs ffmpeg, which is not installed: pip install imageio-ffmpeg"),
    ("errors/dangling.wav", "error", "broken symbolic link"),
    ("loops/self.wav", "error", "cannot read the file: Too many levels of symbolic links"),
    ("loops/ping.wav", "error", "cannot read the file: Too many levels of symbolic links"),
])
def test_unreadable_files_are_rows_with_a_reason(staged, rel, status, reason):
    meta, trans = _rows(staged, rel)
    assert meta["status"] == status
    assert reason in meta["reason"]
    assert trans["status"] == "skipped" and trans["path"] == ""
    assert trans["reason"] == f"stage 01 status {status}: {meta['reason']}"


def test_a_folder_with_looping_links_keeps_its_good_files(staged):
    meta, trans = _rows(staged, "loops/good.wav")
    assert meta["status"] == "ok" and trans["status"] == "ok"
    assert sorted(k for k in staged["meta"].index if k.startswith("datasets/bad/loops/")) == [
        f"datasets/bad/loops/{n}.wav" for n in ("good", "ping", "pong", "self")]


def test_a_non_utf8_file_name_is_an_error_row(staged):
    if not staged["bad_name"]:
        pytest.skip("this file system does not allow non-UTF-8 names")
    rows = staged["meta"][staged["meta"]["reason"].str.contains("not valid UTF-8")]
    assert len(rows) == 1 and rows.iloc[0]["status"] == "error" and "rename the file" in rows.iloc[0]["reason"]
    assert staged["trans"].loc[rows.index[0], "status"] == "skipped"


def test_silent_and_all_nan_files_are_silent(staged):
    for rel, nonfinite in [("levels/silent.wav", 0), ("levels/all_nan.wav", 1000)]:
        meta, trans = _rows(staged, rel)
        assert meta["status"] == "ok"
        assert trans["status"] == "silent" and trans["path"] == "" and trans["nonfinite"] == nonfinite
        assert "below audio.silence_db (-60 dBFS)" in trans["reason"]
    assert not (staged["paths"].wav / "levels" / "silent.wav").exists()


def test_a_file_shorter_than_an_fft_frame_passes_stage_02(staged):
    meta, trans = _rows(staged, "levels/short.wav")
    assert meta["frames"] == 100
    assert trans["status"] == "ok" and trans["duration"] == pytest.approx(100 / SR)
    y, _ = _out(staged, trans)
    assert len(y) == 100


def test_non_finite_samples_are_replaced_and_counted(staged):
    _, trans = _rows(staged, "levels/nan.wav")
    assert trans["status"] == "ok" and trans["nonfinite"] == 3
    y, _ = _out(staged, trans)
    assert np.isfinite(y).all()
    assert "2 file(s) held NaN/inf samples, replaced by 0 (1003 samples)" in staged["log"]  # nan.wav + all_nan.wav


def test_beyond_full_scale_is_kept_not_wrapped(staged):
    _, trans = _rows(staged, "levels/overload.wav")
    y, _ = _out(staged, trans)
    ref = tone(440.0, 0.5, SR)
    assert np.max(y) == pytest.approx(2.0, abs=0.02)
    assert np.corrcoef(y, ref)[0, 1] > 0.999  # same waveform, no sign flips from wrap-around


@pytest.mark.parametrize("rel, channels, amplitude", [
    ("channels/stereo.wav", 2, 0.75 * 0.5),              # mean of 0.5 and 0.25
    ("channels/six.wav", 6, 0.5 * (0 + 1 + 2 + 3 + 4 + 5) / 36),  # mean of k/6 * 0.5
])
def test_multichannel_is_mixed_to_the_mean(staged, rel, channels, amplitude):
    meta, trans = _rows(staged, rel)
    assert meta["channels"] == channels and trans["status"] == "ok"
    y, sr = _out(staged, trans)
    assert y.ndim == 1 and sr == SR
    assert np.max(np.abs(y[200:-200])) == pytest.approx(amplitude, rel=0.01)


@pytest.mark.parametrize("rel, subtype, lsb", [
    ("depths/u8.wav", "PCM_U8", 2 ** -7), ("depths/s24.wav", "PCM_24", 2 ** -23),
    ("depths/s32.wav", "PCM_32", 2 ** -31), ("depths/float.wav", "FLOAT", 0.0),
    ("formats/a.flac", "PCM_16", 2 ** -15), ("formats/LOUD.WAV", "PCM_16", 2 ** -15),
])
def test_sample_formats_decode_to_the_tone(staged, rel, subtype, lsb):
    meta, trans = _rows(staged, rel)
    assert meta["status"] == "ok" and meta["subtype"] == subtype and meta["frames"] == SR // 2
    assert trans["status"] == "ok"
    y, _ = _out(staged, trans)
    # 440 Hz is in the pass band: the output is the input within the quantisation step and the filter's ripple
    assert np.max(np.abs(y[500:-500] - tone(440.0, 0.5, SR)[500:-500])) < 1e-3 + lsb


@pytest.mark.parametrize("rel", ["formats/a.ogg", "formats/a.mp3"])
def test_compressed_formats(staged, rel):
    if rel.endswith("mp3") and not HAS_MP3:
        pytest.skip("this libsndfile cannot write MP3")
    meta, trans = _rows(staged, rel)
    assert meta["status"] == "ok" and trans["status"] == "ok"
    y, sr = _out(staged, trans)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(spectrum)] == pytest.approx(440.0, abs=3.0)


def test_96_khz_is_resampled(staged):
    meta, trans = _rows(staged, "rates/hi 96k.wav")
    assert (meta["sample_rate"], meta["frames"]) == (96000, 24000)
    # ceil(24000 * 22050 / 96000) = ceil(5512.5) = 5513 frames
    assert trans["status"] == "ok" and trans["sample_rate"] == SR and trans["duration"] == pytest.approx(5513 / SR)
    y, sr = _out(staged, trans)
    assert len(y) == 5513
    assert np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(np.abs(np.fft.rfft(y)))] == pytest.approx(440.0, abs=4.0)


def test_names_with_spaces_and_non_ascii(staged):
    for rel, stem in [("names/mi canción ñ.wav", "mi canción ñ"), ("names/日本語 ファイル.wav", "日本語 ファイル"),
                      ("names/what?.wav", "what_"), ("rates/hi 96k.wav", "hi 96k")]:
        meta, trans = _rows(staged, rel)
        assert meta["stem"] == stem and trans["status"] == "ok"
        assert trans["path"] == f"datasets/bad_wav/{rel.split('/')[0]}/{stem}.wav"
        assert staged["paths"].abs(trans["path"]).is_file()
    # the CSV round-trips the names
    back = results.read_metadata(staged["paths"].transformed_csv)
    assert "datasets/bad/names/日本語 ファイル.wav" in back["source_path"].tolist()


def test_nested_folders_get_unique_stems(staged):
    assert _rows(staged, "nested/deep.wav")[0]["stem"] == "deep"
    assert _rows(staged, "nested/a/b/c/deep.wav")[0]["stem"] == "a__b__c__deep"
    assert (staged["paths"].wav / "nested" / "a__b__c__deep.wav").is_file()


def test_hidden_and_other_files_are_skipped(staged):
    paths = staged["meta"].index.tolist()
    assert not any("/." in p for p in paths)
    assert not any(p.endswith(".txt") for p in paths)
    assert "skipped: 3 hidden, 1 other extension" in staged["log"]


def test_every_file_has_a_row_and_the_summaries_are_logged(staged):
    meta, trans = staged["meta"], staged["trans"]
    expected = 30 + HAS_MP3 + staged["bad_name"]
    assert len(meta) == len(trans) == expected
    assert trans.index.tolist() == meta.index.tolist()
    counts = meta["status"].value_counts().to_dict()
    assert counts == {"ok": expected - 9 - staged["bad_name"], "error": 7 + staged["bad_name"], "empty": 2}
    assert f"metadata: {expected} file(s) → metadata/bad/metadata.csv" in staged["log"]
    tcounts = trans["status"].value_counts().to_dict()
    assert tcounts == {"ok": counts["ok"] - 2, "skipped": 9 + staged["bad_name"], "silent": 2}
    assert f"transform: {expected} file(s) → metadata/bad/metadata_transformed.csv" in staged["log"]
    # only ok rows have a WAV
    wavs = sorted(p.relative_to(staged["paths"].root).as_posix() for p in staged["paths"].wav.rglob("*.wav"))
    assert wavs == sorted(trans.loc[trans["status"] == "ok", "path"])
