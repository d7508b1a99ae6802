"""Signal processing on float32 arrays: mono mix-down, resampling, zero-phase low-pass, levels."""

from __future__ import annotations

import logging

import librosa
import numpy as np
from scipy import signal

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- processing

def to_mono(y: np.ndarray) -> np.ndarray:
    """Mix down to mono by averaging the channels.

    Parameters
    ----------
    y : ndarray of shape (channels, frames) or (frames,).

    Returns
    -------
    ndarray of shape (frames,), float32.
    """
    y = np.asarray(y, dtype=np.float32)
    return y if y.ndim == 1 else y.mean(axis=0, dtype=np.float32)


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with soxr (high quality); the same rate returns ``y`` as is.

    Parameters
    ----------
    y : ndarray of shape (..., frames).

    Returns
    -------
    ndarray of shape (..., ceil(frames * target_sr / orig_sr)), float32.
    """
    y = np.asarray(y, dtype=np.float32)
    if orig_sr == target_sr or y.shape[-1] == 0:
        return y
    return librosa.resample(y=y, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq").astype(np.float32)


def lowpass(y: np.ndarray, *, sr: int, cutoff: float | None, order: int) -> np.ndarray:
    """Zero-phase Butterworth low-pass along the last axis.

    The filter (second-order sections) runs forward and backward (``sosfiltfilt``),
    so the phase is zero and the magnitude is the Butterworth response squared:
    −6 dB at ``cutoff`` and ``2 * order * 6`` dB per octave above it.

    Parameters
    ----------
    y : ndarray of shape (..., frames).
    sr : sample rate in Hz.
    cutoff : −3 dB frequency of one pass, in Hz; None leaves ``y`` unchanged, as does a
        cutoff at or above Nyquist (``sr / 2``, with a warning).
    order : Butterworth order of one pass.

    Returns
    -------
    ndarray of the shape of ``y``, float32.
    """
    y = np.asarray(y, dtype=np.float32)
    if cutoff is None:
        return y
    if cutoff >= sr / 2:
        log.warning("low-pass cutoff %.0f Hz is at or above Nyquist (%.0f Hz at %d Hz): not filtering",
                    cutoff, sr / 2, sr)
        return y
    n = y.shape[-1]
    if n < 2:
        return y
    sos = signal.butter(order, cutoff, btype="low", fs=sr, output="sos")
    # scipy's default edge padding (3 * taps) needs a longer signal; shorten it for tiny inputs
    taps = 2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return signal.sosfiltfilt(sos, y, axis=-1, padlen=min(3 * taps, n - 1)).astype(np.float32)


def sanitize(y: np.ndarray) -> tuple[np.ndarray, int]:
    """Replace NaN and ±inf samples with 0.

    Parameters
    ----------
    y : ndarray of any shape.

    Returns
    -------
    y : float32 copy (or ``y`` itself when all samples are finite).
    n_replaced : how many samples were replaced.
    """
    y = np.asarray(y, dtype=np.float32)
    bad = ~np.isfinite(y)
    n_bad = int(bad.sum())
    if n_bad:
        y = np.where(bad, np.float32(0.0), y)
    return y, n_bad


def peak_db(y: np.ndarray) -> float:
    """Peak level in dBFS (``20 log10 max|y|``); ``-inf`` for an empty or all-zero signal."""
    y = np.asarray(y)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")
