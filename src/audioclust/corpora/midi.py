"""Standard MIDI files (format 0) from timed events, for the FluidSynth-rendered corpora."""

from __future__ import annotations

import struct
from typing import Iterable

#: Ticks per quarter note of every file written here.
TICKS_PER_QUARTER = 480


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
