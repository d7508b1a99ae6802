"""Feature functions on synthetic signals, against numbers worked out by hand (and librosa)."""

import io
import math
import pickle
import subprocess
import sys

import librosa
import numpy as np
import pytest
from conftest import tone

from audioclust.config import load_config
from audioclust.dsp import descriptors, extraction, images
from audioclust.dsp import features as F

SR = 22050


def params(features_config) -> dict:
    """The analysis keywords of a ``features`` config section."""
    return {k: getattr(features_config, k) for k in extraction.ANALYSIS_PARAMS}


def small_cfg(**over):
    values = {"features.n_fft": 512, "features.hop_length": 128, "features.n_mels": 40,
              "features.n_mfcc": 13, "features.n_chroma": 12}
    values.update({f"features.{k}": v for k, v in over.items()})
    return load_config(overrides=values).features


def test_shapes_and_dtype_for_given_parameters():
    y = tone(440.0, seconds=4000 / SR)  # 4000 samples -> 1 + 4000 // 128 = 32 frames
    feats, desc = extraction.analyse(y, sr=SR, **params(small_cfg()), cutoff=8192.0)
    assert list(feats) == ["spectrogram", "mel", "chroma", "mfcc", "mfcc_no_c0"]
    shapes = {k: v.shape for k, v in feats.items()}
    assert shapes == {"spectrogram": (257, 32), "mel": (40, 32), "chroma": (12, 32),
                      "mfcc": (13, 32), "mfcc_no_c0": (12, 32)}
    assert all(v.dtype == np.float32 for v in feats.values())
    assert set(desc) == set(descriptors.DESCRIPTORS)
    only = extraction.compute_features(y, sr=SR, **params(small_cfg(kinds=["chroma", "mel"])), cutoff=None)
    assert list(only) == ["chroma", "mel"]


