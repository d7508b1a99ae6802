"""Features as images: 8-bit PNG encoding and back, per-file normalisation, trimming to the
active frames, and resizing to a fixed shape.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from audioclust.dsp.features import FRAME_BLOCK

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
        scaled = array[:, block].astype(np.float64)  # a copy, then changed in place
        scaled -= vmin
        scaled *= 255.0 / (vmax - vmin)
        np.fmax(scaled, 0.0, out=scaled)  # fmax/fmin take the number over NaN: NaN -> 0, +inf -> 255
        np.fmin(scaled, 255.0, out=scaled)
        out[::-1, block] = np.rint(scaled, out=scaled)
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
        scaled = image[::-1, block].astype(np.float64)
        scaled *= (vmax - vmin) / 255.0
        scaled += vmin
        out[:, block] = scaled
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


def active_frames(level_db: np.ndarray, *, top_db: float | None) -> slice:
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
    finite = np.isfinite(level_db)
    if finite.all():  # the usual case: max, which equals nanmax here and costs a fraction of it
        loudest = level_db.max(axis=0)
        keep = np.flatnonzero(loudest >= loudest.max() - top_db)
    else:
        loudest = np.nanmax(level_db, axis=0) if finite.any() else np.zeros(level_db.shape[1])
        keep = np.flatnonzero(loudest >= np.nanmax(loudest) - top_db)
    if keep.size == 0:
        return slice(None)
    return slice(int(keep[0]), int(keep[-1]) + 1)


def normalise_per_file(array: np.ndarray, *, mode: str) -> np.ndarray:
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
    :class:`audioclust.deep.data.FeaturesDataset`, so a feature store can precompute it:

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
        a = a[:, active_frames(ref, top_db=trim_db)]
    a = normalise_per_file(a, mode=per_file)
    image = np.ascontiguousarray(a.T, dtype=np.float32)
    T, F = (int(s) for s in size)
    if image.shape != (T, F):
        image = np.asarray(Image.fromarray(image).resize((F, T), resample=Image.BILINEAR), dtype=np.float32)
    return image
