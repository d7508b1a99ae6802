"""Decoding audio files into float32 arrays, with decode-based validation, and writing WAVs.

Multi-channel signals have shape ``(channels, frames)``; mono signals ``(frames,)``.
Decoding uses soundfile (libsndfile: WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF, AU, ...)
and falls back to audioread's ffmpeg backend, which reads the rest (m4a, aac, wma ...) and the
MP3s libsndfile would cut short. It runs the ffmpeg on the PATH, else the one the imageio-ffmpeg
wheel ships, so a pip install decodes them too.
Every failure to decode raises :class:`AudioReadError` whose message is fit to be
stored as a table row's ``reason``.
"""

from __future__ import annotations

import functools
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import audioread
import audioread.ffdec
import numpy as np
import soundfile as sf

from audioclust.core.errors import AudioReadError
from audioclust.core.storage import atomic_path
from audioclust.dsp.containers import (
    aiff_truncation,
    mp3_layout,
    ogg_truncation,
    wav_truncation,
)

log = logging.getLogger(__name__)


#: Extensions libsndfile reads itself; a failure on one of them is the file's fault, not a missing ffmpeg.
SOUNDFILE_EXTENSIONS = frozenset(
    {"wav", "wave", "flac", "ogg", "oga", "opus", "mp3", "aiff", "aif", "aifc", "au", "snd", "caf", "w64", "rf64"})

#: Frames read from the start and the end of a file by :func:`probe` to prove it decodes.
PROBE_BLOCK = 2048

#: Largest sample value written per PCM subtype: 1 - 1 LSB, so +1.0 cannot wrap to -1.0.
_PCM_MAX = {"PCM_16": 1.0 - 2.0 ** -15, "PCM_24": 1.0 - 2.0 ** -23}

FFMPEG_HINT = "pip install imageio-ffmpeg or apt-get install ffmpeg, then re-run"


@functools.cache
def ffmpeg_executable() -> str | None:
    """The ffmpeg that decodes what libsndfile cannot: one on the PATH (or avconv), else the static build of the
    ``imageio-ffmpeg`` package (a pinned requirement); None when there is neither."""
    found = shutil.which("ffmpeg") or shutil.which("avconv")
    if found:
        return found
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):   # not installed, or no binary for this platform
        return None


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
        with sf.SoundFile(path) as f:
            sr = int(f.samplerate)
            expected = _expected_frames(path, f)
            short = _stops_early(path, f, expected)
            if short is None:
                y = _read_all(f, expected.frames + expected.slack if expected else None)
    except sf.SoundFileError as exc:
        return _read_audioread(path, _soundfile_reason(path, exc))
    if short is not None:
        return _read_audioread(path, short, intact=True)
    if expected is not None and y.shape[1] < expected.frames - expected.slack:
        raise AudioReadError(f"damaged .{_ext(path)} file: decoding stopped after {y.shape[1] / sr:.2f} s of its "
                             f"{expected.frames / sr:.2f} s; re-copy or re-export the file")
    return y, sr


@dataclass(frozen=True)
class _Expected:
    """A file's length measured from its structure: ``frames`` give or take ``slack``."""

    frames: int
    slack: int


def _expected_frames(path: Path, f: sf.SoundFile) -> _Expected | None:
    """The real length of an MP3 (walked frame by frame), None for formats whose header is exact.

    Raises AudioReadError for an MP3 whose structure shows it is cut off.
    """
    if f.format != "MP3":
        return None
    layout = mp3_layout(path)
    if layout is None:
        return None
    if layout.reason:
        raise AudioReadError(layout.reason)
    # a decoder may drop or add up to one MPEG frame at either end (encoder delay without a LAME tag)
    return _Expected(layout.frames, 2 * layout.samples_per_frame)


def _stops_early(path: Path, f: sf.SoundFile, expected: _Expected | None) -> str | None:
    """Why libsndfile cannot read the whole file, when it would stop at its own too small
    estimate of an MP3's length (a variable bit rate without a Xing header); else None."""
    if expected is None or f.frames >= expected.frames - expected.slack:
        return None
    sr = f.samplerate
    return (f"cannot decode .{_ext(path)} file with libsndfile: it decodes only {f.frames / sr:.2f} s of its "
            f"{expected.frames / sr:.2f} s (a variable bit rate MP3 without a Xing header)")


