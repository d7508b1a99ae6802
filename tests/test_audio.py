"""audio.py: decoding, mono, resampling, the zero-phase low-pass, WAV writing."""

from __future__ import annotations

import logging
import subprocess

import numpy as np
import pytest
import soundfile as sf
from conftest import tone
from scipy import signal

from audioclust.core.errors import AudioReadError
from audioclust.dsp import decode as audio
from audioclust.dsp import filters

SR = 22050


def _gain_db(freq: float, cutoff: float = 2000.0, order: int = 8, sr: int = SR) -> float:
    """Measured gain of the low-pass on a 1 s sine, away from the edges."""
    x = tone(freq, seconds=1.0, sr=sr, amp=0.5)
    y = filters.lowpass(x, sr=sr, cutoff=cutoff, order=order)
    mid = slice(sr // 4, 3 * sr // 4)
    return 20 * np.log10(np.sqrt(np.mean(y[mid].astype(np.float64) ** 2)) / np.sqrt(np.mean(x[mid] ** 2.0)))


def _digital_butterworth_db(freq: float, cutoff: float, order: int, sr: int) -> float:
    """Forward-backward Butterworth gain: twice 10 log10 1/(1 + (tan(pi f/fs)/tan(pi fc/fs))^(2n))."""
    ratio = np.tan(np.pi * freq / sr) / np.tan(np.pi * cutoff / sr)
    return -20 * np.log10(1 + ratio ** (2 * order))


def test_lowpass_is_minus_6_db_at_the_cutoff():
    # one Butterworth pass is -3.01 dB at the cutoff; forward + backward squares it
    assert _gain_db(2000.0) == pytest.approx(-6.02, abs=0.1)


def test_lowpass_passband_is_flat():
    assert _gain_db(500.0) == pytest.approx(0.0, abs=0.01)
    assert _gain_db(1000.0) == pytest.approx(0.0, abs=0.05)


def test_lowpass_stopband_follows_the_butterworth_formula():
    expected = _digital_butterworth_db(3000.0, 2000.0, 8, SR)
    assert expected == pytest.approx(-61.4, abs=0.1)  # 2 * 10 log10(1 + 1.5556^16)
    assert _gain_db(3000.0) == pytest.approx(expected, abs=0.5)
    # an octave above the cutoff: 2 * 48 dB for order 8, far below -40 dB
    assert _gain_db(4000.0) < -80.0


def test_lowpass_attenuation_on_a_chirp():
    """The envelope of a filtered linear chirp, read at the instants it crosses 1, 2 and 3 kHz."""
    t = np.arange(2 * SR) / SR
    x = signal.chirp(t, f0=100.0, t1=2.0, f1=5000.0, method="linear").astype(np.float32)
    y = filters.lowpass(x, sr=SR, cutoff=2000.0, order=8)
    envelope = np.abs(signal.hilbert(y.astype(np.float64)))
    for freq, expected in [(1000.0, 0.0), (2000.0, -6.02), (2600.0, _digital_butterworth_db(2600.0, 2000.0, 8, SR))]:
        at = int((freq - 100.0) / 4900.0 * 2.0 * SR)
        level = 20 * np.log10(np.median(envelope[at - 20:at + 20]))
        assert level == pytest.approx(expected, abs=0.5), freq


def test_lowpass_has_zero_phase():
    x = tone(300.0, seconds=1.0, sr=SR) + tone(700.0, seconds=1.0, sr=SR, amp=0.3)
    lags = np.arange(-20, 21)

    def best_lag(y: np.ndarray) -> int:
        mid = slice(SR // 4, 3 * SR // 4)
        return int(lags[np.argmax([np.dot(x[mid], np.roll(y, -k)[mid]) for k in lags])])

    assert best_lag(filters.lowpass(x, sr=SR, cutoff=2000.0, order=8)) == 0
    # the same filter run once (causal) delays the signal: the check can fail
    causal = signal.sosfilt(signal.butter(8, 2000.0, fs=SR, output="sos"), x)
    assert best_lag(causal) > 0


def test_lowpass_keeps_shape_dtype_and_handles_tiny_signals():
    stereo = np.stack([tone(440.0), tone(880.0)])
    out = filters.lowpass(stereo, sr=SR, cutoff=2000.0, order=8)
    assert out.shape == stereo.shape and out.dtype == np.float32
    for n in (0, 1, 2, 5, 30):
        y = np.ones(n, dtype=np.float32)
        assert filters.lowpass(y, sr=SR, cutoff=2000.0, order=8).shape == (n,)


def test_lowpass_at_or_above_nyquist_is_skipped_with_a_warning(caplog):
    x = tone(440.0)
    with caplog.at_level(logging.WARNING, logger="audioclust.dsp.decode"):
        out = filters.lowpass(x, sr=SR, cutoff=SR / 2, order=8)
    assert np.array_equal(out, x)
    assert "Nyquist" in caplog.text
    assert np.array_equal(filters.lowpass(x, sr=SR, cutoff=None, order=8), x)


def test_resample_keeps_a_440_hz_tone_at_440_hz():
    for orig in (44100, 8000, 96000):
        y = filters.resample(tone(440.0, seconds=1.0, sr=orig), orig_sr=orig, target_sr=SR)
        assert y.dtype == np.float32
        assert len(y) == SR
        spectrum = np.abs(np.fft.rfft(y))
        assert np.fft.rfftfreq(len(y), 1 / SR)[np.argmax(spectrum)] == pytest.approx(440.0, abs=1.0)
        assert np.max(np.abs(y[100:-100])) == pytest.approx(0.5, abs=0.01)  # amplitude kept
    x = tone(440.0)
    assert filters.resample(x, orig_sr=SR, target_sr=SR) is x


def test_to_mono_is_the_mean_of_the_channels():
    left = np.array([1.0, 0.5, -1.0, 0.0], dtype=np.float32)
    right = np.array([0.0, 0.5, 1.0, -0.5], dtype=np.float32)
    assert np.array_equal(filters.to_mono(np.stack([left, right])), [0.5, 0.5, 0.0, -0.25])
    assert np.array_equal(filters.to_mono(left), left)
    assert filters.to_mono(np.zeros((6, 10))).shape == (10,)


def test_sanitize_replaces_non_finite_samples():
    y, n = filters.sanitize(np.array([np.nan, 0.5, np.inf, -np.inf, -0.25], dtype=np.float32))
    assert n == 3
    assert np.array_equal(y, [0.0, 0.5, 0.0, 0.0, -0.25])
    clean = tone(100.0)
    same, n = filters.sanitize(clean)
    assert n == 0 and same is clean


def test_peak_db():
    assert filters.peak_db(np.array([0.0, -0.5, 0.25])) == pytest.approx(-6.0206, abs=1e-4)
    assert filters.peak_db(np.array([1.0])) == 0.0
    assert filters.peak_db(np.zeros(10)) == float("-inf")
    assert filters.peak_db(np.zeros(0)) == float("-inf")


@pytest.mark.parametrize("subtype, bits", [("PCM_U8", 8), ("PCM_16", 16), ("PCM_24", 24), ("PCM_32", 32),
                                           ("FLOAT", None)])
def test_wav_depths_decode_to_the_same_values_within_one_lsb(tmp_path, subtype, bits):
    x = tone(440.0, seconds=0.1, amp=0.9)
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, x, SR, subtype=subtype)
    y, sr = audio.load_audio(path)
    assert sr == SR and y.shape == (1, len(x)) and y.dtype == np.float32
    lsb = 2.0 ** -(bits - 1) if bits else 1e-7
    assert np.max(np.abs(y[0] - x)) <= lsb * 1.01


def test_integer_codes_map_to_full_scale(tmp_path):
    codes = np.array([-32768, -16384, -1, 0, 1, 16384, 32767], dtype=np.int16)
    sf.write(tmp_path / "a.wav", codes, SR, subtype="PCM_16")
    y, _ = audio.load_audio(tmp_path / "a.wav")
    assert np.array_equal(y[0], codes / 32768.0)


def test_write_wav_float_keeps_values_beyond_full_scale(tmp_path):
    y = np.array([0.0, 0.5, 1.0, 1.5, -1.5, 2.0, -1.0], dtype=np.float32)
    audio.write_wav(tmp_path / "f.wav", y, sr=SR)
    back, sr = sf.read(tmp_path / "f.wav", dtype="float32")
    assert sr == SR and sf.info(tmp_path / "f.wav").subtype == "FLOAT"
    assert np.array_equal(back, y)


def test_write_wav_pcm_saturates_instead_of_wrapping(tmp_path):
    y = np.array([0.0, 0.5, 1.0, 1.5, -1.5, 2.0, -1.0], dtype=np.float32)
    audio.write_wav(tmp_path / "p.wav", y, sr=SR, subtype="PCM_16")
    back = sf.read(tmp_path / "p.wav", dtype="int16")[0]
    # +1.0, +1.5 and +2.0 stay at the positive maximum; a wrap would give -32768
    assert back.tolist() == [0, 16384, 32767, 32767, -32768, 32767, -32768]


def test_write_wav_is_atomic_mono_and_creates_folders(tmp_path):
    out = tmp_path / "a" / "b" / "x.wav"
    audio.write_wav(out, tone(440.0)[None, :], sr=SR)
    assert sf.info(out).channels == 1
    assert [p.name for p in out.parent.iterdir()] == ["x.wav"]  # no temporary file left
    with pytest.raises(ValueError, match="mono"):
        audio.write_wav(tmp_path / "s.wav", np.zeros((2, 10)), sr=SR)
    assert not (tmp_path / "s.wav").exists()


def test_load_audio_multichannel_is_channels_by_frames(tmp_path):
    data = np.stack([tone(440.0, 0.1), -tone(440.0, 0.1), np.zeros(2205, np.float32)], axis=1)
    sf.write(tmp_path / "c.flac", data, SR, subtype="PCM_24")
    y, _ = audio.load_audio(tmp_path / "c.flac")
    assert y.shape == (3, 2205)
    assert np.allclose(y[1], -y[0], atol=2 ** -22)


def test_probe_reads_the_header(tmp_path):
    sf.write(tmp_path / "s.wav", np.zeros((4410, 2), np.float32), 44100, subtype="PCM_24")
    assert audio.probe(tmp_path / "s.wav") == {"duration": 0.1, "sample_rate": 44100, "channels": 2,
                                               "frames": 4410, "subtype": "PCM_24"}


def _wav_bytes(tmp_path) -> bytes:
    sf.write(tmp_path / "full.wav", tone(440.0, 0.5), SR, subtype="PCM_16")
    return (tmp_path / "full.wav").read_bytes()


@pytest.mark.parametrize("func", [audio.load_audio, audio.probe])
def test_bad_files_raise_with_a_precise_reason(tmp_path, func, monkeypatch):
    monkeypatch.setattr(audio, "ffmpeg_executable", lambda: None)
    raw = _wav_bytes(tmp_path)
    cases = {
        "zero.wav": (b"", "empty file (0 bytes)"),
        # 44-byte header + 11025 frames * 2 bytes = 22094 bytes; cut at 11047 leaves 11047 - 44 = 11003 of 22050
        "cut.wav": (raw[: len(raw) // 2], "truncated WAV: its header announces 22050 bytes of audio but the file "
                                          "holds only 11003 (50%)"),
        "header.wav": (raw[:30], "No 'data' chunk"),
        "text.wav": (b"just some notes, not audio\n" * 5, "the file holds text, not audio"),
        "noise.flac": (bytes(range(256)) * 4, "cannot decode .flac file with libsndfile"),
        "song.m4a": (b"\x00\x00\x00\x20ftypM4A " + bytes(64), "format .m4a needs ffmpeg, which is not installed: "
                                                              "pip install imageio-ffmpeg or apt-get install ffmpeg"),
    }
    for name, (content, reason) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(AudioReadError) as err:
            func(tmp_path / name)
        assert reason in str(err.value), name
        assert "ffmpeg would read it" not in str(err.value), name   # a damaged file is not ffmpeg's to save
    with pytest.raises(AudioReadError, match="file not found"):
        func(tmp_path / "missing.wav")
    (tmp_path / "link.wav").symlink_to(tmp_path / "gone.wav")
    with pytest.raises(AudioReadError, match="broken symbolic link"):
        func(tmp_path / "link.wav")


@pytest.mark.parametrize("ext, reason", [
    ("flac", "truncated or damaged .flac file: its header announces 44100 frames"),
    ("mp3", "truncated .mp3 file: its Xing header counts"),
    ("ogg", "truncated .ogg file: it ends inside Ogg page 2"),
])
def test_probe_catches_a_truncated_compressed_file(tmp_path, ext, reason):
    if ext.upper() not in sf.available_formats():
        pytest.skip(f"this libsndfile cannot write {ext}")
    sf.write(tmp_path / f"a.{ext}", tone(440.0, 2.0), SR)
    raw = (tmp_path / f"a.{ext}").read_bytes()
    (tmp_path / f"cut.{ext}").write_bytes(raw[: len(raw) // 2])
    assert audio.probe(tmp_path / f"a.{ext}")["frames"] == 44100
    with pytest.raises(AudioReadError) as err:
        audio.probe(tmp_path / f"cut.{ext}")
    assert reason in str(err.value)


@pytest.mark.parametrize("ext", ["m4a", "wma"])
def test_formats_libsndfile_cannot_read_decode_with_the_packaged_ffmpeg(tmp_path, ext):
    """AAC in MP4 and WMA, encoded by the same ffmpeg, decode to the signal (after the codec's delay)."""
    data = np.stack([tone(440.0, 1.0, amp=0.5), tone(660.0, 1.0, amp=0.25)], axis=1)
    sf.write(tmp_path / "st.wav", data, SR, subtype="PCM_16")
    encode = [audio.ffmpeg_executable(), "-v", "error", "-i", str(tmp_path / "st.wav"), str(tmp_path / f"st.{ext}")]
    subprocess.run(encode, check=True)
    y, sr = audio.load_audio(tmp_path / f"st.{ext}")
    info = audio.probe(tmp_path / f"st.{ext}")
    assert sr == info["sample_rate"] == SR and y.shape[0] == info["channels"] == 2 and info["subtype"] == "ffmpeg"
    assert abs(y.shape[1] - SR) <= 2048 and abs(info["frames"] - SR) <= 2048
    for channel in range(2):
        lag = int(np.argmax(np.correlate(y[channel, :4096], data[:2048, channel], mode="valid")))
        assert np.corrcoef(y[channel, lag:lag + SR // 2], data[:SR // 2, channel])[0, 1] > 0.99


def test_ffmpeg_fallback_decodes_int16_channels(tmp_path):
    """The audioread path, through the ffmpeg of the pinned imageio-ffmpeg package, gives the soundfile result."""
    assert audio.ffmpeg_executable() is not None
    data = np.stack([tone(440.0, 0.1), tone(660.0, 0.1, amp=0.25)], axis=1)
    sf.write(tmp_path / "st.wav", data, SR, subtype="PCM_16")
    expected, _ = audio.load_audio(tmp_path / "st.wav")
    y, sr = audio._read_audioread(tmp_path / "st.wav", "soundfile failed")
    info = audio._probe_audioread(tmp_path / "st.wav", "soundfile failed")
    assert sr == SR and y.shape == (2, 2205) and y.dtype == np.float32
    assert np.array_equal(y, expected)
    assert info["channels"] == 2 and info["frames"] == 2205 and info["subtype"] == "ffmpeg"


@pytest.mark.parametrize("func", [audio.load_audio, audio.probe])
def test_random_bytes_are_an_error_with_the_packaged_ffmpeg(tmp_path, func):
    """libsndfile rejects random bytes named .flac and ffmpeg opens them with no audio stream (a sample rate of 0):
    a reason, not a division by zero."""
    assert audio.ffmpeg_executable() is not None
    (tmp_path / "random.flac").write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(AudioReadError) as err:
        func(tmp_path / "random.flac")
    assert str(err.value) == ("cannot decode .flac file with libsndfile: Format not recognised; "
                              "ffmpeg finds no audio stream in it either")
