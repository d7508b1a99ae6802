"""Scalar descriptors of one recording (spectral centroid, flatness, contrast, tempo ...), from the
same STFT as the features.
"""

from __future__ import annotations

import math
from functools import lru_cache

import librosa
import numpy as np

from audioclust.dsp.features import FRAME_BLOCK, _window

#: spectral roll-off: the frequency below which this share of the magnitude lies
ROLL_PERCENT = 0.85

#: spectral contrast: lowest band edge in Hz and the most octave bands (fewer when Nyquist is lower)
CONTRAST_FMIN = 200.0

CONTRAST_MAX_BANDS = 6

DESCRIPTORS: tuple[str, ...] = (
    "duration", "rms_mean", "rms_std", "zcr_mean", "zcr_std", "centroid_mean", "centroid_std",
    "bandwidth_mean", "bandwidth_std", "rolloff_mean", "rolloff_std", "flatness_mean", "flatness_std",
    "contrast_mean", "contrast_std", "tempo",
)


# --------------------------------------------------------------------------- descriptors

def contrast_bands(sr: int) -> int:
    """Octave bands of the spectral contrast: up to 6, each lower edge below Nyquist (0 if none fits)."""
    ratio = (sr / 2) / CONTRAST_FMIN
    return 0 if ratio <= 1 else min(CONTRAST_MAX_BANDS, math.ceil(math.log2(ratio)))


def onset_tempo(mel_db: np.ndarray, *, sr: int, n_fft: int, hop_length: int) -> float:
    """Global tempo in BPM from the onset envelope of the dB mel-spectrogram.

    ``librosa.onset.onset_strength(S=mel_db)`` then ``librosa.feature.tempo``. NaN when the
    envelope has no onset at all (a steady tone, silence), where librosa would return its prior.
    For clips of a few beats the value is a rough guess.

    Parameters
    ----------
    mel_db : ndarray of shape (n_mels, n_frames)
    """
    envelope = librosa.onset.onset_strength(S=mel_db, sr=sr, n_fft=n_fft, hop_length=hop_length)
    if not np.any(envelope > 0):
        return math.nan
    return float(librosa.feature.tempo(onset_envelope=envelope, sr=sr, hop_length=hop_length)[0])