def _read_all(f: sf.SoundFile, frames: int | None) -> np.ndarray:
    """Every frame libsndfile decodes, as (channels, frames) float32, whatever the header announced.

    ``soundfile.read`` stops at the header's frame count (wrong for an MP3 with cover art),
    and seeks after every block, which fails on a FLAC stream without a sample count; so
    the frames are read through libsndfile's own ``sf_readf_float`` (soundfile's binding)
    until the decoder has no more. ``frames`` is the length measured from the file's
    structure, if any; it only sizes the first buffer.
    """
    if frames is None and f.format != "MP3" and 0 <= f.frames < _UNKNOWN_FRAMES:
        frames = f.frames
    size = frames + 1 if frames is not None else _READ_BLOCK  # one spare frame shows the end was reached
    parts = []
    while True:
        buf = np.empty((size, f.channels), dtype=np.float32)
        n = sf._snd.sf_readf_float(f._file, sf._ffi.cast("float *", buf.ctypes.data), size)
        error = sf._snd.sf_error(f._file)
        if error:
            raise sf.LibsndfileError(error)
        if n > 0:
            parts.append(buf[:n] if n > size // 2 else buf[:n].copy())
        if n < size:
            break
        size = _READ_BLOCK
    y = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.empty((0, f.channels), np.float32)
    return np.ascontiguousarray(y.T)


#: libsndfile's frame count for a stream of unknown length (SF_COUNT_MAX) and anything near it.
_UNKNOWN_FRAMES = 1 << 60

#: Frames per buffer when the length is unknown.
_READ_BLOCK = 1 << 20


def probe(path: str | Path) -> dict[str, Any]:
    """Read an audio file's header and prove that it decodes, cheaply.

    The length comes from a real measure, never from a guess: the header where it is
    exact (WAV, AIFF, FLAC, Ogg), the MPEG frames walked one by one for MP3 (libsndfile's
    count is an estimate from the file size), and decoding where nothing else tells
    (a FLAC stream without a sample count, an MP3 whose frames cannot be walked). A file
    is damaged only on evidence: its structure shows it cut off, or its first or last
    :data:`PROBE_BLOCK` frames do not decode. Files only ffmpeg reads are decoded up to
    their first block.

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
        sr, channels, subtype = int(f.samplerate), int(f.channels), f.subtype
        short, frames = None, f.frames
        try:
            expected = _expected_frames(path, f)
            if expected is not None:
                frames = expected.frames
                short = _stops_early(path, f, expected)
                complete = len(f.read(min(frames, PROBE_BLOCK), dtype="float32")) > 0 or frames == 0
            elif f.format == "MP3" or not 0 <= f.frames < _UNKNOWN_FRAMES:
                frames = _read_all(f, None).shape[1]  # no real measure but decoding
                complete = True
            else:
                frames = f.frames
                complete = len(f.read(min(frames, PROBE_BLOCK), dtype="float32")) == min(frames, PROBE_BLOCK)
                if complete and frames > PROBE_BLOCK and f.seekable():
                    f.seek(frames - PROBE_BLOCK)
                    complete = len(f.read(PROBE_BLOCK, dtype="float32")) == PROBE_BLOCK
            detail = ""
        except sf.SoundFileError as exc:
            complete, detail = False, f" ({str(exc).split(': ', 1)[-1].rstrip('.')})"
    if short:
        return _probe_audioread(path, short, frames, intact=True)
    if not complete and not 0 <= frames < _UNKNOWN_FRAMES:
        raise AudioReadError(f"damaged .{_ext(path)} file: decoding failed{detail}; re-copy or re-export the file")
    if not complete:
        raise AudioReadError(f"truncated or damaged .{_ext(path)} file: its header announces {frames} frames "
                             f"but they cannot all be read{detail}; re-copy or re-export the file")
    return {"duration": frames / sr, "sample_rate": sr, "channels": channels,
            "frames": int(frames), "subtype": subtype}


def _ext(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def _check_file(path: Path) -> None:
    """Raise AudioReadError for a missing or empty file, or one whose container shows it cut off.

    libsndfile reads a truncated WAV, AIFF or Ogg file without complaint and returns the
    frames present, so a cut-off copy would pass as a shorter recording. The container is
    recognised by its first bytes, not its extension.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if path.is_symlink():
            raise AudioReadError(f"broken symbolic link: its target {path.readlink()} does not exist") from None
        raise AudioReadError(f"file not found: {path}") from None
    except OSError as exc:  # a symbolic link that loops, a permission denied ...
        raise AudioReadError(f"cannot read the file: {exc.strerror or exc}") from None
    if size == 0:
        raise AudioReadError("empty file (0 bytes)")
    with path.open("rb") as f:
        magic = f.read(4)
    check = {b"RIFF": wav_truncation, b"FORM": aiff_truncation, b"OggS": ogg_truncation}.get(magic)
    reason = check(path) if check else None
    if reason:
        raise AudioReadError(reason)


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


def _read_audioread(path: Path, sf_reason: str, intact: bool = False) -> tuple[np.ndarray, int]:
    """Decode with audioread (ffmpeg backend) after soundfile failed with ``sf_reason``; ``intact``: the file is
    sound, libsndfile only cannot read it whole (:func:`_open_audioread`)."""
    with _open_audioread(path, sf_reason, intact) as f:
        sr, channels = int(f.samplerate), int(f.channels)
        try:
            raw = b"".join(bytes(block) for block in f)
        except audioread.DecodeError as exc:
            raise AudioReadError(f"{sf_reason}; ffmpeg failed while decoding it: {exc}") from exc
    pcm = np.frombuffer(raw[: len(raw) // (2 * channels) * 2 * channels], dtype="<i2")
    y = (pcm.astype(np.float32) / 32768.0).reshape(-1, channels).T
    return np.ascontiguousarray(y), sr


def _probe_audioread(path: Path, sf_reason: str, frames: int | None = None, intact: bool = False) -> dict[str, Any]:
    """As :func:`probe`, through ffmpeg; ``frames``: the length measured from the file's structure (an MP3's
    walked frames), which ffmpeg's duration only estimates from the bit rate; ``intact`` as :func:`_read_audioread`."""
    with _open_audioread(path, sf_reason, intact) as f:
        sr, channels, duration = int(f.samplerate), int(f.channels), float(f.duration)
        try:
            next(iter(f), None)
        except audioread.DecodeError as exc:
            raise AudioReadError(f"{sf_reason}; ffmpeg failed while decoding it: {exc}") from exc
    frames = int(round(duration * sr)) if frames is None else int(frames)
    return {"duration": frames / sr, "sample_rate": sr, "channels": channels, "frames": frames, "subtype": "ffmpeg"}


def _open_audioread(path: Path, sf_reason: str, intact: bool = False) -> Any:
    """ffmpeg's decoder of ``path``. Without an ffmpeg: the file's own fault (``sf_reason``) for a format libsndfile
    reads, unless the file is ``intact`` and only ffmpeg reads it whole; else what to install."""
    ext = _ext(path)
    executable = ffmpeg_executable()
    if executable is None:
        if intact:
            raise AudioReadError(f"{sf_reason}; ffmpeg would read it: {FFMPEG_HINT}")
        if ext in SOUNDFILE_EXTENSIONS:
            raise AudioReadError(sf_reason)
        raise AudioReadError(f"format .{ext} needs ffmpeg, which is not installed: {FFMPEG_HINT}")
    # audioread runs the first of ffdec.COMMANDS that starts: name the one found, which may be off the PATH
    audioread.ffdec.COMMANDS = (executable,)
    try:
        reader = audioread.ffdec.FFmpegAudioFile(str(path))
    except (audioread.DecodeError, OSError) as exc:
        detail = f": {exc}" if str(exc) else ""
        raise AudioReadError(f"{sf_reason}; ffmpeg cannot decode it either{detail}") from exc
    if reader.samplerate <= 0 or reader.channels <= 0:  # ffmpeg took random bytes for a container with no audio
        reader.close()
        raise AudioReadError(f"{sf_reason}; ffmpeg finds no audio stream in it either")
    return reader


def write_wav(path: str | Path, y: np.ndarray, *, sr: int, subtype: str = "FLOAT") -> None:
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
