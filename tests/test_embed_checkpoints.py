"""The loaders of a user's local checkpoint (embed/huggingface.py, torchscript.py, onnx.py), on tiny random models.

Every model here is built by the test, saved to a temporary folder and loaded back through
the real loading path (``from_pretrained(local_files_only=True)``, ``torch.jit.load``,
``onnxruntime.InferenceSession``); nothing is downloaded.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from audioclust.embed import torchscript
from audioclust.embed.spec import ModelError, ModelSpec
from audioclust.embed.torchscript import TorchScriptModel

CPU = torch.device("cpu")
RATE = 16000
#: the real wav2vec 2.0 convolution stack (hop 320 samples, receptive field 400), with few channels
CONV_KERNEL = (10, 3, 3, 3, 3, 2, 2)
CONV_STRIDE = (5, 2, 2, 2, 2, 2, 2)


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


def _conv_frames(n: int) -> int:
    for kernel, stride in zip(CONV_KERNEL, CONV_STRIDE):
        n = (n - kernel) // stride + 1
    return n


# ---------------------------------------------------------------- Hugging Face checkpoints


@pytest.fixture(scope="module")
def transformers():
    return pytest.importorskip("transformers", reason="the huggingface loader needs transformers (requirements.txt)")


def _wav2vec2(transformers, folder, *, norm: str) -> str:
    """A tiny random wav2vec 2.0: 'layer' norm takes an attention mask, 'group' norm does not."""
    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16,) * 7, conv_kernel=CONV_KERNEL, conv_stride=CONV_STRIDE, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, feat_extract_norm=norm, do_stable_layer_norm=norm == "layer")
    transformers.Wav2Vec2Model(config).save_pretrained(folder)
    extractor = transformers.Wav2Vec2FeatureExtractor(sampling_rate=RATE, return_attention_mask=norm == "layer")
    extractor.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def wav2vec2(transformers, tmp_path_factory):
    return _wav2vec2(transformers, tmp_path_factory.mktemp("wav2vec2"), norm="layer")


@pytest.fixture(scope="module")
def wav2vec2_group(transformers, tmp_path_factory):
    return _wav2vec2(transformers, tmp_path_factory.mktemp("wav2vec2_group"), norm="group")


@pytest.fixture(scope="module")
def ast(transformers, tmp_path_factory):
    """A tiny random AST: 32 mel bins x 128 frames of 10 ms (a 1.28 s span), 2 x 12 patches."""
    folder = tmp_path_factory.mktemp("ast")
    torch.manual_seed(0)
    config = transformers.ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                    num_mel_bins=32, max_length=128, frequency_stride=10, time_stride=10)
    transformers.ASTModel(config).save_pretrained(folder)
    transformers.ASTFeatureExtractor(num_mel_bins=32, max_length=128, sampling_rate=RATE).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def whisper(transformers, tmp_path_factory):
    """A tiny random Whisper whose encoder takes 5 s (500 log-mel frames, 250 output frames)."""
    folder = tmp_path_factory.mktemp("whisper")
    torch.manual_seed(0)
    config = transformers.WhisperConfig(
        d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=16, max_source_positions=250, max_target_positions=16,
        vocab_size=100, pad_token_id=1, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    transformers.WhisperModel(config).save_pretrained(folder)
    transformers.WhisperFeatureExtractor(feature_size=16, chunk_length=5).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def clap(transformers, tmp_path_factory):
    """A tiny random CLAP (HTSAT audio tower, no fusion) taking 1 s windows."""
    folder = tmp_path_factory.mktemp("clap")
    torch.manual_seed(0)
    audio = transformers.ClapAudioConfig(spec_size=64, patch_size=4, num_mel_bins=16, hidden_size=32,
                                         patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2],
                                         window_size=4, enable_fusion=False, projection_dim=16)
    text = transformers.ClapTextConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=64, vocab_size=100, projection_dim=16)
    config = transformers.ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16)
    transformers.ClapModel(config).save_pretrained(folder)
    transformers.ClapFeatureExtractor(feature_size=16, sampling_rate=RATE, hop_length=160, max_length_s=1,
                                      fft_window_size=400, frequency_max=RATE // 2,
                                      truncation="rand_trunc").save_pretrained(folder)
    return str(folder)


def _hf(path: str, *, layer: int | None = None, batch_size: int = 16):
    from audioclust.embed.huggingface import HuggingFaceModel

    spec = ModelSpec(name="hf", type="huggingface", path=path, layer=layer, batch_size=batch_size)
    return HuggingFaceModel(spec, CPU)


def _direct(transformers, path: str, signal: np.ndarray, layer: int) -> np.ndarray:
    """The hidden state computed with transformers itself, one unpadded signal."""
    model = transformers.AutoModel.from_pretrained(path, local_files_only=True).eval()
    extractor = transformers.AutoFeatureExtractor.from_pretrained(path, local_files_only=True)
    inputs = extractor([signal], sampling_rate=RATE, return_tensors="pt")
    with torch.inference_mode():
        return model(**inputs, output_hidden_states=True).hidden_states[layer][0].numpy()


def test_wav2vec2_frames_follow_the_conv_stack_and_equal_the_hidden_state(transformers, wav2vec2):
    signals = [_noise(RATE, 1), _noise(7000, 2)]
    model = _hf(wav2vec2)
    assert (model.sample_rate, model.dim, model.hop_seconds) == (RATE, 32, pytest.approx(0.02))
    frames = model.embed(signals)
    assert [f.shape for f in frames] == [(_conv_frames(RATE), 32), (_conv_frames(7000), 32)]
    assert all(f.dtype == np.float32 for f in frames)
    by_layer = {}
    for layer in (0, 1, -1):
        by_layer[layer] = _hf(wav2vec2, layer=layer).embed(signals[:1])[0]
        np.testing.assert_allclose(by_layer[layer], _direct(transformers, wav2vec2, signals[0], layer), atol=1e-5)
    np.testing.assert_allclose(by_layer[-1], frames[0], atol=1e-5)  # None is the last layer
    assert not np.allclose(by_layer[0], by_layer[-1], atol=1e-3)


@pytest.mark.parametrize("checkpoint", ["wav2vec2", "wav2vec2_group"])
def test_wav2vec2_batched_equals_one_by_one(checkpoint, request):
    """With a mask, mixed lengths share a batch; without one (group norm) only equal lengths do."""
    path = request.getfixturevalue(checkpoint)
    signals = [_noise(n, i) for i, n in enumerate([RATE, 5000, 12345, 300, 5000, 1])]
    model = _hf(path, batch_size=8)
    assert model._pads_exactly is (checkpoint == "wav2vec2")  # mixed lengths share a batch only with the mask
    batched = model.embed(signals)
    single = _hf(path, batch_size=1).embed(signals)
    for b, s in zip(batched, single):
        np.testing.assert_allclose(b, s, atol=1e-4)
    # shorter than the 400-sample receptive field: zero-padded to it, one frame
    assert [f.shape[0] for f in batched] == [_conv_frames(n) for n in (RATE, 5000, 12345)] + [1, _conv_frames(5000), 1]


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask:UserWarning")  # WavLM inside torch
@pytest.mark.parametrize("architecture, mixed", [("Hubert", True), ("WavLM", True), ("Data2VecAudio", False),
                                                  ("Wav2Vec2Conformer", False), ("SEW", False)])
def test_the_wav2vec2_family(architecture, mixed, transformers, tmp_path):
    """Other raw-waveform encoders: padding is found exact or not at load time (data2vec-audio's
    positional convolutions and the Conformer's see the padded frames), SEW pools frames in pairs."""
    options = {"Data2VecAudio": {"num_conv_pos_embeddings": 5, "conv_pos_kernel_size": 5},
               "Wav2Vec2Conformer": {"position_embeddings_type": "relative"}, "SEW": {"squeeze_factor": 2},
               "WavLM": {"num_buckets": 32, "max_bucket_distance": 100}}.get(architecture, {})
    if architecture in ("Hubert", "WavLM", "Wav2Vec2Conformer"):
        options |= {"feat_extract_norm": "layer", "do_stable_layer_norm": True}
    config = getattr(transformers, f"{architecture}Config")(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
        conv_kernel=CONV_KERNEL, conv_stride=CONV_STRIDE, num_conv_pos_embedding_groups=2,
        **{"num_conv_pos_embeddings": 16, **options})
    torch.manual_seed(0)
    getattr(transformers, f"{architecture}Model")(config).save_pretrained(tmp_path)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=RATE, return_attention_mask=True).save_pretrained(tmp_path)
    signals = [_noise(n, i) for i, n in enumerate([RATE, 5000, 300])]
    model = _hf(str(tmp_path))
    assert model._pads_exactly is mixed
    frames = model.embed(signals)
    for b, s in zip(frames, _hf(str(tmp_path), batch_size=1).embed(signals)):
        np.testing.assert_allclose(b, s, atol=1e-4)
    squeeze = 2 if architecture == "SEW" else 1
    assert model.hop_seconds == pytest.approx(0.02 * squeeze)
    assert [f.shape for f in frames] == [(_conv_frames(RATE) // squeeze, 32), (_conv_frames(5000) // squeeze, 32),
                                         (1, 32)]


def test_a_layer_out_of_range_says_how_many_there_are(wav2vec2):
    with pytest.raises(ModelError, match="has 3 hidden states"):
        _hf(wav2vec2, layer=3)
    assert _hf(wav2vec2, layer=-3).dim == 32


def test_long_signals_are_cut_into_windows_whose_frames_are_concatenated(wav2vec2, monkeypatch):
    monkeypatch.setattr(torchscript, "MAX_WINDOW_SECONDS", 0.5)
    model = _hf(wav2vec2)
    signal = _noise(20000)  # windows of 8000, 8000 and 4000 samples
    whole = model.embed([signal])[0]
    parts = model.embed([signal[:8000], signal[8000:16000], signal[16000:]])
    np.testing.assert_allclose(whole, np.concatenate(parts), atol=1e-5)
    assert whole.shape[0] == 2 * _conv_frames(8000) + _conv_frames(4000)


def test_ast_spectrogram_input_gives_patch_tokens(transformers, ast):
    model = _hf(ast, batch_size=4)
    tokens = 2 + 2 * 12  # [CLS], distillation, (32 - 16) // 10 + 1 frequency x (128 - 16) // 10 + 1 time patches
    assert (model.sample_rate, model.dim) == (RATE, 32)
    assert model.hop_seconds == pytest.approx(1.28 / tokens)  # a fixed token set per 1.28 s window
    signals = [_noise(RATE, 1), _noise(3000, 2), _noise(1, 3)]
    frames = model.embed(signals)
    assert [f.shape for f in frames] == [(tokens, 32)] * 3
    np.testing.assert_allclose(frames[0], _direct(transformers, ast, signals[0], -1), atol=1e-5)
    single = [_hf(ast, batch_size=1).embed([s])[0] for s in signals]
    for b, s in zip(frames, single):
        np.testing.assert_allclose(b, s, atol=1e-4)
    assert model.embed([_noise(2 * 20480)])[0].shape == (2 * tokens, 32)  # two 1.28 s windows


def test_whisper_uses_the_encoder_and_cuts_frames_to_each_length(transformers, whisper):
    model = _hf(whisper)
    assert (model.sample_rate, model.dim, model.hop_seconds) == (RATE, 32, pytest.approx(0.02))
    signals = [_noise(RATE, 1), _noise(4000, 2)]
    frames = model.embed(signals)
    assert [f.shape for f in frames] == [(50, 32), (13, 32)]  # 100 and 25 log-mel frames, halved by the conv stride
    encoder = transformers.AutoModel.from_pretrained(whisper, local_files_only=True).get_encoder().eval()
    extractor = transformers.AutoFeatureExtractor.from_pretrained(whisper, local_files_only=True)
    with torch.inference_mode():
        direct = encoder(**extractor([signals[0]], sampling_rate=RATE, return_tensors="pt"),
                         output_hidden_states=True).hidden_states[-1][0].numpy()
    np.testing.assert_allclose(frames[0], direct[:50], atol=1e-5)
    np.testing.assert_allclose(frames[1], _hf(whisper, batch_size=1).embed(signals[1:])[0], atol=1e-4)


def test_clap_uses_the_audio_tower(clap):
    first, last = _hf(clap, layer=0), _hf(clap)
    assert (first.sample_rate, first.dim, last.dim) == (RATE, 16, 32)  # the tower's stages widen
    frames = last.embed([_noise(RATE), _noise(500)])
    assert [f.shape for f in frames] == [(64, 32), (64, 32)]  # an 8 x 8 feature map per 1 s window
    assert last.hop_seconds == pytest.approx(1 / 64)


def test_a_text_model_is_not_an_audio_model(transformers, tmp_path):
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, vocab_size=100)
    transformers.BertModel(config).save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="not an audio model.*'bert'"):
        _hf(str(tmp_path))


