"""Decoding and signal processing: pure functions on float32 arrays.

Multi-channel signals have shape ``(channels, frames)``; mono signals ``(frames,)``.
Decoding uses soundfile (libsndfile: WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF, AU, ...)
and falls back to audioread, whose ffmpeg backend reads the rest (m4a, aac, wma ...).
Every failure to decode raises :class:`AudioReadError` whose message is fit to be
stored as a table row's ``reason``.
"""

from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path
from typing import Any

import audioread
import librosa
import numpy as np
import soundfile as sf
from scipy import signal

from .errors import AudioReadError
from .storage import atomic_path

log = logging.getLogger(__name__)

#: Extensions libsndfile reads itself; a failure on one of them is the file's fault, not a missing ffmpeg.
SOUNDFILE_EXTENSIONS = frozenset(
    {"wav", "wave", "flac", "ogg", "oga", "opus", "mp3", "aiff", "aif", "aifc", "au", "snd", "caf", "w64", "rf64"})

#: Frames read from the start and the end of a file by :func:`probe` to prove it decodes.
PROBE_BLOCK = 2048

#: Largest sample value written per PCM subtype: 1 - 1 LSB, so +1.0 cannot wrap to -1.0.
_PCM_MAX = {"PCM_16": 1.0 - 2.0 ** -15, "PCM_24": 1.0 - 2.0 ** -23}

FFMPEG_HINT = "apt-get install ffmpeg (or conda install -c conda-forge ffmpeg), then re-run"


@functools.cache
def ffmpeg_available() -> bool:
    """Whether an ffmpeg (or avconv) executable is on the PATH, i.e. audioread can use its ffmpeg backend."""
    return bool(shutil.which("ffmpeg") or shutil.which("avconv"))


# --------------------------------------------------------------------------- decoding

