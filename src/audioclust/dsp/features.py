"""Feature functions: arrays in, arrays out (librosa style, keyword arguments).

One STFT per file feeds everything (:func:`analyse`):

- ``spectrogram``: ``20·log10(max(|STFT|, 1e-5))``, dB re 1.0 of the magnitude,
  shape ``(1 + n_fft // 2, n_frames)``. No per-file reference or ``top_db``, so
  levels compare across files. A full-scale sine (amplitude 1) peaks near
  ``20·log10(sum(hann) / 2)`` = +54.2 dB at ``n_fft = 2048``; the floor is -100 dB.
- ``mel``: ``10·log10(max(mel_basis @ |STFT|², 1e-10))``, dB re 1.0 of the mel
  power, shape ``(n_mels, n_frames)``; the mel basis is ``librosa.filters.mel``
  (Slaney scale and norm) between ``fmin`` and ``fmax`` (``None``: the low-pass
  cutoff of stage 02, or Nyquist).
- ``chroma``: ``chroma_basis @ |STFT|²`` normalised to max 1 per frame
  (what ``librosa.feature.chroma_stft`` computes, with tuning fixed at 0 so every
  file uses the same filters), shape ``(n_chroma, n_frames)``, row 0 = C.
- ``mfcc``: DCT-II (orthonormal) of the dB mel-spectrogram
  (``librosa.feature.mfcc(S=mel_db)``), shape ``(n_mfcc, n_frames)``.
- ``mfcc_no_c0``: ``mfcc[1:]`` (c0 is the overall level), shape ``(n_mfcc - 1, n_frames)``.

The filter banks and the window are built by librosa once per process and parameter set
(``lru_cache``), or handed in ready-made (:class:`audioclust.dsp.extraction.Bases`): the
per-file functions below then run on NumPy and SciPy alone.

PNG mapping
-----------
:func:`to_image` turns a feature of shape ``(n_bins, n_frames)`` into an 8-bit
grey image of the same size, one pixel per bin and frame, with a *fixed* range
``[vmin, vmax]`` per feature kind (``features.png_ranges``), so grey levels mean
the same value in every file::

    u8 = round((clip(x, vmin, vmax) - vmin) / (vmax - vmin) * 255)     # NaN -> 0
    image = u8[::-1]         # row 0 of the image = highest bin: low frequencies at the bottom

:func:`from_image` inverts it: ``x = image[::-1] / 255 * (vmax - vmin) + vmin``, which is
within ``(vmax - vmin) / 510`` (half a grey step) of every value inside the range, and
``to_image(from_image(image)) == image`` exactly. :func:`png_bytes` encodes with Pillow
(mode ``L``, low zlib effort: the images are small and written once per file).
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np
import scipy.fft

#: magnitude floor of the dB spectrogram (-100 dB); the mel power floor is its square
AMIN = 1e-5
#: frames computed at once in the per-frame loops: bounds the temporaries of a long recording
FRAME_BLOCK = 8192

# --------------------------------------------------------------------------- spectra

@lru_cache(maxsize=8)
def _window(n_fft: int) -> np.ndarray:
    return librosa.filters.get_window(window="hann", Nx=n_fft, fftbins=True).astype(np.float32)


def stft_magnitude(y: np.ndarray, *, n_fft: int, hop_length: int, window: np.ndarray | None = None) -> np.ndarray:
    """Magnitude of the centred, Hann-windowed STFT (what ``np.abs(librosa.stft(y=y))`` gives).

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Mono signal, ``n_samples >= n_fft // 2 + 1``.
    n_fft, hop_length : int
        Window length and hop in samples.
    window : ndarray of shape (n_fft,), float32, optional
        The periodic Hann window (default: built by librosa).

    Returns
    -------
    ndarray of shape (1 + n_fft // 2, 1 + n_samples // hop_length), float32
    """
    # the frames are strided views of the zero-padded signal and batched real FFTs: the same
    # numbers as librosa.stft (tests compare them) at a third of its per-call cost; in blocks of
    # frames so that an hour of audio never holds its windowed frames or complex spectrum at once
    padded = np.pad(np.asarray(y, dtype=np.float32), n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    out = np.empty((1 + n_fft // 2, frames.shape[0]), dtype=np.float32)
    window = _window(n_fft) if window is None else window
    for start in range(0, frames.shape[0], FRAME_BLOCK):
        block = frames[start:start + FRAME_BLOCK]
        out[:, start:start + len(block)] = np.abs(scipy.fft.rfft(block * window, axis=-1)).T
    return out


def amplitude_db(magnitude: np.ndarray, *, amin: float = AMIN) -> np.ndarray:
    """``20·log10(max(magnitude, amin))``: dB re 1.0, same shape, float32."""
    db = np.maximum(magnitude, np.float32(amin)).astype(np.float32, copy=False)
    np.log10(db, out=db)  # in place: one array, not three, for a long recording
    db *= 20.0
    return db


def power_db(power: np.ndarray, *, amin: float = AMIN**2) -> np.ndarray:
    """``10·log10(max(power, amin))``: dB re 1.0, same shape, float32."""
    return (10.0 * np.log10(np.maximum(power, np.float32(amin)))).astype(np.float32, copy=False)


def resolve_fmax(fmax: float | None, *, sr: int, cutoff: float | None) -> float:
    """The highest mel frequency: ``fmax``, or else the low-pass ``cutoff``, never above Nyquist."""
    if fmax is not None:
        return float(fmax)
    return float(min(cutoff, sr / 2)) if cutoff is not None else sr / 2


@lru_cache(maxsize=8)
def mel_basis(*, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``librosa.filters.mel``, built once per parameter set: ndarray of shape (n_mels, 1 + n_fft // 2)."""
    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, dtype=np.float32)
    basis.flags.writeable = False
    return basis


