"""Scalar descriptors of one recording (spectral centroid, flatness, contrast, tempo ...), from the
same STFT as the features.
"""

from __future__ import annotations

import math
from functools import lru_cache

import librosa
import numpy as np
import scipy.fft

from audioclust.dsp.features import FRAME_BLOCK, _window

#: spectral roll-off: the frequency below which this share of the magnitude lies
ROLL_PERCENT = 0.85

#: spectral contrast: lowest band edge in Hz and the most octave bands (fewer when Nyquist is lower)
CONTRAST_FMIN = 200.0

CONTRAST_MAX_BANDS = 6

#: spectral contrast: share of a band's bins averaged for its peak and its valley (librosa's default)
CONTRAST_QUANTILE = 0.02

#: tempo: librosa.feature.tempo's defaults (log-normal prior around 120 BPM with one octave of
#: spread, an 8 s autocorrelation window, nothing above 320 BPM)
TEMPO_START_BPM = 120.0
TEMPO_STD_BPM = 1.0
TEMPO_AC_SIZE = 8.0
TEMPO_MAX_BPM = 320.0

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


def onset_envelope(mel_db: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Onset strength of a dB mel-spectrogram, as ``librosa.onset.onset_strength(S=mel_db)``.

    The mean over bands of the positive frame-to-frame increase, delayed so that frame t
    reports the change centred on it (lag 1, no maximum filter, centred frames).

    Parameters
    ----------
    mel_db : ndarray of shape (n_mels, n_frames), float32

    Returns
    -------
    ndarray of shape (n_frames,), of the dtype of ``mel_db``
    """
    rise = np.maximum(0.0, mel_db[:, 1:] - mel_db[:, :-1])
    delay = 1 + n_fft // (2 * hop_length)
    return np.pad(np.mean(rise, axis=-2), (delay, 0), mode="constant")[:mel_db.shape[1]]


def tempo_lags(sr: int, hop_length: int) -> int:
    """Lags of the tempogram: frames in its 8 s autocorrelation window (``librosa.time_to_frames``)."""
    return int(TEMPO_AC_SIZE * sr) // hop_length


@lru_cache(maxsize=8)
def tempo_window(sr: int, hop_length: int) -> np.ndarray:
    """The tempogram's periodic Hann window over :func:`tempo_lags` frames, float64, as librosa builds it."""
    window = librosa.filters.get_window("hann", tempo_lags(sr, hop_length), fftbins=True)
    window.flags.writeable = False
    return window


@lru_cache(maxsize=8)
def _tempo_grid(sr: int, hop_length: int) -> tuple[int, np.ndarray, np.ndarray]:
    """What ``librosa.feature.tempo`` builds on every call, once: the autocorrelation's FFT length,
    the lags' BPM (``librosa.tempo_frequencies``) and the log prior over them."""
    win_length = tempo_lags(sr, hop_length)
    n_pad = scipy.fft.next_fast_len(2 * win_length - 1, real=True)
    bpms = np.zeros(win_length, dtype=np.float64)
    bpms[0] = np.inf
    bpms[1:] = 60.0 * sr / (hop_length * np.arange(1.0, win_length))
    logprior = -0.5 * ((np.log2(bpms) - np.log2(TEMPO_START_BPM)) / TEMPO_STD_BPM) ** 2
    logprior[:int(np.argmax(bpms < TEMPO_MAX_BPM))] = -np.inf
    for array in (bpms, logprior):
        array.flags.writeable = False
    return n_pad, bpms, logprior


def onset_tempo(mel_db: np.ndarray, *, sr: int, n_fft: int, hop_length: int,
                window: np.ndarray | None = None) -> float:
    """Global tempo in BPM from the onset envelope of the dB mel-spectrogram.

    The numbers of ``librosa.onset.onset_strength(S=mel_db)`` then ``librosa.feature.tempo``
    (tests compare them), without librosa's per-call set-up: its lags and prior are built
    once. Each frame's 8 s of envelope is autocorrelated, the normalised autocorrelations are
    averaged, and the lag with the highest log-prior-weighted value wins. NaN when the
    envelope has no onset at all (a steady tone, silence), where librosa would return its
    prior. For clips of a few beats the value is a rough guess.

    Parameters
    ----------
    mel_db : ndarray of shape (n_mels, n_frames)
    window : ndarray, optional
        :func:`tempo_window` of ``sr`` and ``hop_length``, when already at hand.
    """
    envelope = onset_envelope(mel_db, n_fft=n_fft, hop_length=hop_length)
    if not np.any(envelope > 0):
        return math.nan
    if not np.isfinite(envelope).all():
        raise ValueError("the onset envelope holds non-finite values")
    n_pad, bpms, logprior = _tempo_grid(sr, hop_length)
    window = tempo_window(sr, hop_length) if window is None else window
    win_length = tempo_lags(sr, hop_length)
    # librosa.feature.tempogram: centred, ramped to zero at both ends, one window per frame
    n = envelope.shape[-1]
    padded = np.pad(envelope, [(win_length // 2, win_length // 2)], mode="linear_ramp", end_values=[0, 0])
    frames = np.lib.stride_tricks.sliding_window_view(padded, win_length).T[:, :n]
    spectrum = scipy.fft.rfft(frames * window[:, None], n=n_pad, axis=-2)
    autocorr = scipy.fft.irfft(spectrum.real**2 + spectrum.imag**2, n=n_pad, axis=-2)[:win_length]
    peak = np.max(np.abs(autocorr), axis=-2, keepdims=True)
    peak[peak < np.finfo(autocorr.dtype).tiny] = 1.0
    strength = np.mean(autocorr / peak, axis=-1)
    return float(bpms[np.argmax(np.log1p(1e6 * strength) + logprior)])


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
    window: np.ndarray | None = None, tempo_window: np.ndarray | None = None,
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
    window, tempo_window : ndarray, optional
        The STFT's window and :func:`tempo_window`, when already at hand (default: built by librosa).

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
    window = _window(n_fft) if window is None else window
    window_energy = float(np.sum(window.astype(np.float64) ** 2))
    per_frame = np.empty((7, n_frames), dtype=np.float64)
    for start in range(0, n_frames, FRAME_BLOCK):  # per-frame values, in blocks: bounded temporaries
        block = slice(start, min(start + FRAME_BLOCK, n_frames))
        per_frame[[0, 2, 3, 4, 5, 6], block] = _frame_descriptors(magnitude[:, block], sr=sr, n_fft=n_fft,
                                                                    window_energy=window_energy)
    per_frame[1] = zero_crossing_rate(y, frame_length=n_fft, hop_length=hop_length)
    means, stds = per_frame.mean(axis=1), per_frame.std(axis=1)
    out: dict[str, float] = {"duration": len(y) / sr}
    for i, name in enumerate(("rms", "zcr", "centroid", "bandwidth", "rolloff", "flatness", "contrast")):
        out[f"{name}_mean"] = float(means[i])
        out[f"{name}_std"] = float(stds[i])
    out["tempo"] = onset_tempo(mel_db, sr=sr, n_fft=n_fft, hop_length=hop_length, window=tempo_window)
    return out


def _frame_descriptors(magnitude: np.ndarray, *, sr: int, n_fft: int, window_energy: float) -> np.ndarray:
    """Per-frame RMS, centroid, bandwidth, roll-off, flatness and contrast of some frames of ``|STFT|``.

    Parameters
    ----------
    magnitude : ndarray of shape (1 + n_fft // 2, n_frames)
    window_energy : float
        Sum of the squared STFT window (for the RMS).

    Returns
    -------
    ndarray of shape (6, n_frames), float64 (see :func:`descriptors`)
    """
    freqs, freqs_squared = _bin_frequencies(sr, magnitude.shape[0])
    power = magnitude**2
    total = magnitude.sum(axis=0, dtype=np.float64)
    weights = magnitude / np.where(total > 0, total, 1.0).astype(np.float32)  # an all-zero frame stays 0

    # Parseval over the one-sided spectrum: DC and Nyquist bins count once, the others twice
    two_sided = 2 * power.sum(axis=0, dtype=np.float64) - power[0] - (power[-1] if n_fft % 2 == 0 else 0)
    rms = np.sqrt(two_sided / (n_fft * window_energy))
    centroid = freqs @ weights
    bandwidth = np.sqrt(np.maximum(freqs_squared @ weights - centroid**2, 0))  # E[f²] - E[f]²
    cumulative = np.cumsum(magnitude, axis=0, dtype=np.float64)
    rolloff = freqs[np.argmax(cumulative >= ROLL_PERCENT * cumulative[-1], axis=0)]
    floored = np.maximum(power, np.float32(1e-10))
    flatness = np.exp(np.log(floored).mean(axis=0, dtype=np.float64)) / floored.mean(axis=0, dtype=np.float64)
    n_bands = contrast_bands(sr)
    contrast = (spectral_contrast(magnitude, sr=sr, n_fft=n_fft, n_bands=n_bands).mean(axis=0)
                if n_bands else np.full(magnitude.shape[1], np.nan))
    return np.vstack([rms, centroid, bandwidth, rolloff, flatness, contrast]).astype(np.float64)


@lru_cache(maxsize=8)
def _bin_frequencies(sr: int, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The STFT bins' frequencies in Hz and their squares, float32 (the per-frame descriptors' weights)."""
    freqs = np.linspace(0.0, sr / 2, n_bins, dtype=np.float32)
    squared = freqs**2
    for array in (freqs, squared):
        array.flags.writeable = False
    return freqs, squared


@lru_cache(maxsize=8)
def _contrast_rows(sr: int, n_fft: int, n_bands: int) -> tuple[tuple[np.ndarray, int], ...]:
    """Per octave band of :func:`spectral_contrast`: its rows of ``|STFT|`` and how many of its
    bins make its peak and valley, as librosa selects them on every call."""
    freq = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    edges = np.zeros(n_bands + 2)
    edges[1:] = CONTRAST_FMIN * 2.0 ** np.arange(0, n_bands + 1)
    out = []
    for k, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        band = np.logical_and(freq >= low, freq <= high)
        inside = np.flatnonzero(band)
        if k > 0:  # one bin below the band, and the last band runs up to Nyquist
            band[inside[0] - 1] = True
        if k == n_bands:
            band[inside[-1] + 1:] = True
        rows = np.flatnonzero(band)
        if k < n_bands:  # the top bin belongs to the next band
            rows = rows[:-1]
        rows.flags.writeable = False
        out.append((rows, max(int(np.rint(CONTRAST_QUANTILE * band.sum())), 1)))
    return tuple(out)


def spectral_contrast(magnitude: np.ndarray, *, sr: int, n_fft: int, n_bands: int) -> np.ndarray:
    """Spectral contrast in dB per octave band from 200 Hz, as ``librosa.feature.spectral_contrast(S=magnitude,
    n_fft=n_fft, fmin=200, n_bands=n_bands)`` (tests compare them), with the bands' rows chosen once.

    Parameters
    ----------
    magnitude : ndarray of shape (1 + n_fft // 2, n_frames)
        ``|STFT|``.
    n_fft : int
        Its window length.
    n_bands : int
        Octave bands; every band's lower edge must lie below Nyquist (:func:`contrast_bands`).

    Returns
    -------
    ndarray of shape (n_bands + 1, n_frames), float64: per band, the dB difference between the
    mean of its loudest and of its quietest 2 % of bins; the whole array floored 80 dB below its maximum.
    """
    valley = np.zeros((n_bands + 1, magnitude.shape[1]))
    peak = np.zeros_like(valley)
    for k, (rows, count) in enumerate(_contrast_rows(sr, n_fft, n_bands)):
        ordered = np.sort(magnitude[rows], axis=-2)
        valley[k] = np.mean(ordered[:count], axis=-2)
        peak[k] = np.mean(ordered[-count:], axis=-2)
    return _power_db_top80(peak) - _power_db_top80(valley)


def _power_db_top80(power: np.ndarray) -> np.ndarray:
    """``librosa.power_to_db(power)`` with its defaults (ref 1, amin 1e-10, top_db 80)."""
    db = 10.0 * np.log10(np.maximum(1e-10, power))
    return np.maximum(db, db.max() - 80.0)