def test_a_checkpoint_without_a_feature_extractor_says_to_save_one(transformers, wav2vec2, tmp_path):
    transformers.AutoModel.from_pretrained(wav2vec2, local_files_only=True).save_pretrained(tmp_path)
    with pytest.raises(ModelError, match=r"feature_extractor\.save_pretrained"):
        _hf(str(tmp_path))


@pytest.mark.parametrize("where, message", [("missing", "does not exist"), ("empty", "no config.json"),
                                            ("file", "is a file")])
def test_a_path_that_is_no_checkpoint_says_what_to_do(where, message, tmp_path):
    path = tmp_path / where
    if where == "empty":
        path.mkdir()
    elif where == "file":
        path.write_bytes(b"\0")
    with pytest.raises(ModelError, match=message):
        _hf(str(path))


# ---------------------------------------------------------------- TorchScript and ONNX files


class _Frames(torch.nn.Module):
    """(batch, samples) -> (batch, frames, 8): one strided convolution (64-sample receptive field, hop 32)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv1d(1, 8, kernel_size=64, stride=32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x.unsqueeze(1))).transpose(1, 2)


class _Clip(torch.nn.Module):
    """(batch, samples) -> (batch, 8): the frames' mean."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = _Frames()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.frames(x).mean(dim=1)


