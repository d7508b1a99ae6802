"""The shipped embedding models (aisfx, resemblyzer) against their own packages; pooling; load errors.

Runs offline: both models' weights ship inside their wheels (requirements-nodeps.txt).
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch
from threadpoolctl import threadpool_limits

from audioclust.embed.base import pick_device
from audioclust.embed.fingerprint import model_key
from audioclust.embed.pooling import POOLINGS, pool_frames
from audioclust.embed.registry import MODEL_TYPES, SHIPPED, load_model
from audioclust.embed.spec import ModelError, ModelSpec

aisfx = pytest.importorskip("aisfx")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    resemblyzer = pytest.importorskip("resemblyzer")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch and one BLAS thread while these tests run: on a busy machine (CI runs several
    suites at once) every multi-threaded small step — the LSTM's 480, a small matrix product —
    can wait for a time slice, which made the file take minutes instead of seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sfx():
    return load_model(ModelSpec(name="aisfx", type="aisfx", batch_size=2), device="cpu")


@pytest.fixture(scope="module")
def voice():
    return load_model(ModelSpec(name="voice", type="resemblyzer", batch_size=3), device="cpu")


def _sound(n_samples: int, sr: int, seed: int) -> np.ndarray:
    """Decaying tones and noise bursts, peak 0.3 (so aisfx's peak normalisation has work to do)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / sr
    y = sum(np.sin(2 * np.pi * f * t) * np.exp(-((t * 3) % 1.0) * d)
            for f, d in zip(rng.uniform(100, 5000, 4), rng.uniform(1, 8, 4)))
    y += rng.standard_normal(t.size) * (np.sin(2 * np.pi * 0.7 * t) > 0.6)
    return (0.3 * y / (np.abs(y).max() or 1.0)).astype(np.float32)


_FORMANTS = {"low": [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480)],
             "high": [(850, 1220, 2810), (310, 2790, 3310), (370, 950, 2670), (610, 2330, 2990)]}


def _voice(rng: np.random.Generator, f0: float, kind: str, seconds: float = 3.0, sr: int = 16000) -> np.ndarray:
    """A source-filter "voice": syllables of a gliding glottal pulse train through one of four vowels'
    formant resonators, separated by short pauses. ``f0`` and the formant set make the speaker."""
    out = np.zeros(int(seconds * sr))
    pos = 0
    while pos < out.size:
        n = int(rng.uniform(0.15, 0.35) * sr)
        f = f0 * rng.uniform(0.9, 1.1) * np.linspace(1, rng.uniform(0.85, 1.15), n)
        pulses = scipy.signal.lfilter([1], [1, -0.95], np.diff(np.floor(np.cumsum(f / sr)), prepend=0))
        syllable = np.zeros(n)
        for k, fk in enumerate(_FORMANTS[kind][rng.integers(4)]):
            r = np.exp(-np.pi * (80 + 40 * k) / sr)
            syllable += scipy.signal.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fk / sr), r * r], pulses) / (k + 1)
        out[pos:pos + n] = (syllable * np.hanning(n) ** 0.5)[:out.size - pos]
        pos += n + int(rng.uniform(0.02, 0.08) * sr)
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


# --------------------------------------------------------------------------- aisfx

def test_aisfx_shape_and_frame_count(sfx):
    assert (sfx.sample_rate, sfx.dim) == (44100, 512)
    assert sfx.hop_seconds == pytest.approx(50 * 1024 / 44100)
    # T = 1 + n // 1024 spectrogram frames; blocks of 100 every 50, the last partial one dropped,
    # at least one: 1 sample -> T 1 -> 1; 0.5 s -> T 22 -> 1 (padded); 152575 -> T 149 -> 1;
    # 152576 -> T 150 -> 2; 5 s = 220500 -> T 216 -> 3
    lengths = [1, 22050, 152575, 152576, 220500]
    out = sfx.embed([_sound(n, 44100, seed=n) for n in lengths])
    assert [o.shape for o in out] == [(1, 512), (1, 512), (1, 512), (2, 512), (3, 512)]
    assert all(o.dtype == np.float32 and np.isfinite(o).all() for o in out)
    assert sfx.embed([]) == []


