"""Standard MIDI files (format 0) from timed events, and their rendering by FluidSynth, for the
soundfont corpora (instrument notes, music)."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf

from audioclust.core.errors import DatasetError
from audioclust.corpora import SR, require_tool, run_tool

#: Ticks per quarter note of every file written here.
TICKS_PER_QUARTER = 480

#: The General MIDI soundfont of the Debian package ``fluid-soundfont-gm``.
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


def checked_soundfont(soundfont: str | Path) -> Path:
    """``soundfont`` as a path, once ``fluidsynth`` and the file are known to be there.

    Raises
    ------
    DatasetError
        ``fluidsynth`` or the soundfont is missing (the message names the Debian package).
    """
    require_tool("fluidsynth", package="fluidsynth")
    soundfont = Path(soundfont)
    if not soundfont.is_file():
        raise DatasetError(f"soundfont {soundfont} not found: install it with `apt-get install fluid-soundfont-gm` "
                           "or pass another General MIDI .sf2 file")
    return soundfont


def render_midi(midi: bytes, *, soundfont: str, gain: float, seconds: float, fade: float, what: str,
                timeout: float) -> np.ndarray:
    """Render a MIDI file with the ``fluidsynth`` command: mono float32 at :data:`SR`, ``seconds`` long (cut or
    padded with silence), faded out over its last ``fade`` seconds; reverb and chorus are FluidSynth's defaults.

    Parameters
    ----------
    midi : the file's bytes (:func:`midi_file`).
    soundfont : the ``.sf2`` file; gain : FluidSynth's master gain.
    what : the clip being rendered, for the messages; timeout : seconds FluidSynth may run.

    Raises
    ------
    DatasetError
        FluidSynth is missing, fails, runs longer than ``timeout`` or writes another sample rate.
    """
    with tempfile.TemporaryDirectory(prefix="audioclust-fluidsynth-") as tmp:
        mid, wav = Path(tmp, "clip.mid"), Path(tmp, "clip.wav")
        mid.write_bytes(midi)
        command = ["fluidsynth", "-n", "-i", "-q", "-F", str(wav), "-r", str(SR), "-g", str(gain),
                   "-o", "audio.file.type=wav", "-o", "audio.file.format=float", soundfont, str(mid)]
        run_tool(command, what=what, package="fluidsynth", timeout=timeout)
        y, sr = sf.read(wav, dtype="float32", always_2d=True)
    if sr != SR:
        raise DatasetError(f"fluidsynth wrote {what} at {sr} Hz instead of {SR} Hz")
    n = round(seconds * SR)
    y = np.pad(y.mean(axis=1), (0, max(0, n - len(y))))[:n]
    faded = round(fade * SR)
    y[-faded:] *= np.linspace(1.0, 0.0, faded, dtype=np.float32)
    return y


def midi_file(events: Iterable[tuple[int, bytes]], *, tempo_bpm: float, end_tick: int) -> bytes:
    """A format-0 MIDI file: a tempo, then ``events`` in time order, then the end of the track.

    Parameters
    ----------
    events : (tick, message bytes) pairs, e.g. ``(0, bytes([0x90, 60, 100]))``; events of the same tick keep
        their order.
    tempo_bpm : quarter notes per minute.
    end_tick : tick of the end of the track (at least the last event's).
    """
    timed = sorted(events, key=lambda event: event[0])  # stable: same-tick events keep their order
    if timed and (timed[0][0] < 0 or timed[-1][0] > end_tick):
        raise ValueError(f"events from tick {timed[0][0]} to {timed[-1][0]} outside 0..{end_tick}")
    chunks = [var_len(0), b"\xff\x51\x03", round(60_000_000 / tempo_bpm).to_bytes(3, "big")]
    now = 0
    for tick, message in timed:
        chunks += [var_len(tick - now), message]
        now = tick
    chunks += [var_len(end_tick - now), b"\xff\x2f\x00"]
    track = b"".join(chunks)
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_QUARTER)
    return header + b"MTrk" + struct.pack(">I", len(track)) + track


def var_len(value: int) -> bytes:
    """MIDI variable-length quantity: 7 bits per byte, most significant first, high bit set on all but the last."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))