def test_stft_magnitude_matches_librosa():
    y = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    ours = F.stft_magnitude(y, n_fft=1024, hop_length=256)
    ref = np.abs(librosa.stft(y=y, n_fft=1024, hop_length=256))
    assert ours.shape == ref.shape == (513, 1 + 5000 // 256)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-4 * ref.max())


def test_sine_spectrogram_peak_bin_and_level():
    n_fft, amp = 2048, 0.5
    y = tone(1000.0, seconds=1.0, amp=amp)
    cfg = small_cfg(n_fft=n_fft, hop_length=512, kinds=["spectrogram"])
    spec = extraction.compute_features(y, sr=SR, **params(cfg))["spectrogram"]
    middle = spec[:, 2:-2]  # frames that see the tone over the whole window
    peak_bin = int(np.argmax(middle.max(axis=1)))
    assert peak_bin == round(1000 * n_fft / SR) == 93
    # a sine of amplitude A puts A * sum(window) / 2 into its bin: 0.5 * 1024 / 2 = 256 -> 48.16 dB
    expected = 20 * math.log10(amp * F._window(n_fft).sum() / 2)
    assert expected == pytest.approx(48.16, abs=0.01)
    assert middle[peak_bin].max() == pytest.approx(expected, abs=0.5)


def test_levels_are_absolute_not_per_file():
    loud = extraction.compute_features(tone(1000.0, amp=0.5), sr=SR, **params(small_cfg(kinds=["spectrogram", "mel"])))
    quiet = extraction.compute_features(tone(1000.0, amp=0.25), sr=SR, **params(small_cfg(kinds=["spectrogram", "mel"])))
    for kind in ("spectrogram", "mel"):  # half the amplitude: -6.02 dB where the tone dominates
        assert loud[kind].max() - quiet[kind].max() == pytest.approx(20 * math.log10(2), abs=0.01)


def test_mel_peak_band_is_the_band_of_1khz():
    cfg = small_cfg(n_fft=2048, hop_length=512, n_mels=128, kinds=["mel"])
    mel = extraction.compute_features(tone(1000.0, seconds=1.0), sr=SR, **params(cfg), cutoff=8192.0)["mel"]
    peak = int(np.argmax(mel[:, 2:-2].mean(axis=1)))
    # Slaney mel: 1 kHz = 15 mel, 8192 Hz (fmax = the cutoff) = 15 + 27 ln(8.192) / ln(6.4) = 45.59 mel;
    # 128 band centres at (k + 1) * 45.59 / 129 mel -> 15 mel lies between bands 41 and 42, nearer 41
    assert peak == 41
    centres = librosa.mel_frequencies(n_mels=130, fmin=0.0, fmax=8192.0)[1:-1]
    assert abs(centres[peak] - 1000) < centres[peak + 1] - centres[peak]


def test_fmax_defaults_to_cutoff_then_nyquist():
    assert F.resolve_fmax(None, sr=22050, cutoff=8192.0) == 8192.0
    assert F.resolve_fmax(None, sr=16000, cutoff=10000.0) == 8000.0
    assert F.resolve_fmax(None, sr=16000, cutoff=None) == 8000.0
    assert F.resolve_fmax(5000.0, sr=22050, cutoff=8192.0) == 5000.0
    # a 6 kHz tone above a 4 kHz cutoff falls outside every mel band: the mel floor stays at -100 dB
    cfg = small_cfg(kinds=["mel"])
    mel = extraction.compute_features(tone(6000.0), sr=SR, **params(cfg), cutoff=4000.0)["mel"]
    assert mel[:, 2:-2].max() < -60


def test_chroma_of_a4_peaks_at_class_a():
    cfg = small_cfg(n_fft=4096, hop_length=1024, kinds=["chroma"])
    chroma = extraction.compute_features(tone(440.0, seconds=1.0), sr=SR, **params(cfg))["chroma"]
    classes = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    assert classes[int(np.argmax(chroma[:, 2:-2].mean(axis=1)))] == "A"
    assert chroma.max() == pytest.approx(1.0)  # normalised to max 1 per frame


def test_spectral_features_match_librosa_from_the_same_stft():
    rng = np.random.default_rng(1)
    y = (tone(300.0, seconds=0.7) + 0.05 * rng.standard_normal(int(0.7 * SR))).astype(np.float32)
    cfg = small_cfg(n_fft=1024, hop_length=256, n_mels=64, n_mfcc=20)
    feats = extraction.compute_features(y, sr=SR, **params(cfg), cutoff=None)
    mag = np.abs(librosa.stft(y=y, n_fft=1024, hop_length=256))
    mel_ref = librosa.power_to_db(librosa.feature.melspectrogram(S=mag**2, sr=SR, n_fft=1024, n_mels=64, fmax=SR / 2),
                                  ref=1.0, amin=1e-10, top_db=None)
    np.testing.assert_allclose(feats["mel"], mel_ref, atol=1e-3)
    ours = F.stft_magnitude(y, n_fft=1024, hop_length=256)  # float32 FFTs differ in the last bits
    np.testing.assert_allclose(feats["spectrogram"], librosa.amplitude_to_db(ours, ref=1.0, amin=1e-5, top_db=None),
                               atol=1e-4)
    np.testing.assert_allclose(feats["chroma"], librosa.feature.chroma_stft(S=mag**2, sr=SR, n_fft=1024, tuning=0.0),
                               atol=1e-5)
    np.testing.assert_allclose(feats["mfcc"], librosa.feature.mfcc(S=feats["mel"], n_mfcc=20), atol=1e-3)
    np.testing.assert_array_equal(feats["mfcc_no_c0"], feats["mfcc"][1:])


def test_descriptors_match_librosa_definitions():
    rng = np.random.default_rng(2)
    y = (tone(500.0, seconds=0.8) + tone(2500.0, seconds=0.8, amp=0.2)
         + 0.02 * rng.standard_normal(int(0.8 * SR))).astype(np.float32)
    mag = F.stft_magnitude(y, n_fft=2048, hop_length=512)
    mel_db = F.power_db(F.mel_power(mag**2, sr=SR, n_fft=2048, n_mels=128, fmin=0.0, fmax=8192.0))
    d = descriptors.descriptors(y, mag, mel_db, sr=SR, n_fft=2048, hop_length=512)
    ref = {
        "centroid": librosa.feature.spectral_centroid(S=mag, sr=SR, n_fft=2048),
        "bandwidth": librosa.feature.spectral_bandwidth(S=mag, sr=SR, n_fft=2048),
        "rolloff": librosa.feature.spectral_rolloff(S=mag, sr=SR, n_fft=2048),
        "flatness": librosa.feature.spectral_flatness(S=mag),
        "zcr": librosa.feature.zero_crossing_rate(y=y, frame_length=2048, hop_length=512),
        "contrast": librosa.feature.spectral_contrast(S=mag, sr=SR, n_fft=2048, n_bands=6).mean(axis=0),
    }
    for name, values in ref.items():
        assert d[f"{name}_mean"] == pytest.approx(float(np.mean(values)), rel=1e-3), name
        assert d[f"{name}_std"] == pytest.approx(float(np.std(values)), rel=1e-2, abs=1e-6), name
    np.testing.assert_array_equal(descriptors.zero_crossing_rate(y, frame_length=2048, hop_length=512), ref["zcr"][0])
    assert d["duration"] == pytest.approx(0.8, abs=1 / SR)


def test_sine_descriptors_by_hand():
    amp, f = 0.5, 1000.0
    d = extraction.analyse(tone(f, seconds=4.0, amp=amp), sr=SR, **params(load_config().features), cutoff=8192.0)[1]
    # the few edge frames (half window of zero padding) pull the means down by < 1 %
    assert d["rms_mean"] == pytest.approx(amp / math.sqrt(2), rel=0.01)
    assert d["zcr_mean"] == pytest.approx(2 * f / SR, rel=0.015)
    assert d["centroid_mean"] == pytest.approx(f, rel=0.01)
    assert d["rolloff_mean"] == pytest.approx(f, rel=0.03)
    assert d["flatness_mean"] < 1e-3
    noise = np.random.default_rng(3).standard_normal(SR).astype(np.float32) * 0.1
    assert extraction.analyse(noise, sr=SR, **params(load_config().features))[1]["flatness_mean"] > 0.3


def test_tempo_of_a_click_train_and_nan_without_onsets():
    cfg = load_config().features
    y = np.zeros(8 * SR, np.float32)
    burst = (np.hanning(200) * np.sin(2 * np.pi * 3000 * np.arange(200) / SR)).astype(np.float32)
    for start in range(0, len(y) - 200, int(0.6 * SR)):  # one click every 0.6 s = 100 BPM
        y[start:start + 200] += burst
    assert extraction.analyse(y, sr=SR, **params(cfg))[1]["tempo"] == pytest.approx(100, rel=0.03)
    silent = extraction.analyse(np.zeros(2048, np.float32), sr=SR, **params(cfg))[1]
    assert math.isnan(silent["tempo"])
    assert silent["rms_mean"] == 0.0 and silent["centroid_mean"] == 0.0


@pytest.mark.parametrize("sr, n_fft, hop_length, n_mels", [(22050, 2048, 512, 128), (16000, 512, 256, 32),
                                                       (44100, 2047, 300, 40)])
def test_tempo_and_contrast_give_librosas_numbers_exactly(sr, n_fft, hop_length, n_mels):
    """The tempo and the spectral contrast skip librosa's per-call set-up: not a single value may change."""
    rng = np.random.default_rng(5)
    clicks = np.zeros(3 * sr, np.float32)
    clicks[:: int(0.45 * sr)] = 1.0
    signals = [rng.standard_normal(n_fft).astype(np.float32), 0.1 * rng.standard_normal(2 * sr).astype(np.float32),
               tone(440.0, seconds=0.7) + 0.01 * rng.standard_normal(int(0.7 * SR)).astype(np.float32), clicks,
               np.zeros(3 * n_fft, np.float32)]
    for y in signals:
        mag = F.stft_magnitude(y, n_fft=n_fft, hop_length=hop_length)
        mel_db = F.power_db(F.mel_power(mag**2, sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sr / 2))
        envelope = librosa.onset.onset_strength(S=mel_db, sr=sr, n_fft=n_fft, hop_length=hop_length)
        ours = descriptors.onset_envelope(mel_db, n_fft=n_fft, hop_length=hop_length)
        assert ours.dtype == envelope.dtype
        np.testing.assert_array_equal(ours, envelope)
        tempo = descriptors.onset_tempo(mel_db, sr=sr, n_fft=n_fft, hop_length=hop_length)
        if np.any(envelope > 0):
            assert tempo == librosa.feature.tempo(onset_envelope=envelope, sr=sr, hop_length=hop_length)[0]
        else:
            assert math.isnan(tempo)
        n_bands = descriptors.contrast_bands(sr)
        np.testing.assert_array_equal(
            descriptors.spectral_contrast(mag, sr=sr, n_fft=n_fft, n_bands=n_bands),
            librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=n_fft, fmin=descriptors.CONTRAST_FMIN,
                                              n_bands=n_bands))


