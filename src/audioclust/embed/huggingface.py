"""A user's local Hugging Face ``transformers`` audio checkpoint: the frames of one hidden layer.

``path`` is a folder written by ``model.save_pretrained(folder)`` and
``feature_extractor.save_pretrained(folder)`` (``config.json``, the weights and
``preprocessor_config.json``). It is loaded with ``AutoConfig``, ``AutoFeatureExtractor``
and ``AutoModel`` and ``local_files_only=True``: nothing is ever downloaded. The sample rate
is the feature extractor's ``sampling_rate``; the frames are the hidden state chosen by
``layer`` (``output_hidden_states=True``; 0 is the embedding output before the first block,
None or -1 the last block).

Which part of the checkpoint runs:

* a model with ``get_audio_features`` (CLAP-style two-tower models): its audio tower
  (attribute ``audio_model``, ``audio_tower`` or ``audio_encoder``); feature-map hidden
  states ``(batch, channels, h, w)`` become ``h * w`` frames of size ``channels``;
* an encoder-decoder (Whisper): its encoder;
* otherwise the model itself, whose main input must be ``input_values`` or ``input_features``.

Two kinds of feature extractor are handled, told apart by running it on two lengths:

* variable length (raw waveform: wav2vec 2.0, HuBERT, WavLM): a batch is zero-padded to its
  longest window. When the extractor is configured to return an attention mask the model
  gets it, and windows of any lengths share a batch if a check at load time finds the
  padded frames equal to those computed alone (true for wav2vec 2.0, HuBERT, WavLM; false
  for data2vec-audio and wav2vec2-conformer, whose convolutions see the padding). Otherwise,
  and without a mask (``feat_extract_norm="group"`` checkpoints such as wav2vec2-base),
  only windows of equal length share a batch;
* fixed size (AST, Whisper, CLAP pad or cut every input to one length): the window is at
  most the extractor's span (``n_samples``, ``nb_max_samples``, or ``max_length`` frames
  of 10 ms for AST), so nothing is cut off, and any lengths share a batch.

Signals longer than a window are cut into windows whose frames are concatenated, and
``hop_seconds`` is measured on probe signals, as in
:class:`~audioclust.embed.torchscript.WindowedModel`. A signal shorter than the smallest
input that the extractor takes (AST's fbank needs one 25 ms frame), that gives the
convolution stack one frame (400 samples for wav2vec 2.0) and that the model runs on (SEW
pools frames in pairs) is zero-padded to it; that length is found at load time on zero signals.

Each item's frames are cut to its own length with the model's
``_get_feat_extract_output_lengths`` applied to the extractor's attention mask (wav2vec 2.0
family, Whisper); models without it (AST, CLAP) keep all frames, including those of the
padded (CLAP: repeated) part of a short window, and their frames are patches rather than
time steps.

Tested on tiny random models built by ``tests/test_embed_checkpoints.py`` (the loading and
batching paths, not the quality of real weights): wav2vec 2.0, HuBERT, WavLM, data2vec-audio,
SEW, wav2vec2-conformer, AST, Whisper's encoder, CLAP's audio tower. Expected to work through
the same paths, not tested: UniSpeech(-SAT), SEW-D, and other encoders whose extractor returns
``input_values`` or ``input_features``. Not supported: checkpoints that need custom code
(``trust_remote_code``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audioclust.embed.spec import ModelError, ModelSpec
from audioclust.embed.torchscript import WindowedModel, smallest_input, window_samples

logger = logging.getLogger(__name__)

#: main input names of audio models (text models take ``input_ids``, vision ones ``pixel_values``)
AUDIO_INPUTS = ("input_values", "input_features")

#: attributes under which multimodal models keep their audio tower
AUDIO_TOWERS = ("audio_model", "audio_tower", "audio_encoder")

#: what a transformers forward pass raises on an input it cannot take
_RUN_ERRORS = (RuntimeError, ValueError, TypeError, IndexError)

#: frame shift of the Kaldi fbank features of extractors that give ``max_length`` in frames (AST)
_FBANK_SHIFT_SECONDS = 0.01


class HuggingFaceModel(WindowedModel):
    """Hidden-state frames of a local ``transformers`` audio checkpoint.

    Parameters
    ----------
    spec : ModelSpec
        ``path`` to the checkpoint folder; ``layer`` the hidden state to take (None: the last;
        negative indexes count from the end); ``sample_rate`` if set must equal the
        extractor's; ``batch_size`` windows per forward pass.
    device : torch.device
        Where the model runs.

    Raises
    ------
    ModelError
        The folder is missing or not a transformers checkpoint, the checkpoint is not an
        audio model, transformers is not installed, or ``layer`` is out of range. The
        message says what to do.
    """

    def __init__(self, spec: ModelSpec, device: torch.device) -> None:
        folder = _checkpoint_folder(spec)
        self.name = spec.name
        self.device = torch.device(device)
        self._layer = -1 if spec.layer is None else int(spec.layer)
        self._batch_size = max(1, spec.batch_size)
        model, extractor = _load(folder)
        self._extractor = extractor
        self._tower = _audio_tower(model, folder).to(self.device).eval()
        self.sample_rate = int(extractor.sampling_rate)
        if spec.sample_rate is not None and spec.sample_rate != self.sample_rate:
            raise ModelError(f"model {spec.name!r}: sample_rate is {spec.sample_rate} but the checkpoint's feature "
                             f"extractor expects {self.sample_rate} Hz; remove sample_rate (the checkpoint sets it)")
        waveform, fixed = _input_kind(extractor, self.sample_rate)
        self._window = window_samples(self.sample_rate, fixed)
        self._accepted = set(inspect.signature(self._tower.forward).parameters)
        call_params = inspect.signature(extractor.__call__).parameters
        self._call: dict[str, Any] = {"sampling_rate": self.sample_rate, "return_tensors": "pt"}
        if "return_attention_mask" in call_params:  # the mask gives each item's length on the input's time axis
            self._call["return_attention_mask"] = True
        if fixed is None:
            self._call["padding"] = True
        # the extractor's own setting says whether the model was trained to receive the mask
        self._pass_mask = bool(getattr(extractor, "return_attention_mask", False)) \
            and "attention_mask" in self._accepted
        self._lengths = getattr(self._tower, "_get_feat_extract_output_lengths", None)
        self._counts_samples = waveform and fixed is None and self._lengths is not None
        self._variable = fixed is None
        # a fixed-size extractor pads every input alike, batched or not
        self._pads_exactly = not self._variable
        self._min_samples = smallest_input(self._accepts, self._window, self.name)
        if self._variable and self._pass_mask:
            self._pads_exactly = self._padding_is_exact()
        self._probe()
        logger.info("%s: %s from %s, %d Hz, layer %d, dim %d, hop %.4f s, window %.2f s, mixed lengths per batch: %s",
                    self.name, type(self._tower).__name__, folder, self.sample_rate, self._layer, self.dim,
                    self.hop_seconds, self._window / self.sample_rate, self._pads_exactly)

    def _accepts(self, n_samples: int) -> bool:
        """Whether ``n_samples`` zeros pass the extractor, give the conv stack a frame and, for a
        variable-length input, run through the model (SEW's pooling needs several frames)."""
        signal = np.zeros(n_samples, np.float32)
        try:
            self._extractor([signal], **self._call)
        except (ValueError, RuntimeError, IndexError):  # e.g. AST's fbank needs one whole 25 ms frame
            return False
        if self._counts_samples and int(self._lengths(torch.tensor([n_samples]))[0]) < 1:
            return False
        if self._variable:
            try:
                self._run([signal])
            except _RUN_ERRORS:
                return False
        return True

    def _padding_is_exact(self) -> bool:
        """Whether a window's frames are the same padded in a batch (with the mask) as alone.

        Not so for every model that takes a mask: convolutions inside the blocks (Conformer)
        or positional convolutions over the padded frames (data2vec-audio) see the padding.
        Checked once on two noise signals; if they differ, only equal lengths share a batch.
        """
        long = max(min(self.sample_rate // 2, self._window), self._min_samples)
        noise = np.random.default_rng(1).standard_normal(long).astype(np.float32) * 0.1
        short = noise[:max(long // 3, self._min_samples)]
        together = self._forward([noise, short])[1]
        alone = self._forward([short])[0]
        exact = together.shape == alone.shape and np.allclose(together, alone, rtol=1e-3,
                                                              atol=1e-4 * (1 + float(np.abs(alone).max())))
        if not exact:
            logger.info("%s: padding changes %s's frames even with the attention mask; only windows of equal length "
                        "share a batch", self.name, type(self._tower).__name__)
        return exact

    def _run(self, pieces: list[np.ndarray]) -> tuple[Any, Any]:
        """The tower's output on one batch and the extractor's attention mask (None without one)."""
        features = self._extractor(pieces, **self._call)
        inputs = {key: torch.as_tensor(value).to(self.device) for key, value in features.items()
                  if key in self._accepted and (key != "attention_mask" or self._pass_mask)}
        with torch.inference_mode():
            return self._tower(**inputs, output_hidden_states=True), features.get("attention_mask")

    def _forward(self, pieces: list[np.ndarray]) -> list[np.ndarray]:
        try:
            out, mask = self._run(pieces)
        except _RUN_ERRORS as error:
            sizes = f"{min(p.size for p in pieces)}..{max(p.size for p in pieces)}"
            raise ModelError(f"{self.name}: {type(self._tower).__name__} failed on a batch of {len(pieces)} windows "
                             f"of {sizes} samples: {error}") from None
        hidden = getattr(out, "hidden_states", None)
        if not hidden:
            raise ModelError(f"{self.name}: {type(self._tower).__name__} returns no hidden states; "
                             "this checkpoint cannot be used as an embedding model")
        if not -len(hidden) <= self._layer < len(hidden):
            raise ModelError(f"{self.name}: layer {self._layer} does not exist; this model has {len(hidden)} hidden "
                             f"states (0: the embeddings before the first block, {len(hidden) - 1}: the last block): "
                             f"set layer to 0..{len(hidden) - 1} or -{len(hidden)}..-1")
        states = hidden[self._layer]
        if states.dim() == 4:  # a feature map (batch, channels, h, w): each position is a frame
            states = states.flatten(2).transpose(1, 2)
        states = states.float().cpu().numpy()
        counts = [states.shape[1]] * len(pieces)
        if mask is not None and self._lengths is not None:
            counts = [min(max(int(n), 1), states.shape[1]) for n in self._lengths(torch.as_tensor(mask).sum(-1))]
        return [np.ascontiguousarray(item[:n], dtype=np.float32) for item, n in zip(states, counts)]


def _checkpoint_folder(spec: ModelSpec) -> Path:
    """The checkpoint folder of ``spec``, checked to hold a ``config.json``."""
    if not spec.path:
        raise ModelError(f"model {spec.name!r}: set `path` to a local transformers checkpoint folder "
                         "(written by model.save_pretrained and feature_extractor.save_pretrained)")
    folder = Path(spec.path).expanduser()
    if not folder.exists():
        raise ModelError(f"model {spec.name!r}: {folder} does not exist; set `path` to a local transformers "
                         "checkpoint folder (models are never downloaded: save or copy the checkpoint there first)")
    if not folder.is_dir():
        raise ModelError(f"model {spec.name!r}: {folder} is a file; type 'huggingface' takes a checkpoint folder "
                         "(a .pt file takes type 'torchscript', an .onnx file type 'onnx')")
    if not (folder / "config.json").is_file():
        raise ModelError(f"model {spec.name!r}: {folder} is not a transformers checkpoint (it has no config.json); "
                         "write one with model.save_pretrained(folder) and feature_extractor.save_pretrained(folder)")
    return folder


def _load(folder: Path) -> tuple[Any, Any]:
    """The model (float32, eval mode) and feature extractor of ``folder``, or a ModelError saying why not.

    transformers raises many exception types from its loaders (OSError, ValueError, KeyError,
    ImportError for a missing optional package...), so each call is guarded broadly and its
    message is passed on inside one that says what to do.
    """
    try:
        import transformers
    except ImportError:
        raise ModelError("huggingface models need the package 'transformers', which is not installed: "
                         "pip install -r requirements.txt (or make setup)") from None
    version = transformers.__version__
    with _no_progress_bars(transformers.utils.logging):
        try:
            config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
        except Exception as error:  # noqa: BLE001 - see the docstring
            raise ModelError(f"{folder}/config.json cannot be read by transformers {version} ({error}); a model type "
                             "newer than this transformers needs an upgrade, and checkpoints that need custom code "
                             "(trust_remote_code) are not supported") from None
        try:
            extractor = transformers.AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
        except Exception as error:  # noqa: BLE001
            raise ModelError(_not_audio(folder, config, f"it has no audio feature extractor ({error})")) from None
        if not isinstance(getattr(extractor, "sampling_rate", None), int):
            raise ModelError(_not_audio(folder, config, f"its preprocessor ({type(extractor).__name__}) has no "
                                                        "sampling_rate"))
        try:
            model = transformers.AutoModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        except Exception as error:  # noqa: BLE001
            raise ModelError(f"the weights in {folder} cannot be loaded by transformers {version} ({error}); "
                             "check that the folder holds the complete output of model.save_pretrained") from None
    return model.eval(), extractor


def _not_audio(folder: Path, config: Any, reason: str) -> str:
    return (f"{folder} is not an audio model: {reason} (model type {getattr(config, 'model_type', '?')!r}). "
            "Point `path` at an audio checkpoint (wav2vec2, HuBERT, WavLM, AST, Whisper, CLAP...); if this is one, "
            "save its feature extractor there too: feature_extractor.save_pretrained(folder)")


def _audio_tower(model: Any, folder: Path) -> Any:
    """The module whose hidden states are the frames: an audio tower, an encoder, or the model itself."""
    if callable(getattr(model, "get_audio_features", None)):
        for attribute in AUDIO_TOWERS:
            tower = getattr(model, attribute, None)
            if isinstance(tower, torch.nn.Module) and getattr(tower, "main_input_name", None) in AUDIO_INPUTS:
                return tower
        raise ModelError(f"{folder}: {type(model).__name__} has get_audio_features but no audio tower under "
                         f"{', '.join(AUDIO_TOWERS)}; this architecture is not supported")
    if getattr(model.config, "is_encoder_decoder", False) and callable(getattr(model, "get_encoder", None)):
        model = model.get_encoder()
    main_input = getattr(model, "main_input_name", None)
    if main_input not in AUDIO_INPUTS:
        raise ModelError(_not_audio(folder, model.config, f"its main input is {main_input!r}, not "
                                                          f"{' or '.join(AUDIO_INPUTS)}"))
    return model


def _input_kind(extractor: Any, sample_rate: int) -> tuple[bool, int | None]:
    """Whether the extractor passes the raw waveform, and its fixed span in samples (None: variable length).

    Told apart by running it on two lengths: a fixed-size extractor gives the same shape.
    """
    lengths = (max(sample_rate // 8, 1), max(sample_rate // 4, 2))
    shapes = []
    for n in lengths:
        features = extractor([np.zeros(n, np.float32)], sampling_rate=sample_rate, return_tensors="np")
        key = next((k for k in AUDIO_INPUTS if k in features), None)
        if key is None:
            raise ModelError(f"the feature extractor {type(extractor).__name__} gives {sorted(features)}, "
                             f"none of {', '.join(AUDIO_INPUTS)}; it is not an audio feature extractor")
        shapes.append(np.shape(features[key]))
    waveform = shapes[0] == (1, lengths[0])
    if shapes[0] != shapes[1]:
        return waveform, None
    for attribute in ("n_samples", "nb_max_samples"):  # Whisper, CLAP
        if isinstance(getattr(extractor, attribute, None), int):
            return waveform, getattr(extractor, attribute)
    if isinstance(getattr(extractor, "max_length", None), int):  # AST: frames of 10 ms
        return waveform, round(extractor.max_length * _FBANK_SHIFT_SECONDS * sample_rate)
    logger.warning("%s pads or cuts its input to a fixed size that audioclust cannot read; windows of up to the "
                   "default length are used and their end may be cut", type(extractor).__name__)
    return waveform, window_samples(sample_rate)


@contextmanager
def _no_progress_bars(logging_module: Any) -> Iterator[None]:
    """Silence transformers' per-load progress bars (one per checkpoint read) for the duration."""
    enabled = logging_module.is_progress_bar_enabled()
    logging_module.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging_module.enable_progress_bar()
