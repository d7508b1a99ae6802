"""Feature extraction of one signal: one STFT feeds every spectral feature and the descriptors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from audioclust.dsp.descriptors import descriptors
from audioclust.dsp.features import (
    amplitude_db,
    chromagram,
    mel_power,
    mfcc,
    power_db,
    resolve_fmax,
    stft_magnitude,
)

#: The keyword arguments of :func:`analyse` that describe the analysis (the ``features`` config keys of the same names).
ANALYSIS_PARAMS: tuple[str, ...] = ("kinds", "n_fft", "hop_length", "n_mels", "n_mfcc", "n_chroma", "mfcc_top_db",
                                    "fmin", "fmax")


def analyse(
    y: np.ndarray, *, sr: int, kinds: Sequence[str], n_fft: int, hop_length: int, n_mels: int, n_mfcc: int,
    n_chroma: int, mfcc_top_db: float | None, fmin: float, fmax: float | None, cutoff: float | None = None,
    with_descriptors: bool = True,
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

    Returns
    -------
    features : dict kind -> float32 ndarray of shape (n_bins, n_frames), for ``kinds`` in their order
    descriptors : dict name -> float
    """
    magnitude = stft_magnitude(y, n_fft=n_fft, hop_length=hop_length)
    power = magnitude**2
    out: dict[str, np.ndarray] = {}
    wanted = set(kinds)
    if "spectrogram" in wanted:
        out["spectrogram"] = amplitude_db(magnitude)
    mel_db = power_db(mel_power(power, sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                                fmax=resolve_fmax(fmax, sr=sr, cutoff=cutoff)))
    if "mel" in wanted:
        out["mel"] = mel_db
    if "chroma" in wanted:
        out["chroma"] = chromagram(power, sr=sr, n_fft=n_fft, n_chroma=n_chroma)
    if wanted & {"mfcc", "mfcc_no_c0"}:
        coefficients = mfcc(mel_db, n_mfcc=n_mfcc, top_db=mfcc_top_db)
        if "mfcc" in wanted:
            out["mfcc"] = coefficients
        if "mfcc_no_c0" in wanted:
            out["mfcc_no_c0"] = np.ascontiguousarray(coefficients[1:])
    del power  # mel and chroma are made: free it before the descriptors' temporaries
    desc = (descriptors(y, magnitude, mel_db, sr=sr, n_fft=n_fft, hop_length=hop_length)
            if with_descriptors else {})
    return {k: out[k] for k in kinds}, desc


def compute_features(y: np.ndarray, *, sr: int, cutoff: float | None = None, **params: Any) -> dict[str, np.ndarray]:
    """The requested features of one signal (:func:`analyse` without descriptors): kind -> ndarray (n_bins, n_frames)."""
    return analyse(y, sr=sr, cutoff=cutoff, with_descriptors=False, **params)[0]