def _torchscript(module: torch.nn.Module, path) -> str:
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript, which users still have files of
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module.eval()), str(path))
    return str(path)


def test_torchscript_frames_equal_the_module(tmp_path):
    module = _Frames().eval()
    spec = ModelSpec(name="ts", type="torchscript", path=_torchscript(module, tmp_path / "m.pt"), sample_rate=RATE)
    model = TorchScriptModel(spec, CPU)
    assert (model.sample_rate, model.dim, model.hop_seconds) == (RATE, 8, pytest.approx(32 / RATE))
    signals = [_noise(1000, 1), _noise(1000, 2), _noise(3001, 3), _noise(5, 4)]
    frames = model.embed(signals)
    with torch.inference_mode():
        expected = [module(torch.from_numpy(s)[None])[0].numpy() for s in signals[:3]]
    for got, want in zip(frames, expected):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert frames[3].shape == (1, 8)  # zero-padded to the 64-sample receptive field


def test_torchscript_clip_vectors_give_one_frame(tmp_path):
    spec = ModelSpec(name="ts", type="torchscript", path=_torchscript(_Clip(), tmp_path / "c.pt"), sample_rate=RATE)
    model = TorchScriptModel(spec, CPU)
    assert [f.shape for f in model.embed([_noise(2000), _noise(700)])] == [(1, 8), (1, 8)]
    assert model.hop_seconds == torchscript.MAX_WINDOW_SECONDS  # one vector per window


