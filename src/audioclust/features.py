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

The filter banks are built once per process and parameter set (``lru_cache``).

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

import io
import math
from functools import lru_cache
from typing import Any

import librosa
import numpy as np
import scipy.fft
from PIL import Image

from .config import FeaturesConfig

#: magnitude floor of the dB spectrogram (-100 dB); the mel power floor is its square
AMIN = 1e-5
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


#: frames computed at once in the per-frame loops: bounds the temporaries of a long recording
FRAME_BLOCK = 8192

# --------------------------------------------------------------------------- spectra

@lru_cache(maxsize=8)
def _window(n_fft: int) -> np.ndarray:
    return librosa.filters.get_window(window="hann", Nx=n_fft, fftbins=True).astype(np.float32)


@lru_cache(maxsize=8)
def _window_energy(n_fft: int) -> float:
    return float(np.sum(_window(n_fft).astype(np.float64) ** 2))


def stft_magnitude(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Magnitude of the centred, Hann-windowed STFT (what ``np.abs(librosa.stft(y=y))`` gives).

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Mono signal, ``n_samples >= n_fft // 2 + 1``.
    n_fft, hop_length : int
        Window length and hop in samples.

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
    window = _window(n_fft)
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


def mel_power(power: np.ndarray, *, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Mel power spectrogram, as ``librosa.feature.melspectrogram(S=power)``.

    Parameters
    ----------
    power : ndarray of shape (1 + n_fft // 2, n_frames)
        ``|STFT|²``.

    Returns
    -------
    ndarray of shape (n_mels, n_frames), float32
    """
    return mel_basis(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax) @ power


def chromagram(power: np.ndarray, *, sr: int, n_fft: int, n_chroma: int) -> np.ndarray:
    """Chromagram, as ``librosa.feature.chroma_stft(S=power, tuning=0)``: max 1 per frame.

    Parameters
    ----------
    power : ndarray of shape (1 + n_fft // 2, n_frames)
        ``|STFT|²``.

    Returns
    -------
    ndarray of shape (n_chroma, n_frames), float32; row 0 is C. A silent frame stays 0.
    """
    raw = chroma_basis(sr=sr, n_fft=n_fft, n_chroma=n_chroma) @ power
    return librosa.util.normalize(raw, norm=np.inf, axis=-2).astype(np.float32, copy=False)


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
    return librosa.feature.mfcc(S=mel_db, n_mfcc=n_mfcc).astype(np.float32, copy=False)


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


# --------------------------------------------------------------------------- one file

def analyse(
    y: np.ndarray, *, sr: int, cfg: FeaturesConfig, cutoff: float | None = None, with_descriptors: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every requested feature and the scalar descriptors of one signal, from one STFT.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Mono signal with ``n_samples >= cfg.n_fft``.
    sr : int
        Its sample rate.
    cfg : FeaturesConfig
        ``kinds``, ``n_fft``, ``hop_length``, ``n_mels``, ``n_mfcc``, ``n_chroma``, ``fmin``, ``fmax``.
    cutoff : float or None
        The low-pass cutoff of stage 02 (``audio.cutoff``): the mel ``fmax`` when ``cfg.fmax`` is None.
    with_descriptors : bool
        Also compute :func:`descriptors` (else the second dict is empty).

    Returns
    -------
    features : dict kind -> float32 ndarray of shape (n_bins, n_frames), for ``cfg.kinds``
    descriptors : dict name -> float
    """
    magnitude = stft_magnitude(y, n_fft=cfg.n_fft, hop_length=cfg.hop_length)
    power = magnitude**2
    out: dict[str, np.ndarray] = {}
    kinds = set(cfg.kinds)
    if "spectrogram" in kinds:
        out["spectrogram"] = amplitude_db(magnitude)
    mel_db = power_db(mel_power(power, sr=sr, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin,
                                fmax=resolve_fmax(cfg.fmax, sr=sr, cutoff=cutoff)))
    if "mel" in kinds:
        out["mel"] = mel_db
    if "chroma" in kinds:
        out["chroma"] = chromagram(power, sr=sr, n_fft=cfg.n_fft, n_chroma=cfg.n_chroma)
    if kinds & {"mfcc", "mfcc_no_c0"}:
        coefficients = mfcc(mel_db, n_mfcc=cfg.n_mfcc, top_db=cfg.mfcc_top_db)
        if "mfcc" in kinds:
            out["mfcc"] = coefficients
        if "mfcc_no_c0" in kinds:
            out["mfcc_no_c0"] = np.ascontiguousarray(coefficients[1:])
    del power  # mel and chroma are made: free it before the descriptors' temporaries
    desc = (descriptors(y, magnitude, mel_db, sr=sr, n_fft=cfg.n_fft, hop_length=cfg.hop_length)
            if with_descriptors else {})
    return {k: out[k] for k in cfg.kinds}, desc


def compute_features(
    y: np.ndarray, *, sr: int, cfg: FeaturesConfig, cutoff: float | None = None,
) -> dict[str, np.ndarray]:
    """The requested features of one signal (see :func:`analyse`): kind -> ndarray (n_bins, n_frames)."""
    return analyse(y, sr=sr, cfg=cfg, cutoff=cutoff, with_descriptors=False)[0]


# --------------------------------------------------------------------------- images

def to_image(array: np.ndarray, *, vmin: float, vmax: float) -> np.ndarray:
    """Map a feature onto 8-bit grey levels, low bins at the bottom (see the module notes).

    Parameters
    ----------
    array : ndarray of shape (n_bins, n_frames)
    vmin, vmax : float
        The values mapped to 0 and 255; values outside are clipped.

    Returns
    -------
    ndarray of shape (n_bins, n_frames), uint8; row 0 holds the highest bin.
    """
    array = np.asarray(array)
    out = np.empty(array.shape, dtype=np.uint8)
    for start in range(0, array.shape[1], FRAME_BLOCK):  # in blocks of frames: bounded temporaries
        block = slice(start, start + FRAME_BLOCK)
        scaled = (array[:, block].astype(np.float64) - vmin) * (255.0 / (vmax - vmin))
        out[::-1, block] = np.rint(np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 255.0))
    return out


def from_image(image: np.ndarray, *, vmin: float, vmax: float) -> np.ndarray:
    """Inverse of :func:`to_image`: grey levels back to feature values.

    Parameters
    ----------
    image : ndarray of shape (n_bins, n_frames), uint8, row 0 = highest bin

    Returns
    -------
    ndarray of shape (n_bins, n_frames), float32, row 0 = lowest bin
    """
    image = np.asarray(image)
    out = np.empty(image.shape, dtype=np.float32)
    for start in range(0, image.shape[1], FRAME_BLOCK):  # in blocks of frames: bounded temporaries
        block = slice(start, start + FRAME_BLOCK)
        out[:, block] = image[::-1, block].astype(np.float64) * ((vmax - vmin) / 255.0) + vmin
    return out


def png_bytes(image: np.ndarray, *, compress_level: int = 1) -> bytes:
    """Encode a uint8 image of shape (height, width) as a grey (mode ``L``) PNG."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(
        buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def read_png(data: Any) -> np.ndarray:
    """Read a grey PNG (a path or file object) back into a uint8 array of shape (height, width)."""
    with Image.open(data) as img:
        return np.asarray(img.convert("L"))


# --------------------------------------------------------------------------- per-file region and normalisation

#: a row whose spread over time is below this is only centred by ``meanvar`` (not blown up)
STD_FLOOR = 1e-6


def active_frames(level_db: np.ndarray, top_db: float | None) -> slice:
    """The active region of a file: first..last frame whose loudest bin is within ``top_db`` of the loudest frame.

    Parameters
    ----------
    level_db : ndarray of shape (n_bins, n_frames)
        A feature in dB (mel or spectrogram).
    top_db : float or None
        None: every frame.

    Returns
    -------
    slice of frames (``slice(None)`` when nothing is trimmed).
    """
    if top_db is None or level_db.shape[1] == 0:
        return slice(None)
    loudest = np.nanmax(level_db, axis=0) if np.isfinite(level_db).any() else np.zeros(level_db.shape[1])
    keep = np.flatnonzero(loudest >= np.nanmax(loudest) - top_db)
    if keep.size == 0:
        return slice(None)
    return slice(int(keep[0]), int(keep[-1]) + 1)


def normalise_per_file(array: np.ndarray, mode: str) -> np.ndarray:
    """Normalise one file's feature: ``none``, ``peak``, ``mean`` or ``meanvar``.

    ``peak`` subtracts the array's maximum (a dB feature becomes dB re the file's loudest
    bin: the recording level is gone, the spectral shape and dynamics stay); ``mean``
    centres each row (bin or coefficient) over time; ``meanvar`` also divides it by its
    standard deviation (cepstral mean and variance normalisation). A row whose std is
    below :data:`STD_FLOOR` is only centred (it becomes 0).

    Parameters
    ----------
    array : ndarray of shape (n_bins, n_frames)

    Returns
    -------
    ndarray of shape (n_bins, n_frames), float32
    """
    if mode == "none":
        return array
    a = array.astype(np.float64)
    if mode == "peak":
        return (a - a.max()).astype(np.float32)
    if mode not in ("mean", "meanvar"):
        raise ValueError(f"per_file must be 'none', 'peak', 'mean' or 'meanvar', got {mode!r}")
    a = a - a.mean(axis=1, keepdims=True)
    if mode == "meanvar":
        std = a.std(axis=1, keepdims=True)
        a = a / np.where(std > STD_FLOOR, std, 1.0)
    return a.astype(np.float32)


# --------------------------------------------------------------------------- autoencoder input

def fixed_size_image(
    array: np.ndarray,
    *,
    size: tuple[int, int],
    level_db: np.ndarray | None = None,
    trim_db: float | None = None,
    per_file: str = "none",
) -> np.ndarray:
    """One file's autoencoder input: active region, per-file normalisation, time first, fixed size.

    Everything done to a single file before the dataset-wide scaling of
    :class:`audioclust.dcec.FeaturesDataset`, so a feature store can precompute it:

    1. Trim (``trim_db`` not None): keep the first..last frame whose loudest bin in
       ``level_db`` (default: ``array`` itself, which must then be in dB) is within
       ``trim_db`` of the loudest frame (:func:`active_frames`).
       Silence before and after the sound no longer decides how it is stretched.
    2. Normalise over the kept frames (:func:`normalise_per_file`): ``none``; ``peak``
       (dB re the file's loudest bin); ``meanvar`` (each row over time, CMVN).
    3. Transpose to (time, bins) and resize to ``size`` with bilinear interpolation,
       antialiased when shrinking (Pillow's triangle filter, as
       ``torch.nn.functional.interpolate(..., mode="bilinear", antialias=True)``).

    Parameters
    ----------
    array : ndarray of shape (n_bins, n_frames)
    size : (T, F), the output's frames and bins.
    level_db : ndarray of shape (n_ref_bins, n_frames), optional
        A dB feature of the same file (mel or spectrogram) that decides the active region.
    trim_db : float or None
        None keeps every frame.
    per_file : ``"none"``, ``"peak"``, ``"mean"`` or ``"meanvar"``

    Returns
    -------
    ndarray of shape (T, F), float32.

    Raises
    ------
    ValueError
        For an empty or non-2-D array, a ``level_db`` with another number of frames, or an
        unknown ``per_file``.
    """
    a = np.asarray(array, dtype=np.float64)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"expected a non-empty 2-D array (n_bins, n_frames), got shape {a.shape}")
    if trim_db is not None:
        ref = a if level_db is None else np.asarray(level_db, dtype=np.float64)
        if ref.ndim != 2 or ref.shape[1] != a.shape[1]:
            raise ValueError(f"level_db of shape {ref.shape} does not match the {a.shape[1]} frames of the array")
        a = a[:, active_frames(ref, trim_db)]
    a = normalise_per_file(a, per_file)
    image = np.ascontiguousarray(a.T, dtype=np.float32)
    T, F = (int(s) for s in size)
    if image.shape != (T, F):
        image = np.asarray(Image.fromarray(image).resize((F, T), resample=Image.BILINEAR), dtype=np.float32)
    return image