@lru_cache(maxsize=8)
def chroma_basis(*, sr: int, n_fft: int, n_chroma: int) -> np.ndarray:
    """``librosa.filters.chroma`` (tuning 0), built once: ndarray of shape (n_chroma, 1 + n_fft // 2)."""
    basis = librosa.filters.chroma(sr=sr, n_fft=n_fft, n_chroma=n_chroma, tuning=0.0, dtype=np.float32)
    basis.flags.writeable = False
    return basis


def mel_power(power: np.ndarray, *, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float,
              basis: np.ndarray | None = None) -> np.ndarray:
    """Mel power spectrogram, as ``librosa.feature.melspectrogram(S=power)``.

    Parameters
    ----------
    power : ndarray of shape (1 + n_fft // 2, n_frames)
        ``|STFT|²``.
    basis : ndarray of shape (n_mels, 1 + n_fft // 2), optional
        :func:`mel_basis` of these parameters, when already at hand.

    Returns
    -------
    ndarray of shape (n_mels, n_frames), float32
    """
    if basis is None:
        basis = mel_basis(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return basis @ power


def chromagram(power: np.ndarray, *, sr: int, n_fft: int, n_chroma: int, basis: np.ndarray | None = None) -> np.ndarray:
    """Chromagram, as ``librosa.feature.chroma_stft(S=power, tuning=0)``: max 1 per frame.

    Parameters
    ----------
    power : ndarray of shape (1 + n_fft // 2, n_frames)
        ``|STFT|²``.
    basis : ndarray of shape (n_chroma, 1 + n_fft // 2), optional
        :func:`chroma_basis` of these parameters, when already at hand.

    Returns
    -------
    ndarray of shape (n_chroma, n_frames), float32; row 0 is C. A silent frame stays 0.

    Raises
    ------
    ValueError
        When the power holds non-finite values (as librosa refuses them).
    """
    if basis is None:
        basis = chroma_basis(sr=sr, n_fft=n_fft, n_chroma=n_chroma)
    raw = basis @ power
    # librosa.util.normalize(raw, norm=np.inf, axis=-2): each frame over its largest magnitude,
    # in float64, stored back as float32; a frame below the smallest normal float stays as it is
    if not np.isfinite(raw).all():
        raise ValueError("the chroma power holds non-finite values")
    length = np.max(np.abs(raw).astype(np.float64), axis=-2, keepdims=True)
    length[length < np.finfo(raw.dtype).tiny] = 1.0
    return (raw / length).astype(np.float32)


def mfcc(mel_db: np.ndarray, *, n_mfcc: int, top_db: float | None = 80.0) -> np.ndarray:
    """MFCC of a dB mel-spectrogram (``librosa.feature.mfcc(S=mel_db)``).

    The mel dB values are first floored at ``top_db`` below the file's loudest bin, as
    ``librosa.feature.mfcc(y=...)`` does: otherwise near-silent frames and empty bands
    (e.g. above a recording's own bandwidth) swing the cepstrum by tens of dB.

    Parameters
    ----------
    mel_db : ndarray of shape (n_mels, n_frames)
    n_mfcc : number of coefficients.
    top_db : dynamic range kept below the peak; None keeps everything.

    Returns
    -------
    ndarray of shape (n_mfcc, n_frames), float32
    """
    if top_db is not None and mel_db.size:
        mel_db = np.maximum(mel_db, mel_db.max() - top_db)
    # librosa.feature.mfcc(S=mel_db) is this DCT (librosa's FFT library is scipy.fft)
    return scipy.fft.dct(mel_db, axis=-2, type=2, norm="ortho")[..., :n_mfcc, :].astype(np.float32, copy=False)
