"""Feature extraction of one signal: one STFT feeds every spectral feature and the descriptors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from audioclust.dsp.descriptors import descriptors, tempo_window
from audioclust.dsp.features import (
    _window,
    amplitude_db,
    chroma_basis,
    chromagram,
    mel_basis,
    mel_power,
    mfcc,
    power_db,
    resolve_fmax,
    stft_magnitude,
)

#: The keyword arguments of :func:`analyse` that describe the analysis (the ``features`` config keys of the same names).
ANALYSIS_PARAMS: tuple[str, ...] = ("kinds", "n_fft", "hop_length", "n_mels", "n_mfcc", "n_chroma", "mfcc_top_db",
                                    "fmin", "fmax")


@dataclass(frozen=True, eq=False)
class Bases:
    """What librosa builds for one analysis set-up, built once: with these at hand, :func:`analyse`
    runs on NumPy and SciPy alone (stage 03 hands them to its worker processes, which then never
    load librosa's core, numba and scipy.signal: 1.5 s of CPU each).

    Attributes
    ----------
    params : (sr, n_fft, hop_length, n_mels, n_chroma, fmin, fmax) they were built for
    window : ndarray of shape (n_fft,), float32: the STFT's periodic Hann window
    mel : ndarray of shape (n_mels, 1 + n_fft // 2), float32: ``librosa.filters.mel`` (Slaney)
    chroma : ndarray of shape (n_chroma, 1 + n_fft // 2), float32: ``librosa.filters.chroma`` (tuning 0)
    tempo_window : ndarray, float64: the tempogram's window (:func:`~audioclust.dsp.descriptors.tempo_window`)
    """

    params: tuple[int, int, int, int, int, float, float]
    window: np.ndarray
    mel: np.ndarray
    chroma: np.ndarray
    tempo_window: np.ndarray


@lru_cache(maxsize=8)
def analysis_bases(*, sr: int, n_fft: int, hop_length: int, n_mels: int, n_chroma: int, fmin: float,
                   fmax: float) -> Bases:
    """The :class:`Bases` of one set-up (``fmax`` resolved: :func:`~audioclust.dsp.features.resolve_fmax`)."""
    return Bases(params=(sr, n_fft, hop_length, n_mels, n_chroma, float(fmin), float(fmax)), window=_window(n_fft),
                 mel=mel_basis(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax),
                 chroma=chroma_basis(sr=sr, n_fft=n_fft, n_chroma=n_chroma), tempo_window=tempo_window(sr, hop_length))


def analyse(
    y: np.ndarray, *, sr: int, kinds: Sequence[str], n_fft: int, hop_length: int, n_mels: int, n_mfcc: int,
    n_chroma: int, mfcc_top_db: float | None, fmin: float, fmax: float | None, cutoff: float | None = None,
    with_descriptors: bool = True, bases: Bases | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every requested feature and the scalar descriptors of one signal, from one STFT.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Mono signal with ``n_samples >= n_fft``.
    sr : int
        Its sample rate.
    kinds : the features to return, of ``spectrogram``, ``mel``, ``chroma``, ``mfcc``, ``mfcc_no_c0``.
    n_fft, hop_length : STFT frame and hop in samples (Hann window, centred frames).
    n_mels, fmin, fmax : mel bands and their range in Hz (``fmax`` None: ``cutoff``, else Nyquist).
    n_mfcc, mfcc_top_db : cepstral coefficients, computed from the mel dB clipped this far below its peak.
    n_chroma : pitch classes.
    cutoff : float or None
        The low-pass cutoff of stage 02 (``audio.cutoff``): the mel ``fmax`` when ``fmax`` is None.
    with_descriptors : bool
        Also compute :func:`~audioclust.dsp.descriptors.descriptors` (else the second dict is empty).
    bases : Bases, optional
        :func:`analysis_bases` of these parameters (default: looked up here, built by librosa once).

    Returns
    -------
    features : dict kind -> float32 ndarray of shape (n_bins, n_frames), for ``kinds`` in their order
    descriptors : dict name -> float

    Raises
    ------
    ValueError
        When ``bases`` were built for other parameters.
    """
    fmax = resolve_fmax(fmax, sr=sr, cutoff=cutoff)
    if bases is None:
        bases = analysis_bases(sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, n_chroma=n_chroma,
                               fmin=fmin, fmax=fmax)
    elif bases.params != (sr, n_fft, hop_length, n_mels, n_chroma, float(fmin), float(fmax)):
        raise ValueError(f"the bases were built for {bases.params}, not for sr {sr}, n_fft {n_fft}, hop_length "
                         f"{hop_length}, n_mels {n_mels}, n_chroma {n_chroma}, fmin {fmin}, fmax {fmax}")
    magnitude = stft_magnitude(y, n_fft=n_fft, hop_length=hop_length, window=bases.window)
    power = magnitude**2
    out: dict[str, np.ndarray] = {}
    wanted = set(kinds)
    if "spectrogram" in wanted:
        out["spectrogram"] = amplitude_db(magnitude)
    mel_db = power_db(mel_power(power, sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, basis=bases.mel))
    if "mel" in wanted:
        out["mel"] = mel_db
    if "chroma" in wanted:
        out["chroma"] = chromagram(power, sr=sr, n_fft=n_fft, n_chroma=n_chroma, basis=bases.chroma)
    if wanted & {"mfcc", "mfcc_no_c0"}:
        coefficients = mfcc(mel_db, n_mfcc=n_mfcc, top_db=mfcc_top_db)
        if "mfcc" in wanted:
            out["mfcc"] = coefficients
        if "mfcc_no_c0" in wanted:
            out["mfcc_no_c0"] = np.ascontiguousarray(coefficients[1:])
    del power  # mel and chroma are made: free it before the descriptors' temporaries
    desc = (descriptors(y, magnitude, mel_db, sr=sr, n_fft=n_fft, hop_length=hop_length, window=bases.window,
                        tempo_window=bases.tempo_window) if with_descriptors else {})
    return {k: out[k] for k in kinds}, desc


def compute_features(y: np.ndarray, *, sr: int, cutoff: float | None = None, **params: Any) -> dict[str, np.ndarray]:
    """The requested features of one signal (:func:`analyse` without descriptors): kind -> ndarray (n_bins, n_frames)."""
    return analyse(y, sr=sr, cutoff=cutoff, with_descriptors=False, **params)[0]