def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a whole audio file.

    Parameters
    ----------
    path : the audio file.

    Returns
    -------
    y : ndarray of shape (channels, frames), float32, full scale ±1 (not clipped: float
        files may exceed it; non-finite samples are kept, see :func:`sanitize`).
    sr : the file's sample rate in Hz.

    Raises
    ------
    AudioReadError
        The file is missing, empty, truncated, not audio, or needs ffmpeg which is not installed.
    """
    path = Path(path)
    _check_file(path)
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except sf.SoundFileError as exc:
        return _read_audioread(path, _soundfile_reason(path, exc))
    return np.ascontiguousarray(data.T), int(sr)


def probe(path: str | Path) -> dict[str, Any]:
    """Read an audio file's header and prove that it decodes, cheaply.

    Only the first and last :data:`PROBE_BLOCK` frames are decoded, so a truncated
    or garbled file is caught without reading it all (files only ffmpeg reads are
    decoded up to their first block).

    Returns
    -------
    dict with ``duration`` (s), ``sample_rate`` (Hz), ``channels``, ``frames`` and
    ``subtype`` (libsndfile's, e.g. ``PCM_16``; ``ffmpeg`` when decoded by ffmpeg).

    Raises
    ------
    AudioReadError
        As :func:`load_audio`.
    """
    path = Path(path)
    _check_file(path)
    try:
        f = sf.SoundFile(path)
    except sf.SoundFileError as exc:
        return _probe_audioread(path, _soundfile_reason(path, exc))
    with f:
        frames, sr, channels, subtype = f.frames, f.samplerate, f.channels, f.subtype
        try:
            complete = len(f.read(min(frames, PROBE_BLOCK), dtype="float32")) == min(frames, PROBE_BLOCK)
            if complete and frames > PROBE_BLOCK and f.seekable():
                f.seek(frames - PROBE_BLOCK)
                complete = len(f.read(PROBE_BLOCK, dtype="float32")) == PROBE_BLOCK
            detail = ""
        except sf.SoundFileError as exc:
            complete, detail = False, f" ({str(exc).split(': ', 1)[-1].rstrip('.')})"
    if not complete:
        raise AudioReadError(f"truncated or damaged .{_ext(path)} file: its header announces {frames} frames "
                             f"but they cannot all be read{detail}; re-copy or re-export the file")
    return {"duration": frames / sr, "sample_rate": int(sr), "channels": int(channels),
            "frames": int(frames), "subtype": subtype}


def _ext(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def _check_file(path: Path) -> None:
    """Raise AudioReadError for a missing, empty or truncated WAV file (libsndfile reads those silently)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if path.is_symlink():
            raise AudioReadError(f"broken symbolic link: its target {path.readlink()} does not exist") from None
        raise AudioReadError(f"file not found: {path}") from None
    if size == 0:
        raise AudioReadError("empty file (0 bytes)")
    reason = _wav_truncation(path, size)
    if reason:
        raise AudioReadError(reason)


def _wav_truncation(path: Path, size: int) -> str | None:
    """A reason when a RIFF/WAVE file's ``data`` chunk announces more bytes than the file holds.

    libsndfile reads such a file without complaint and returns the frames present, so a
    cut-off copy would pass as a shorter recording. Streaming placeholders (0 or 0xFFFFFFFF)
    are accepted.
    """
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            declared = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                present = size - pos - 8
                if declared in (0, 0xFFFFFFFF) or declared <= present:
                    return None
                return (f"truncated WAV: its header announces {declared} bytes of audio but the file holds "
                        f"only {present} ({100 * present / declared:.0f}%); re-copy or re-export the file")
            pos += 8 + declared + (declared & 1)  # chunks are padded to an even size
    return None


def _soundfile_reason(path: Path, exc: Exception) -> str:
    """A row-ready reason for a libsndfile failure, saying when the 'audio' file holds text."""
    message = str(exc).split(": ", 1)[-1].rstrip(".")
    reason = f"cannot decode .{_ext(path)} file with libsndfile: {message}"
    with path.open("rb") as f:
        start = f.read(512)
    try:
        text = start.decode("utf-8")
    except UnicodeDecodeError:
        return reason
    if text and all(c.isprintable() or c in "\r\n\t" for c in text):
        reason += " (the file holds text, not audio)"
    return reason


def _read_audioread(path: Path, sf_reason: str) -> tuple[np.ndarray, int]:
    """Decode with audioread (ffmpeg backend) after soundfile failed with ``sf_reason``."""
    with _open_audioread(path, sf_reason) as f:
        sr, channels = int(f.samplerate), int(f.channels)
        try:
            raw = b"".join(bytes(block) for block in f)
        except audioread.DecodeError as exc:
            raise AudioReadError(f"{sf_reason}; ffmpeg failed while decoding it: {exc}") from exc
    pcm = np.frombuffer(raw[: len(raw) // (2 * channels) * 2 * channels], dtype="<i2")
    y = (pcm.astype(np.float32) / 32768.0).reshape(-1, channels).T
    return np.ascontiguousarray(y), sr


def _probe_audioread(path: Path, sf_reason: str) -> dict[str, Any]:
    with _open_audioread(path, sf_reason) as f:
        sr, channels, duration = int(f.samplerate), int(f.channels), float(f.duration)
        try:
            next(iter(f), None)
        except audioread.DecodeError as exc:
            raise AudioReadError(f"{sf_reason}; ffmpeg failed while decoding it: {exc}") from exc
    return {"duration": duration, "sample_rate": sr, "channels": channels,
            "frames": int(round(duration * sr)), "subtype": "ffmpeg"}


def _open_audioread(path: Path, sf_reason: str) -> Any:
    ext = _ext(path)
    if not ffmpeg_available():
        if ext in SOUNDFILE_EXTENSIONS:
            raise AudioReadError(sf_reason)
        raise AudioReadError(f"format .{ext} needs ffmpeg, which is not installed: {FFMPEG_HINT}")
    try:
        return audioread.audio_open(str(path))
    except (audioread.NoBackendError, audioread.DecodeError, OSError) as exc:
        detail = f": {exc}" if str(exc) else ""
        raise AudioReadError(f"{sf_reason}; ffmpeg cannot decode it either{detail}") from exc


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


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
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


def lowpass(y: np.ndarray, sr: int, cutoff: float | None, order: int) -> np.ndarray:
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


def write_wav(path: str | Path, y: np.ndarray, sr: int, subtype: str = "FLOAT") -> None:
    """Write a mono WAV atomically.

    The default subtype is 32-bit ``FLOAT``: it stores the float32 pipeline signal
    exactly, including the overshoot a low-pass leaves above full scale, so nothing
    is clipped and nothing can wrap around. With ``PCM_16``/``PCM_24`` the samples are
    clipped to [-1, 1 - 1 LSB] first, so a sample beyond full scale saturates instead of
    wrapping to the opposite sign.

    Parameters
    ----------
    path : destination ``.wav``; parent folders are created.
    y : ndarray of shape (frames,) (or (1, frames)).
    sr : sample rate in Hz.
    subtype : ``FLOAT``, ``PCM_16`` or ``PCM_24``.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2 and y.shape[0] == 1:
        y = y[0]
    if y.ndim != 1:
        raise ValueError(f"write_wav writes mono signals of shape (frames,), got {y.shape}")
    if subtype in _PCM_MAX:
        y = np.clip(y, -1.0, _PCM_MAX[subtype]).astype(np.float32)
    elif subtype != "FLOAT":
        raise ValueError(f"subtype must be FLOAT, PCM_16 or PCM_24, got {subtype!r}")
    with atomic_path(path) as tmp:
        sf.write(tmp, y, sr, subtype=subtype, format="WAV")
