"""Resemblyzer: a speaker encoder (GE2E, 3-layer LSTM) giving 256-d d-vectors of 1.6 s windows.

The weights ship in the ``resemblyzer`` wheel (``resemblyzer/pretrained.pt``, Apache-2.0).
Each signal is prepared as ``VoiceEncoder.embed_utterance`` does, with the package's own
``preprocess_wav`` and ``compute_partial_slices`` (windows of 160 mel frames = 1.6 s at 1.3
windows per second, a last window kept when it covers at least 75 % of its span, the signal
zero-padded to the last window's end), and the mel spectrogram of ``wav_to_mel_spectrogram``
(librosa's power mel: 40 mels, 25 ms windows every 10 ms) — its STFT per signal, the mel
projection for all signals in one matrix product. The windows of all signals then share LSTM
passes; the frames returned are the per-window embeddings (the package's "partials"),
L2-normalised.

Preprocessing is applied, because the encoder was trained on audio prepared that way:
the volume is raised (never lowered) to -30 dBFS and webrtcvad (mode 3, 30 ms windows,
smoothed, silences longer than 6 windows removed) trims the pauses; the length is also cut
to a multiple of 30 ms. When nothing is left (a silent file, a sound without voice, a signal
under 30 ms) the untrimmed signal is used instead, so every file gets an embedding. The
frames' time axis therefore runs over the trimmed signal: successive windows are
:attr:`~ResemblyzerModel.hop_seconds` = 0.77 s apart in the voiced audio, not in the file.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import librosa
import numpy as np
import torch
from torch import nn

from audioclust.embed.base import NetworkModel
from audioclust.embed.spec import ModelSpec

with warnings.catch_warnings():  # resemblyzer imports scipy.ndimage.morphology, deprecated in SciPy
    warnings.simplefilter("ignore", DeprecationWarning)
    import resemblyzer
    from resemblyzer import hparams
    from resemblyzer.audio import preprocess_wav
    from resemblyzer.voice_encoder import VoiceEncoder

RATE = 1.3           # windows per second, embed_utterance's default
MIN_COVERAGE = 0.75  # embed_utterance's default

WEIGHTS = Path(resemblyzer.__file__).resolve().parent / "pretrained.pt"


class SpeakerEncoder(nn.Module):
    """``VoiceEncoder``'s network alone: LSTM(40, 256, 3 layers), last hidden state -> Linear -> ReLU -> L2."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(hparams.mel_n_channels, hparams.model_hidden_size, hparams.model_num_layers,
                            batch_first=True)
        self.linear = nn.Linear(hparams.model_hidden_size, hparams.model_embedding_size)
        self.relu = nn.ReLU()

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """(batch, 160, 40) mel windows -> (batch, 256) unit-length embeddings."""
        _, (hidden, _) = self.lstm(mels)
        raw = self.relu(self.linear(hidden[-1]))
        # a window whose ReLU output is all zero stays zero instead of becoming NaN
        return raw / torch.norm(raw, dim=1, keepdim=True).clamp_min(1e-12)


class ResemblyzerModel(NetworkModel):
    """Resemblyzer's pretrained voice encoder, windows of many signals per LSTM pass.

    Parameters
    ----------
    spec : ModelSpec
        ``type`` ``"resemblyzer"``; ``batch_size`` is windows per forward pass (the LSTM gains
        most from batching: 32 or more windows make the CPU's matrix products efficient).
    device : torch.device

    Notes
    -----
    The number of frames follows ``VoiceEncoder.compute_partial_slices`` on the preprocessed
    length n: with ``F = ceil((n + 1) / 160)`` mel frames, windows start every 77 frames
    while ``start < F - 160 + 78``, and the last is dropped (unless it is the only one) when
    ``(n - 160 * start) / 25600 < 0.75``.
    """

    def __init__(self, spec: ModelSpec, device: torch.device) -> None:
        rate = hparams.sampling_rate
        samples_per_frame = rate * hparams.mel_window_step // 1000
        frame_step = int(np.round(rate / RATE / samples_per_frame))  # as compute_partial_slices
        super().__init__(spec, device, _load_network(), sample_rate=rate, dim=hparams.model_embedding_size,
                         hop_seconds=frame_step * samples_per_frame / rate)

    def inputs(self, signals: list[np.ndarray]) -> list[np.ndarray]:
        """The mel windows of each signal (at 16 kHz): arrays of shape (n_windows, 160, 40); the mel
        projection of all signals is one matrix product."""
        wavs, mel_slices = zip(*(padded_for_windows(preprocess(y)) for y in signals))
        mels = mel_spectrograms(list(wavs))
        return [np.stack([mel[s] for s in slices]) for mel, slices in zip(mels, mel_slices)]