def test_chroma_and_mfcc_give_librosas_numbers_exactly():
    rng = np.random.default_rng(6)
    y = np.concatenate([np.zeros(3000, np.float32), tone(440.0, seconds=0.5) + 0.02 * rng.standard_normal(
        int(0.5 * SR)).astype(np.float32)])  # silent frames first: their chroma stays 0
    power = F.stft_magnitude(y, n_fft=1024, hop_length=256) ** 2
    raw = F.chroma_basis(sr=SR, n_fft=1024, n_chroma=12) @ power
    np.testing.assert_array_equal(F.chromagram(power, sr=SR, n_fft=1024, n_chroma=12),
                                  librosa.util.normalize(raw, norm=np.inf, axis=-2).astype(np.float32))
    mel_db = F.power_db(F.mel_power(power, sr=SR, n_fft=1024, n_mels=40, fmin=0.0, fmax=8192.0))
    np.testing.assert_array_equal(F.mfcc(mel_db, n_mfcc=13, top_db=None), librosa.feature.mfcc(S=mel_db, n_mfcc=13))


def test_analysis_with_ready_bases_runs_without_librosa(tmp_path):
    """Stage 03's workers get the filter banks and windows built: they compute the same numbers without
    importing librosa's core (numba, scipy.signal: 1.5 s of start-up per process)."""
    cfg = load_config().features
    y = (tone(300.0, seconds=1.0) + 0.05 * np.random.default_rng(7).standard_normal(SR)).astype(np.float32)
    bases = extraction.analysis_bases(sr=SR, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
                                      n_chroma=cfg.n_chroma, fmin=cfg.fmin, fmax=8192.0)
    feats, desc = extraction.analyse(y, sr=SR, cutoff=8192.0, **params(cfg))
    (tmp_path / "in.pkl").write_bytes(pickle.dumps((bases, y, params(cfg))))
    code = ("import pickle, sys\n"
            "from audioclust.dsp import extraction\n"
            "bases, y, params = pickle.loads(open(sys.argv[1], 'rb').read())\n"
            f"out = extraction.analyse(y, sr={SR}, cutoff=8192.0, bases=bases, **params)\n"
            "open(sys.argv[2], 'wb').write(pickle.dumps(out))\n"
            "print(sorted(m for m in ('numba', 'scipy.signal', 'librosa.core') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "in.pkl"), str(tmp_path / "out.pkl")],
                         capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
    their_feats, their_desc = pickle.loads((tmp_path / "out.pkl").read_bytes())
    for kind in feats:
        np.testing.assert_array_equal(their_feats[kind], feats[kind])
    assert their_desc == pytest.approx(desc, rel=0, abs=0, nan_ok=True)
    with pytest.raises(ValueError, match="bases were built for"):
        extraction.analyse(y, sr=SR, cutoff=4000.0, bases=bases, **params(cfg))  # another mel fmax


def test_contrast_bands_fit_below_nyquist():
    # band k (0-based) starts at 200 * 2**k Hz; librosa needs every start below Nyquist
    assert descriptors.contrast_bands(22050) == 6   # starts 200 .. 6400 < 11025 (the cap)
    assert descriptors.contrast_bands(8000) == 5    # starts 200 .. 3200 < 4000; 6400 is not
    assert descriptors.contrast_bands(6400) == 4    # 3200 is not below 3200
    assert descriptors.contrast_bands(300) == 0     # 200 >= 150: no band fits


def test_to_image_hand_example_and_orientation():
    x = np.array([[-80.0], [-24.0], [60.0], [100.0]])  # bins 0..3, range [-80, 60]
    img = images.to_image(x, vmin=-80.0, vmax=60.0)
    # (-24 + 80) / 140 * 255 = 102; 100 clips to 255; row 0 of the image = the highest bin
    assert img.dtype == np.uint8 and img.shape == (4, 1)
    assert img[:, 0].tolist() == [255, 255, 102, 0]


@pytest.mark.parametrize("vmin, vmax", [(-80.0, 60.0), (0.0, 1.0), (-400.0, 400.0)])
def test_png_mapping_round_trips(vmin, vmax):
    rng = np.random.default_rng(4)
    x = rng.uniform(vmin, vmax, size=(37, 23)).astype(np.float32)
    x[0, 0], x[-1, -1] = vmin, vmax
    back = images.from_image(images.to_image(x, vmin=vmin, vmax=vmax), vmin=vmin, vmax=vmax)
    assert back.dtype == np.float32 and back.shape == x.shape
    tol = (vmax - vmin) / 510 + np.spacing(np.float32(max(abs(vmin), abs(vmax))))
    assert np.abs(back - x).max() <= tol
    u8 = rng.integers(0, 256, size=(37, 23), dtype=np.uint8)
    u8[0, :3] = [0, 127, 255]
    np.testing.assert_array_equal(images.to_image(images.from_image(u8, vmin=vmin, vmax=vmax), vmin=vmin, vmax=vmax), u8)


def test_png_file_has_low_frequencies_at_the_bottom():
    spec = extraction.compute_features(tone(200.0), sr=SR, **params(load_config().features))["spectrogram"]
    data = images.png_bytes(images.to_image(spec, vmin=-80.0, vmax=60.0))
    from PIL import Image
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == "L" and img.size == (spec.shape[1], spec.shape[0])  # (width=frames, height=bins)
        pixels = np.asarray(img)
    brightest_row = int(np.argmax(pixels[:, 5]))
    assert brightest_row == 1025 - 1 - round(200 * 2048 / SR)  # bin 19 -> row 1005 of 1025
    np.testing.assert_array_equal(images.read_png(io.BytesIO(data)), pixels)


def test_mfcc_floors_the_mel_db_at_top_db_below_the_peak():
    import librosa
    mel_db = np.full((40, 6), -100.0, dtype=np.float32)
    mel_db[:10] = 20.0  # loud low bands, empty high bands 120 dB below
    floored = F.mfcc(mel_db, n_mfcc=13, top_db=80.0)
    expected = librosa.feature.mfcc(S=np.maximum(mel_db, 20.0 - 80.0), n_mfcc=13)
    np.testing.assert_allclose(floored, expected, rtol=1e-5, atol=1e-3)
    unfloored = F.mfcc(mel_db, n_mfcc=13, top_db=None)
    # c0 is sqrt(1/n_mels)·Σ mel_db: the floor lifts 30 bands by 40 dB each
    assert unfloored[0, 0] == pytest.approx(floored[0, 0] - 30 * 40 / np.sqrt(40), rel=1e-4)


def test_blockwise_computation_matches_one_block(monkeypatch):
    """Long recordings are computed in blocks of frames: the blocks must not change a single value."""
    rng = np.random.default_rng(3)
    y = (0.3 * np.sin(2 * np.pi * 330 * np.arange(40000) / SR) + 0.05 * rng.standard_normal(40000)).astype(
        np.float32)
    cfg = load_config().features
    whole, desc_whole = extraction.analyse(y, sr=SR, **params(cfg), cutoff=8192.0)
    image = images.to_image(whole["spectrogram"], vmin=-80.0, vmax=60.0)
    back = images.from_image(image, vmin=-80.0, vmax=60.0)
    for module in (F, descriptors, images):  # every per-frame loop, wherever it looks the block size up
        monkeypatch.setattr(module, "FRAME_BLOCK", 7)  # 79 frames: 12 blocks, the last one short
    blocks, desc_blocks = extraction.analyse(y, sr=SR, **params(cfg), cutoff=8192.0)
    for kind in whole:
        np.testing.assert_array_equal(blocks[kind], whole[kind])
    # descriptors: float32 matrix products over fewer columns round differently (a few 1e-6)
    assert desc_blocks == pytest.approx(desc_whole, rel=1e-5, nan_ok=True)
    np.testing.assert_array_equal(images.to_image(whole["spectrogram"], vmin=-80.0, vmax=60.0), image)
    np.testing.assert_array_equal(images.from_image(image, vmin=-80.0, vmax=60.0), back)
