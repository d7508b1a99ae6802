"""containers.py and decode-based validation: files from real encoders pass with their true
length; files cut off are reported, for every format whose header can lie."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audioclust.config import load_config
from audioclust.core.errors import AudioReadError
from audioclust.core.paths import ProjectPaths
from audioclust.dsp import containers
from audioclust.dsp import decode as audio
from audioclust.stages import metadata, transform

SR = 44100
N = 3 * SR + 777  # not a whole number of MPEG frames, so encoder padding is at work

needs_lame = pytest.mark.skipif(shutil.which("lame") is None,
                                reason="the lame encoder is not installed (apt-get install lame; .ci/run does)")


def _loud_then_soft(n: int = N, sr: int = SR) -> np.ndarray:
    """A note that starts loud and bright and decays: a VBR encoder spends most bits on the first frames."""
    t = np.arange(n) / sr
    rng = np.random.default_rng(0)
    y = np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t) + 0.3 * rng.standard_normal(n) * np.exp(-30 * t)
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def _cover_art(path: Path) -> Path:
    """A 300 x 300 PNG of noise (~270 kB): tags with cover art are common in real libraries."""
    from PIL import Image
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(path)
    return path


def _lame(tmp: Path, name: str, *options: str) -> Path:
    wav, out = tmp / "source.wav", tmp / name
    if not wav.exists():
        sf.write(wav, _loud_then_soft(), SR, subtype="PCM_16")
    subprocess.run(["lame", "--quiet", *options, str(wav), str(out)], check=True)
    return out


# name, lame options, whether a LAME tag gives the encoder delay and padding (then the length is exact)
ENCODINGS = [
    ("cbr_info.mp3", ["-b", "128"], True),
    ("vbr_xing.mp3", ["-V", "2"], True),
    ("cbr_untagged.mp3", ["-b", "128", "-t"], False),
    ("mono_22k.mp3", ["-b", "64", "--resample", "22.05", "-m", "m"], True),
]


@needs_lame
@pytest.mark.parametrize("name, options, gapless", ENCODINGS)
@pytest.mark.parametrize("art", [False, True], ids=["plain", "cover-art"])
def test_mp3s_from_a_real_encoder_pass_with_their_true_length(tmp_path, name, options, gapless, art):
    options = [*options, "--ti", str(_cover_art(tmp_path / "art.png"))] if art else options
    path = _lame(tmp_path, name, *options)
    info = audio.probe(path)
    y, sr = audio.load_audio(path)
    rate = 22050 if "22.05" in options else SR
    n = N * rate // SR
    assert sr == info["sample_rate"] == rate
    assert y.shape[1] == info["frames"]  # stage 01's length is the decoded one
    spf = 576 if rate < 32000 else 1152
    if gapless:
        assert abs(info["frames"] - n) <= 1  # the LAME tag's delay and padding give the exact length
    else:
        assert n <= info["frames"] <= n + 2 * spf  # whole MPEG frames, encoder delay included
    if art and not gapless:  # without a frame count in a tag, libsndfile's guess counts the picture as audio
        assert sf.info(path).frames > 2 * info["frames"]


@needs_lame
def test_a_vbr_mp3_without_xing_header_is_read_whole_by_ffmpeg(tmp_path, monkeypatch):
    path = _lame(tmp_path, "vbr_untagged.mp3", "-V", "2", "-t")
    layout = containers.mp3_layout(path)
    assert layout.reason is None and layout.tag_frames is None
    assert N <= layout.frames <= N + 2 * 1152
    # libsndfile's estimate from the loud first frame is far too short and it would stop there
    assert sf.info(path).frames < N / 2
    # ffmpeg (the imageio-ffmpeg package's) decodes every MPEG frame; the length is the walked one
    info = audio.probe(path)
    y, sr = audio.load_audio(path)
    assert info["subtype"] == "ffmpeg" and info["frames"] == layout.frames and sr == info["sample_rate"] == SR
    assert abs(y.shape[1] - layout.frames) <= 1152
    signal = _loud_then_soft()   # what _lame encoded
    lag = int(np.argmax(np.correlate(y[0, :4096], signal[:2048], mode="valid")))
    assert np.corrcoef(y[0, lag:lag + N // 2], signal[:N // 2])[0, 1] > 0.99
    # without any ffmpeg the file is an error that says what would read it, never a silently cut file
    monkeypatch.setattr(audio, "ffmpeg_executable", lambda: None)
    for func in (audio.probe, audio.load_audio):
        with pytest.raises(AudioReadError, match=r"MP3 without a Xing header\); ffmpeg would read it: "
                                                 "pip install imageio-ffmpeg"):
            func(path)


@needs_lame
@pytest.mark.parametrize("name, options, message", [
    ("cbr_info.mp3", ["-b", "128"], r"its Xing header counts 117 MPEG frames but the file holds 69 \(59%\)"),
    ("vbr_xing.mp3", ["-V", "2"], "its Xing header counts 117 MPEG frames"),
    ("cbr_untagged.mp3", ["-b", "128", "-t"], "it ends inside an MPEG frame"),
])
def test_cut_off_mp3s_are_reported(tmp_path, name, options, message):
    raw = _lame(tmp_path, name, *options).read_bytes()
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(raw[: int(len(raw) * 0.6) | 1])  # odd: never on a frame boundary
    for func in (audio.probe, audio.load_audio):
        with pytest.raises(AudioReadError, match=message):
            func(cut)


def test_mpeg_header_fields_by_hand():
    # MPEG-1 layer III, 128 kbit/s, 44.1 kHz, no padding, joint stereo: 144 * 128000 / 44100 = 417 bytes
    frame = containers.parse_mpeg_header(b"\xff\xfb\x90\x64", 0)
    assert (frame.version, frame.layer, frame.sample_rate, frame.length, frame.samples, frame.channels) == \
        (3, 3, 44100, 417, 1152, 2)
    # the same with the padding bit: one byte more; MPEG-2 layer III 64 kbit/s 22.05 kHz mono: 72 * 64000 / 22050
    assert containers.parse_mpeg_header(b"\xff\xfb\x92\x64", 0).length == 418
    mpeg2 = containers.parse_mpeg_header(b"\xff\xf3\x80\xc4", 0)
    assert (mpeg2.sample_rate, mpeg2.length, mpeg2.samples, mpeg2.channels) == (22050, 208, 576, 1)
    assert containers.parse_mpeg_header(b"\xff\xfb\xf0\x64", 0) is None  # bit-rate index 15 is invalid
    assert containers.parse_mpeg_header(b"ID3\x04", 0) is None


def _tone(seconds: float = 2.0, sr: int = 16000) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


@pytest.mark.parametrize("subtype, ext", [("VORBIS", "ogg"), ("OPUS", "opus")])
def test_ogg_streams_cut_inside_or_between_pages_are_reported(tmp_path, subtype, ext):
    whole = tmp_path / f"a.{ext}"
    sf.write(whole, _tone(), 16000, format="OGG", subtype=subtype)
    assert audio.probe(whole)["frames"] == 32000 and containers.ogg_truncation(whole) is None
    raw = whole.read_bytes()
    inside = tmp_path / f"inside.{ext}"
    inside.write_bytes(raw[: int(len(raw) * 0.6)])
    with pytest.raises(AudioReadError, match=f"truncated .{ext} file: it ends inside Ogg page"):
        audio.probe(inside)
    # cut exactly after a page that is not the last: libsndfile would report the shorter stream as whole
    last_page = raw.rfind(b"OggS")
    between = tmp_path / f"between.{ext}"
    between.write_bytes(raw[:last_page])
    with pytest.raises(AudioReadError, match="does not end the stream"):
        audio.load_audio(between)


def _flac_without_sample_count(path: Path, raw: bytes) -> None:
    data = bytearray(raw)
    data[8 + 13] &= 0xF0  # STREAMINFO's 36-bit total samples: 0 means unknown (streamed encoders)
    data[8 + 14:8 + 18] = b"\0\0\0\0"
    path.write_bytes(bytes(data))


def test_a_flac_stream_without_sample_count_is_measured_by_decoding(tmp_path):
    sf.write(tmp_path / "a.flac", _tone(), 16000, subtype="PCM_16")
    raw = (tmp_path / "a.flac").read_bytes()
    _flac_without_sample_count(tmp_path / "stream.flac", raw)
    assert sf.info(tmp_path / "stream.flac").frames > 1 << 60  # libsndfile: unknown
    assert audio.probe(tmp_path / "stream.flac")["frames"] == 32000
    y, _ = audio.load_audio(tmp_path / "stream.flac")
    np.testing.assert_allclose(y[0], audio.load_audio(tmp_path / "a.flac")[0][0])
    _flac_without_sample_count(tmp_path / "cut.flac", raw[: len(raw) // 2])
    with pytest.raises(AudioReadError, match="damaged .flac file: decoding failed"):
        audio.probe(tmp_path / "cut.flac")


@pytest.mark.parametrize("fmt, ext, message", [
    ("AIFF", "aiff", r"truncated AIFF: its header announces 32000 sample frames but the file holds only 19189"),
    ("WAV", "wav", r"truncated WAV: its header announces 64000 bytes of audio but the file holds only 38382"),
])
def test_uncompressed_files_whose_header_announces_more_are_reported(tmp_path, fmt, ext, message):
    sf.write(tmp_path / f"a.{ext}", _tone(), 16000, format=fmt, subtype="PCM_16")
    raw = (tmp_path / f"a.{ext}").read_bytes()
    (tmp_path / f"cut.{ext}").write_bytes(raw[: int(len(raw) * 0.6)])
    assert audio.probe(tmp_path / f"a.{ext}")["frames"] == 32000
    for func in (audio.probe, audio.load_audio):
        with pytest.raises(AudioReadError, match=message):
            func(tmp_path / f"cut.{ext}")


@needs_lame
def test_a_folder_of_real_encoder_mp3s_goes_through_stages_01_and_02_with_true_durations(project):
    raw = project / "datasets" / "notes"
    (raw / "piano").mkdir(parents=True)
    art = _cover_art(project / "art.png")
    for name, options, _ in ENCODINGS:
        _lame(raw / "piano", name, *options, "--ti", str(art))
    (raw / "piano" / "source.wav").unlink()
    cfg = load_config(project, "notes", overrides={"parallel.n_jobs": 1})
    paths = ProjectPaths(project, "notes")
    meta = metadata.run(cfg, paths).set_index("name")
    assert (meta["status"] == "ok").all(), meta["reason"].tolist()
    assert meta.loc["cbr_info.mp3", "frames"] == N and abs(meta.loc["mono_22k.mp3", "frames"] - N / 2) <= 1
    wav = transform.run(cfg, paths).set_index("name")
    assert (wav["status"] == "ok").all()
    # stage 02 resamples to audio.sample_rate: each duration is the source's 3.0176 s (untagged: + encoder delay)
    np.testing.assert_allclose(wav["duration"].astype(float), pd.Series(N / SR, index=wav.index), atol=0.06)