def preprocess(y: np.ndarray) -> np.ndarray:
    """``resemblyzer.preprocess_wav`` of a 16 kHz signal, or the signal itself when that leaves nothing.

    Parameters
    ----------
    y : ndarray of shape (n_samples,), float32 at 16 kHz.

    Returns
    -------
    ndarray of shape (m,), m >= 1: volume-normalised with pauses trimmed (float64 when the gain
    was raised, as the package leaves it), or ``y``.
    """
    # silence makes its volume gain infinite (0 * inf = NaN, then an empty trim): expected, not worth a warning
    with np.errstate(divide="ignore", invalid="ignore"):
        trimmed = preprocess_wav(y)
    if trimmed.size == 0 or not np.isfinite(trimmed).all():
        return y
    return trimmed


def padded_for_windows(wav: np.ndarray) -> tuple[np.ndarray, list[slice]]:
    """A preprocessed signal zero-padded to its last window's end, and its windows' mel-frame slices.

    Parameters
    ----------
    wav : ndarray of shape (n_samples,) at 16 kHz.

    Returns
    -------
    wav : ndarray of shape (max(n_samples, end of the last window),).
    slices : one slice of 160 mel frames per window (``compute_partial_slices``).
    """
    wav_slices, mel_slices = VoiceEncoder.compute_partial_slices(len(wav), RATE, MIN_COVERAGE)
    end = wav_slices[-1].stop
    if end >= len(wav):
        wav = np.pad(wav, (0, end - len(wav)))
    return wav, mel_slices


def mel_spectrograms(wavs: list[np.ndarray]) -> list[np.ndarray]:
    """``wav_to_mel_spectrogram`` of each signal, the mel projection of all of them in one product.

    One product instead of one per file: on a busy machine each small multi-threaded BLAS call
    can wait for a time slice, which cost more than the LSTM itself.

    Parameters
    ----------
    wavs : ndarrays of shape (n_samples,) at 16 kHz.

    Returns
    -------
    list of float32 ndarrays of shape (1 + n_samples // 160, 40): frames by mel bands.
    """
    n_fft = hparams.sampling_rate * hparams.mel_window_length // 1000
    hop = hparams.sampling_rate * hparams.mel_window_step // 1000
    # float32 powers: the held spectra then take about as much memory as the audio itself
    powers = [(np.abs(librosa.stft(wav, n_fft=n_fft, hop_length=hop)) ** 2).astype(np.float32) for wav in wavs]
    mel = _mel_basis(hparams.sampling_rate, n_fft, hparams.mel_n_channels) @ np.concatenate(powers, axis=1)
    return [m.T for m in np.split(mel, np.cumsum([p.shape[1] for p in powers])[:-1], axis=1)]


@functools.cache
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa's mel filters with ``melspectrogram``'s defaults (Slaney scale and norm), float32."""
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)


def _load_network() -> SpeakerEncoder:
    """The checkpoint's ``model_state`` (weights only) in :class:`SpeakerEncoder`; the GE2E loss's
    similarity scale and bias, which the checkpoint also holds, are left out."""
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)["model_state"]
    net = SpeakerEncoder()
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("similarity_")}, strict=True)
    return net.eval()