def zero_crossing_rate(y: np.ndarray, *, frame_length: int, hop_length: int) -> np.ndarray:
    """Zero crossings per sample in centred frames, as ``librosa.feature.zero_crossing_rate``.

    Edge-padded frames; |y| <= 1e-10 counts as 0 and 0 as positive. One cumulative sum
    over the signal instead of a pass per frame.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)

    Returns
    -------
    ndarray of shape (1 + n_samples // hop_length,), float64
    """
    padded = np.pad(y, frame_length // 2, mode="edge")
    starts = np.arange(0, len(padded) - frame_length + 1, hop_length)
    out = np.empty(len(starts), dtype=np.float64)
    for first in range(0, len(starts), FRAME_BLOCK):  # in blocks: bounded temporaries on long signals
        block = starts[first:first + FRAME_BLOCK]
        segment = padded[block[0]:block[-1] + frame_length]
        negative = np.signbit(np.where(np.abs(segment) <= 1e-10, 0, segment))
        crossings = np.concatenate(([0], np.cumsum(negative[1:] != negative[:-1])))
        local = block - block[0]
        # crossings between samples start+1 .. start+frame_length-1 of each frame
        out[first:first + len(block)] = (crossings[local + frame_length - 1] - crossings[local]) / frame_length
    return out


def descriptors(
    y: np.ndarray, magnitude: np.ndarray, mel_db: np.ndarray, *, sr: int, n_fft: int, hop_length: int,
) -> dict[str, float]:
    """Scalar descriptors of one file (mean and std over frames), from its STFT.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        The signal (for the duration and the zero-crossing rate).
    magnitude : ndarray of shape (1 + n_fft // 2, n_frames)
        ``|STFT|`` of ``y`` (:func:`stft_magnitude`).
    mel_db : ndarray of shape (n_mels, n_frames)
        dB mel-spectrogram (for the tempo).

    Returns
    -------
    dict with the keys of :data:`DESCRIPTORS`: ``duration`` (s); ``rms`` (signal RMS, the
    frame energy corrected for the Hann window, so a sine of amplitude A gives A/√2);
    ``zcr`` (crossings per sample, :func:`zero_crossing_rate`; 2f/sr for a sine);
    spectral ``centroid``, ``bandwidth``, ``rolloff`` (85 %) in Hz and ``flatness`` (0..1)
    as librosa defines them on the magnitude; ``contrast`` (dB, mean over the octave bands
    of ``librosa.feature.spectral_contrast`` from 200 Hz); ``tempo`` (BPM, :func:`onset_tempo`).
    """
    n_frames = magnitude.shape[1]
    per_frame = np.empty((7, n_frames), dtype=np.float64)
    for start in range(0, n_frames, FRAME_BLOCK):  # per-frame values, in blocks: bounded temporaries
        block = slice(start, min(start + FRAME_BLOCK, n_frames))
        per_frame[[0, 2, 3, 4, 5, 6], block] = _frame_descriptors(magnitude[:, block], sr=sr, n_fft=n_fft)
    per_frame[1] = zero_crossing_rate(y, frame_length=n_fft, hop_length=hop_length)
    means, stds = per_frame.mean(axis=1), per_frame.std(axis=1)
    out: dict[str, float] = {"duration": len(y) / sr}
    for i, name in enumerate(("rms", "zcr", "centroid", "bandwidth", "rolloff", "flatness", "contrast")):
        out[f"{name}_mean"] = float(means[i])
        out[f"{name}_std"] = float(stds[i])
    out["tempo"] = onset_tempo(mel_db, sr=sr, n_fft=n_fft, hop_length=hop_length)
    return out


def _frame_descriptors(magnitude: np.ndarray, *, sr: int, n_fft: int) -> np.ndarray:
    """Per-frame RMS, centroid, bandwidth, roll-off, flatness and contrast of some frames of ``|STFT|``.

    Parameters
    ----------
    magnitude : ndarray of shape (1 + n_fft // 2, n_frames)

    Returns
    -------
    ndarray of shape (6, n_frames), float64 (see :func:`descriptors`)
    """
    freqs = np.linspace(0.0, sr / 2, magnitude.shape[0], dtype=np.float32)
    power = magnitude**2
    total = magnitude.sum(axis=0, dtype=np.float64)
    weights = magnitude / np.where(total > 0, total, 1.0).astype(np.float32)  # an all-zero frame stays 0

    # Parseval over the one-sided spectrum: DC and Nyquist bins count once, the others twice
    two_sided = 2 * power.sum(axis=0, dtype=np.float64) - power[0] - (power[-1] if n_fft % 2 == 0 else 0)
    rms = np.sqrt(two_sided / (n_fft * _window_energy(n_fft)))
    centroid = freqs @ weights
    bandwidth = np.sqrt(np.maximum((freqs**2) @ weights - centroid**2, 0))  # E[f²] - E[f]²
    cumulative = np.cumsum(magnitude, axis=0, dtype=np.float64)
    rolloff = freqs[np.argmax(cumulative >= ROLL_PERCENT * cumulative[-1], axis=0)]
    floored = np.maximum(power, np.float32(1e-10))
    flatness = np.exp(np.log(floored).mean(axis=0, dtype=np.float64)) / floored.mean(axis=0, dtype=np.float64)
    n_bands = contrast_bands(sr)
    contrast = (librosa.feature.spectral_contrast(S=magnitude, sr=sr, n_fft=n_fft, fmin=CONTRAST_FMIN,
                                                  n_bands=n_bands).mean(axis=0)
                if n_bands else np.full(magnitude.shape[1], np.nan))
    return np.vstack([rms, centroid, bandwidth, rolloff, flatness, contrast]).astype(np.float64)


@lru_cache(maxsize=8)
def _window_energy(n_fft: int) -> float:
    return float(np.sum(_window(n_fft).astype(np.float64) ** 2))
