"""What an audio file's container says about its length, read from its structure, not its header alone.

libsndfile's ``frames`` is exact for WAV, AIFF, FLAC with a sample count, and Ogg; for MP3
it is a guess from the file size and the first frame's bit rate (ID3 cover art counts
as audio, a variable bit rate fools it), and for a FLAC stream without a sample count it
is unknown. The functions here read only bytes (no decoding) and return either a real
measure of the length or evidence of damage:

* :func:`mp3_layout` walks the MPEG frame headers: it counts the frames, reads the
  Xing/Info/VBRI frame count and the LAME encoder delay and padding, and sees a file that
  ends inside a frame;
* :func:`ogg_truncation` walks the Ogg pages: a complete stream ends with an
  end-of-stream page;
* :func:`wav_truncation` and :func:`aiff_truncation` compare the announced audio bytes
  with the bytes present.

Every truncation function returns a reason fit for a table row, or None.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: MPEG audio bit rates in kbit/s by (MPEG-1?, layer) and the header's 4-bit index.
_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}

#: Sample rates in Hz by the header's 2-bit version field (0: MPEG-2.5, 2: MPEG-2, 3: MPEG-1).
_SAMPLE_RATES = {0: (11025, 12000, 8000), 2: (22050, 24000, 16000), 3: (44100, 48000, 32000)}


@dataclass(frozen=True)
class MpegFrame:
    """One MPEG audio frame header: where its bytes end and how many samples it decodes to."""

    version: int
    layer: int
    sample_rate: int
    channels: int
    length: int
    samples: int


def parse_mpeg_header(data: bytes | mmap.mmap, pos: int) -> MpegFrame | None:
    """The MPEG audio frame header at ``pos``, or None when those 4 bytes are not one.

    Free-format frames (bit-rate index 0) are not recognised: their length is not in the header.
    """
    if pos + 4 > len(data):
        return None
    b1, b2, b3 = data[pos + 1], data[pos + 2], data[pos + 3]
    if data[pos] != 0xFF or (b1 & 0xE0) != 0xE0:
        return None
    version, layer_bits = (b1 >> 3) & 3, (b1 >> 1) & 3
    bitrate_index, rate_index = b2 >> 4, (b2 >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    layer, mpeg1 = 4 - layer_bits, version == 3
    bitrate = _BITRATES[(mpeg1, layer)][bitrate_index] * 1000
    sample_rate = _SAMPLE_RATES[version][rate_index]
    padding = (b2 >> 1) & 1
    if layer == 1:
        length, samples = (12 * bitrate // sample_rate + padding) * 4, 384
    elif layer == 2 or mpeg1:
        length, samples = 144 * bitrate // sample_rate + padding, 1152
    else:
        length, samples = 72 * bitrate // sample_rate + padding, 576
    channels = 1 if (b3 >> 6) == 3 else 2
    return MpegFrame(version, layer, sample_rate, channels, length, samples)


@dataclass(frozen=True)
class Mp3Layout:
    """The MPEG frames of an MP3 file, as :func:`mp3_layout` walked them.

    ``frames`` is the number of PCM frames a gapless decoder (libsndfile's mpg123) returns:
    MPEG frames times samples per frame, less the encoder delay and padding when a LAME tag
    gives them. ``reason`` is None for a complete stream, else why it is damaged.
    """

    sample_rate: int
    channels: int
    mpeg_frames: int
    samples_per_frame: int
    frames: int
    tag_frames: int | None
    reason: str | None

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _skip_id3v2(data: bytes | mmap.mmap) -> int:
    """Offset of the first byte after any ID3v2 tags at the start of the file."""
    pos = 0
    while data[pos:pos + 3] == b"ID3" and pos + 10 <= len(data):
        size = 0
        for byte in data[pos + 6:pos + 10]:
            size = (size << 7) | (byte & 0x7F)
        pos += 10 + size + (10 if data[pos + 5] & 0x10 else 0)
    return pos


def _first_frame(data: bytes | mmap.mmap, pos: int, limit: int = 1 << 20) -> tuple[int, MpegFrame] | None:
    """The first frame at or after ``pos`` that is followed by a matching frame (or the file's end)."""
    end = min(len(data), pos + limit)
    while pos < end:
        pos = data.find(b"\xff", pos, end)
        if pos < 0:
            return None
        frame = parse_mpeg_header(data, pos)
        if frame is not None:
            following = parse_mpeg_header(data, pos + frame.length)
            if pos + frame.length == len(data) or (following is not None and _same_stream(frame, following)):
                return pos, frame
        pos += 1
    return None


def _same_stream(a: MpegFrame, b: MpegFrame) -> bool:
    return (a.version, a.layer, a.sample_rate) == (b.version, b.layer, b.sample_rate)


def _vbr_tag(data: bytes | mmap.mmap, pos: int, frame: MpegFrame) -> tuple[int | None, int, int] | None:
    """(MPEG frame count, encoder delay, padding) from a Xing/Info or VBRI tag in the frame at ``pos``.

    None when the frame holds no such tag (it is then an audio frame).
    """
    side_info = (17 if frame.channels == 1 else 32) if frame.version == 3 else (9 if frame.channels == 1 else 17)
    xing = pos + 4 + side_info
    if data[xing:xing + 4] in (b"Xing", b"Info"):
        flags = int.from_bytes(data[xing + 4:xing + 8], "big")
        at = xing + 8
        count = int.from_bytes(data[at:at + 4], "big") if flags & 1 else None
        at += 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4) + 4 * bool(flags & 8)
        delay = padding = 0
        if data[at:at + 4] == b"LAME" or data[at:at + 4] == b"Lavc" or data[at:at + 4] == b"Lavf":
            d = data[at + 21:at + 24]
            delay, padding = (d[0] << 4) | (d[1] >> 4), ((d[1] & 0x0F) << 8) | d[2]
        return count, delay, padding
    if data[pos + 36:pos + 40] == b"VBRI":
        return int.from_bytes(data[pos + 50:pos + 54], "big"), 0, 0
    return None


def mp3_layout(path: str | Path) -> Mp3Layout | None:
    """Walk an MP3 file's frames without decoding them.

    Returns
    -------
    The layout, or None when no MPEG audio stream is found (free-format streams included):
    the caller then has no measure but decoding.
    """
    with open(path, "rb") as f:
        try:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            return None
    with data:
        start = _skip_id3v2(data)
        found = _first_frame(data, start)
        if found is None:
            return None
        pos, first = found
        tag = _vbr_tag(data, pos, first)
        if tag is not None:
            pos += first.length
        count, size, cut = 0, len(data), None
        while pos < size:
            frame = parse_mpeg_header(data, pos)
            if frame is None or not _same_stream(frame, first):
                break  # trailing ID3v1 / APE tags or junk: not audio
            if pos + frame.length > size:
                cut = (size - pos, frame.length)
                break
            count += 1
            pos += frame.length
    tag_frames, delay, padding = tag if tag is not None else (None, 0, 0)
    frames = max(count * first.samples - delay - padding, 0)
    reason = None
    if tag_frames is not None and count < tag_frames:
        reason = (f"truncated .mp3 file: its {'VBRI' if delay == padding == 0 else 'Xing'} header counts "
                  f"{tag_frames} MPEG frames but the file holds {count} ({100 * count / tag_frames:.0f}%); "
                  f"re-copy or re-export the file")
    elif cut is not None:
        reason = (f"truncated .mp3 file: it ends inside an MPEG frame ({cut[0]} of its {cut[1]} bytes) after "
                  f"{count} whole frames; re-copy or re-export the file")
    return Mp3Layout(first.sample_rate, first.channels, count, first.samples, frames, tag_frames, reason)


def ogg_truncation(path: str | Path) -> str | None:
    """A reason when an Ogg stream (Vorbis, Opus, FLAC in Ogg) is cut off.

    A complete logical stream ends with a page flagged end-of-stream; a cut-off copy ends
    inside a page or on a page without the flag, and libsndfile then reports the shorter
    length of the pages present as if it were the whole recording.
    """
    with open(path, "rb") as f:
        try:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:
            return None
    with data:
        pos, size, ended, pages = 0, len(data), False, 0
        while pos + 27 <= size and data[pos:pos + 4] == b"OggS":
            n_segments = data[pos + 26]
            body = sum(data[pos + 27:pos + 27 + n_segments])
            length = 27 + n_segments + body
            if pos + length > size:
                return (f"truncated .{Path(path).suffix.lower().lstrip('.')} file: it ends inside Ogg page "
                        f"{pages + 1} ({size - pos} of its {length} bytes); re-copy or re-export the file")
            ended = bool(data[pos + 5] & 0x04)
            pages += 1
            pos += length
    if pages and not ended:
        return (f"truncated .{Path(path).suffix.lower().lstrip('.')} file: its last Ogg page (of {pages}) does "
                f"not end the stream; re-copy or re-export the file")
    return None


def _chunks(f: BinaryIO, size: int, byteorder: str) -> Iterator[tuple[bytes, int, int]]:
    """``(id, position, declared size)`` of each chunk of an IFF-style file (RIFF/WAVE, FORM/AIFF) after its header.

    The file is left positioned just after each chunk's 8-byte header when it is yielded.
    """
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        chunk = f.read(8)
        declared = int.from_bytes(chunk[4:8], byteorder)
        yield chunk[:4], pos, declared
        pos += 8 + declared + (declared & 1)  # chunks are padded to an even size


def wav_truncation(path: str | Path) -> str | None:
    """A reason when a RIFF/WAVE file's ``data`` chunk announces more bytes than the file holds.

    libsndfile reads such a file without complaint and returns the frames present, so a
    cut-off copy would pass as a shorter recording. Streaming placeholders (0 or 0xFFFFFFFF)
    are accepted.
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        for name, pos, declared in _chunks(f, size, "little"):
            if name == b"data":
                present = size - pos - 8
                if declared in (0, 0xFFFFFFFF) or declared <= present:
                    return None
                return (f"truncated WAV: its header announces {declared} bytes of audio but the file holds "
                        f"only {present} ({100 * present / declared:.0f}%); re-copy or re-export the file")
    return None


def aiff_truncation(path: str | Path) -> str | None:
    """A reason when an AIFF/AIFF-C file's ``COMM`` chunk counts more sample frames than ``SSND`` holds."""
    path = Path(path)
    size = path.stat().st_size
    frames = frame_bytes = present_bytes = None
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"FORM" or head[8:12] not in (b"AIFF", b"AIFC"):
            return None
        for name, pos, _ in _chunks(f, size, "big"):
            if name == b"COMM":
                comm = f.read(22)
                channels, frames = int.from_bytes(comm[0:2], "big"), int.from_bytes(comm[2:6], "big")
                frame_bytes = channels * ((int.from_bytes(comm[6:8], "big") + 7) // 8)
                if head[8:12] == b"AIFC" and comm[18:22] not in _AIFC_PCM:
                    return None  # compressed AIFF-C: its bytes are not frames x sample size
            elif name == b"SSND":
                offset = int.from_bytes(f.read(4), "big")
                present_bytes = max(size - pos - 16 - offset, 0)
    if not (frames and frame_bytes) or present_bytes is None or present_bytes // frame_bytes >= frames:
        return None
    present = present_bytes // frame_bytes
    return (f"truncated AIFF: its header announces {frames} sample frames but the file holds "
            f"only {present} ({100 * present / frames:.0f}%); re-copy or re-export the file")


#: AIFF-C compression types whose sound data is plain sample frames.
_AIFC_PCM = frozenset({b"NONE", b"sowt", b"twos", b"fl32", b"FL32", b"fl64", b"FL64", b"raw "})