def test_torchscript_windows_of_a_long_signal(tmp_path, monkeypatch):
    monkeypatch.setattr(torchscript, "MAX_WINDOW_SECONDS", 0.25)  # 4000 samples
    spec = ModelSpec(name="ts", type="torchscript", path=_torchscript(_Frames(), tmp_path / "m.pt"), sample_rate=RATE)
    model = TorchScriptModel(spec, CPU)
    signal = _noise(8030)  # the last 30 samples are shorter than the model's input: they join the second window
    parts = model.embed([signal[:4000], signal[4000:]])
    np.testing.assert_allclose(model.embed([signal])[0], np.concatenate(parts), atol=1e-6)


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_a_file_format_needs_a_sample_rate_and_a_file(kind, tmp_path):
    from audioclust.embed.onnx import OnnxModel

    if kind == "onnx":
        pytest.importorskip("onnxruntime", reason="the onnx loader needs onnxruntime (requirements.txt)")
    loader = {"torchscript": TorchScriptModel, "onnx": OnnxModel}[kind]
    path = tmp_path / "m.bin"
    path.write_bytes(b"\0")
    with pytest.raises(ModelError, match="set `sample_rate` for this model"):
        loader(ModelSpec(name="m", type=kind, path=str(path)), CPU)
    with pytest.raises(ModelError, match="does not exist"):
        loader(ModelSpec(name="m", type=kind, path=str(tmp_path / "none"), sample_rate=RATE), CPU)
    with pytest.raises(ModelError, match="can load"):
        loader(ModelSpec(name="m", type=kind, path=str(path), sample_rate=RATE), CPU)


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    """_Frames exported with torch's exporter (the torch.export-based one, which needs onnxscript)."""
    pytest.importorskip("onnxruntime", reason="the onnx loader needs onnxruntime (requirements.txt)")
    pytest.importorskip("onnxscript", reason="torch.onnx.export needs onnxscript to write the test's model")
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples", min=64)
    with warnings.catch_warnings():  # the exporter's own deprecation notices about torch internals
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(_Frames().eval(), (torch.zeros(2, 1000),), str(path), input_names=["waveform"],
                          dynamic_shapes=({0: batch, 1: samples},), dynamo=True, verbose=False)
    return str(path)


def test_onnx_frames_equal_the_torch_module(onnx_file):
    from audioclust.embed.onnx import OnnxModel

    model = OnnxModel(ModelSpec(name="onnx", type="onnx", path=onnx_file, sample_rate=RATE, batch_size=4), CPU)
    assert (model.dim, model.hop_seconds, model.device) == (8, pytest.approx(32 / RATE), CPU)
    signals = [_noise(1000, 1), _noise(2500, 2), _noise(1000, 3), _noise(10, 4)]
    frames = model.embed(signals)
    module = _Frames().eval()
    with torch.inference_mode():
        expected = [module(torch.from_numpy(s)[None])[0].numpy() for s in signals[:3]]
    for got, want in zip(frames, expected):
        np.testing.assert_allclose(got, want, atol=1e-4)
    assert frames[3].shape == (1, 8)