def test_aisfx_batches_do_not_change_outputs(sfx):
    signals = [_sound(n, 44100, seed=n) for n in (17640, 176400, 127890)]  # 0.4, 4.0, 2.9 s: 1, 2, 1 blocks
    together = sfx.embed(signals)  # batch_size 2: a batch holds blocks of two files
    for y, frames in zip(signals, together):
        np.testing.assert_allclose(frames, sfx.embed([y])[0], atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # librosa.load imports audioread's aifc, audioop, sunau
def test_aisfx_equals_the_packages_own_pipeline(sfx, tmp_path):
    from aisfx import inference, preprocessing
    from aisfx.spectrogram import spectrogram_librosa

    y = _sound(176400, 44100, seed=3)  # 4 s, T = 173 frames: 2 blocks
    wav = tmp_path / "a.wav"
    sf.write(wav, y, 44100, subtype="FLOAT")
    spec = spectrogram_librosa.compute_spectrogram(
        filename=str(wav), sr=inference.SAMPLE_RATE, block_size=inference.SPEC_BLOCK_LENGTH,
        hop_size=inference.SPEC_HOP_LENGTH, n_mels=inference.MEL_BINS, f_min=inference.F_MIN, f_max=inference.F_MAX)
    assert spec.shape == (96, 173)  # (mels, frames): the network wants frames first
    spec = preprocessing.spectrogram_normalize(spec.T, spec_norm="original")
    scalar = np.int64(0).__reduce__()[0]
    with torch.serialization.safe_globals([(scalar, "numpy.core.multiarray.scalar"), np.dtype, np.dtypes.Int64DType]):
        weights, ds_dict = inference.load_weights("cpu")
    model = inference.load_bestModel(weights, ds_dict, "cpu")  # the whole CrossNet, loaded strictly
    theirs = inference.model_get_embedding(spec, 0.5, True, model, "cpu").numpy()
    ours = sfx.embed([y])[0]
    assert theirs.shape == ours.shape == (2, 512)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert np.abs(ours - ours[::-1]).max() > 1e-2  # the two blocks differ: not a constant output


# --------------------------------------------------------------------------- resemblyzer

def test_resemblyzer_shape_and_frame_count(voice):
    assert (voice.sample_rate, voice.dim) == (16000, 256)
    assert voice.hop_seconds == pytest.approx(0.77)  # round(16000 / 1.3 / 160) = 77 mel frames of 10 ms
    # silence is not trimmed (nothing would be left): windows of 160 frames start every 77 frames
    # while start < F - 160 + 78, F = ceil((n + 1) / 160); the last is kept when it covers >= 75 %:
    # 1.9 s: F 191, starts 0, 77; (30400 - 12320) / 25600 = 0.71 -> dropped -> 1 window
    # 2.0 s: F 201, starts 0, 77; (32000 - 12320) / 25600 = 0.77 -> kept -> 2 windows
    # 3.0 s: F 301, starts 0, 77, 154; (48000 - 24640) / 25600 = 0.91 -> 3 windows
    lengths = [1, 8000, 30400, 32000, 48000]
    out = voice.embed([np.zeros(n, np.float32) for n in lengths])
    assert [o.shape for o in out] == [(1, 256), (1, 256), (1, 256), (2, 256), (3, 256)]
    assert all(o.dtype == np.float32 and np.isfinite(o).all() for o in out)
    np.testing.assert_allclose(np.linalg.norm(out[4], axis=1), 1.0, atol=1e-5)


def test_resemblyzer_batches_do_not_change_outputs(voice):
    rng = np.random.default_rng(0)
    signals = [_voice(rng, 110, "low", 2.5), _voice(rng, 210, "high", 4.0), _sound(16000, 16000, seed=5)]
    together = voice.embed(signals)  # batch_size 3: batches hold windows of several files
    assert sum(len(f) for f in together) > 3
    for y, frames in zip(signals, together):
        np.testing.assert_allclose(frames, voice.embed([y])[0], atol=1e-5)


def test_resemblyzer_equals_embed_utterance_partials(voice):
    from resemblyzer import VoiceEncoder, preprocess_wav

    encoder = VoiceEncoder("cpu", verbose=False)
    rng = np.random.default_rng(4)
    speech = np.concatenate([_voice(rng, 130, "low", 2.0), np.zeros(16000, np.float32), _voice(rng, 130, "low", 2.0)])
    prepared = preprocess_wav(speech)
    assert len(prepared) < len(speech) - 8000  # the pause was trimmed: the path under test is taken
    silence = np.zeros(20000, np.float32)  # preprocessing leaves nothing: the untrimmed signal is used
    ours = voice.embed([speech, silence])
    for mine, wav in zip(ours, [prepared, silence]):
        _, partials, _ = encoder.embed_utterance(wav, return_partials=True)
        assert mine.shape == partials.shape
        np.testing.assert_allclose(mine, partials, atol=1e-4)


def test_resemblyzer_tells_two_synthetic_voices_apart(voice):
    """Four phrases of a low voice (110 Hz, one formant set) and four of a high one (210 Hz, another):
    every same-voice pair is more similar than every cross-voice pair (observed ~0.88 vs ~0.73)."""
    rng = np.random.default_rng(1)
    phrases = [_voice(rng, 110, "low") for _ in range(4)] + [_voice(rng, 210, "high") for _ in range(4)]
    pooled = np.array([pool_frames(f, mode="mean") for f in voice.embed(phrases)])
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    sim = pooled @ pooled.T
    same = [sim[i, j] for i in range(8) for j in range(i + 1, 8) if (i < 4) == (j < 4)]
    cross = [sim[i, j] for i in range(4) for j in range(4, 8)]
    assert min(same) > max(cross) + 0.05


# --------------------------------------------------------------------------- the interface

def test_the_key_of_a_models_outputs_ignores_the_batch_size_only():
    voice = ModelSpec(name="resemblyzer", type="resemblyzer")
    assert model_key(ModelSpec(name="resemblyzer", type="resemblyzer", batch_size=64)) == model_key(voice)
    assert model_key(ModelSpec(name="aisfx", type="aisfx")) != model_key(voice)
    assert set(SHIPPED) <= set(MODEL_TYPES)


def test_importing_the_layer_loads_no_model_library():
    code = ("import sys, audioclust.embed.registry, audioclust.embed.pooling; "
            "print(sorted(m for m in ('aisfx', 'resemblyzer', 'transformers', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_pool_frames_by_hand():
    frames = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(pool_frames(frames, mode="mean"), [3.0, 3.0])
    # population std: sqrt(((1-3)^2 + 0 + (5-3)^2) / 3) = sqrt(8/3); sqrt((1 + 9 + 4) / 3) = sqrt(14/3)
    np.testing.assert_allclose(pool_frames(frames, mode="meanstd"), [3.0, 3.0, np.sqrt(8 / 3), np.sqrt(14 / 3)],
                               rtol=1e-6)
    np.testing.assert_allclose(pool_frames(frames, mode="max"), [5.0, 6.0])
    one = frames[:1]
    assert pool_frames(one, mode="meanstd").tolist() == [1.0, 2.0, 0.0, 0.0]
    assert all(pool_frames(frames, mode=m).dtype == np.float32 for m in POOLINGS)
    with pytest.raises(ModelError, match="choose one of mean, meanstd, max"):
        pool_frames(frames, mode="median")
    with pytest.raises(ValueError, match="n_frames >= 1"):
        pool_frames(np.zeros((0, 2)), mode="mean")


@pytest.mark.parametrize(("spec", "message"), [
    (ModelSpec(name="x", type="wav2vec"), "type 'wav2vec' is unknown; choose one of aisfx, resemblyzer"),
    (ModelSpec(name="x", type="aisfx", path="/tmp/w.pth"), "ships with its weights; leave 'path' out"),
    (ModelSpec(name="x", type="onnx", sample_rate=16000), "needs 'path'"),
    (ModelSpec(name="x", type="torchscript", path="/nonexistent/m.pt", sample_rate=16000),
     "path /nonexistent/m.pt does not exist"),
    (ModelSpec(name="x", type="resemblyzer", layer=3), "'layer' applies to huggingface models only"),
    (ModelSpec(name="x", type="aisfx", batch_size=0), "batch_size 0 must be at least 1"),
])
def test_bad_specs_raise_model_error(spec, message):
    with pytest.raises(ModelError, match="^model 'x': ") as info:
        load_model(spec, device="cpu")
    assert message in str(info.value)


def test_torchscript_and_onnx_need_a_sample_rate(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match="needs 'sample_rate'"):
        load_model(ModelSpec(name="x", type="onnx", path=str(tmp_path / "m.onnx")), device="cpu")


def test_devices():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ModelError, match="'gpu' is not one of auto, cpu, cuda, mps"):
        pick_device("gpu")
    with pytest.raises(ModelError, match="is not one of"):
        load_model(ModelSpec(name="x", type="aisfx"), device="cuda:x")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available.*use device auto or cpu"):
            pick_device("cuda")
