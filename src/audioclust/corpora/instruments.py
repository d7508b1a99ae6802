"""Single notes of General MIDI instruments, rendered by FluidSynth from the FluidR3 soundfont.

Every instrument of a size plays the same pitches, each inside the range the real instrument
has, so pitch class and instrument are not confounded; each pitch is played at every velocity
of the size. A note is held 0.9–1.4 s (drawn per note from the seed), then released for
:data:`RELEASE_S`; reverb and chorus are FluidSynth's defaults. Label sets: ``instrument``
(the folder), ``pitch_class``, ``midi_note``, ``velocity``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audioclust.corpora import Clip, Summary, check_size, clip_rng, write_corpus
from audioclust.corpora.midi import SOUNDFONT, TICKS_PER_QUARTER, checked_soundfont, midi_file, render_midi

#: Bumped when the rendering changes, so a re-run renders every file again.
VERSION = 1

#: Seconds rendered after the note-off (the release and the reverb's tail).
RELEASE_S = 0.5

#: FluidSynth's master gain: the loudest note of ``bench`` peaks near 0.7.
GAIN = 1.6

#: Seconds each FluidSynth call may take.
TIMEOUT_S = 60

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@dataclass(frozen=True)
class Instrument:
    """A General MIDI instrument and the range of notes the real one plays.

    Parameters
    ----------
    name : label and file-name prefix.
    program : General MIDI program number, 0-based.
    low, high : lowest and highest MIDI note of its usual range (sounding pitch).
    """

    name: str
    program: int
    low: int
    high: int


#: Eight instruments from eight families.
INSTRUMENTS = {i.name: i for i in (
    Instrument("piano", 0, 21, 108),      # acoustic grand, A0–C8
    Instrument("marimba", 12, 45, 96),    # 4.3 octaves, A2–C7
    Instrument("organ", 19, 36, 96),      # church organ manual, C2–C7
    Instrument("guitar", 24, 40, 83),     # nylon strings, E2–B5 (19th fret)
    Instrument("violin", 40, 55, 100),    # G3–E7
    Instrument("trumpet", 56, 52, 82),    # B-flat trumpet, sounding E3–B-flat 5
    Instrument("clarinet", 71, 50, 91),   # B-flat clarinet, sounding D3–G6
    Instrument("flute", 73, 59, 96),      # B3 (B foot joint)–C7
)}

#: Per size: instruments, MIDI notes (inside every instrument's range), velocities.
SIZES: dict[str, tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]]] = {
    "tiny": (("piano", "violin", "flute"), (60, 64, 67, 71), (80,)),
    "small": (("piano", "marimba", "guitar", "violin", "trumpet", "flute"), tuple(range(60, 72)), (60, 100)),
    "bench": (tuple(INSTRUMENTS), tuple(range(59, 83)), (45, 80, 115)),  # B3–A#5: every pitch class twice
}


def note_name(note: int) -> str:
    """Scientific pitch name of a MIDI note: 60 -> ``C4``, 61 -> ``C#4``."""
    return f"{PITCH_CLASSES[note % 12]}{note // 12 - 1}"


def plan(size: str, *, seed: int = 0, soundfont: Path = SOUNDFONT) -> list[Clip]:
    """The notes of ``size``: one clip per instrument, MIDI note and velocity.

    Parameters
    ----------
    size : ``tiny``, ``small`` or ``bench`` (:data:`SIZES`).
    seed : draws each note's hold time.
    soundfont : the ``.sf2`` file rendered from.
    """
    check_size(size)
    names, notes, velocities = SIZES[size]
    clips = []
    for name in names:
        inst = INSTRUMENTS[name]
        for note in notes:
            for velocity in velocities:
                hold = round(float(clip_rng(seed, name, note, velocity).uniform(0.9, 1.4)), 3)
                clips.append(Clip(
                    rel=f"{name}/{name}_{note_name(note).replace('#', 's')}_v{velocity}.wav",
                    labels={"instrument": name, "pitch_class": PITCH_CLASSES[note % 12], "midi_note": str(note),
                            "velocity": str(velocity)},
                    params={"version": VERSION, "program": inst.program, "note": note, "velocity": velocity,
                            "hold": hold, "release": RELEASE_S, "gain": GAIN, "soundfont": str(soundfont)}))
    return clips


def generate(dest: str | Path, *, size: str = "tiny", seed: int = 0, n_jobs: int = -1,
             soundfont: str | Path = SOUNDFONT) -> Summary:
    """Render the instrument notes of ``size`` into ``dest/<instrument>/`` and the label CSVs beside it.

    Parameters
    ----------
    dest : the corpus folder (new, or written by this generator before).
    size : ``tiny`` (12 notes), ``small`` (144) or ``bench`` (576).
    seed : draws the hold times.
    n_jobs : FluidSynth processes at a time (-1: every core).
    soundfont : the General MIDI ``.sf2`` file.

    Raises
    ------
    DatasetError
        ``fluidsynth`` or the soundfont is missing (the message names the Debian package),
        ``dest`` is somebody else's folder, or FluidSynth fails.
    """
    check_size(size)
    soundfont = checked_soundfont(soundfont)
    return write_corpus(dest, kind="instruments", clips=plan(size, seed=seed, soundfont=soundfont), render=render,
                        n_jobs=n_jobs)


def render(clip: Clip) -> np.ndarray:
    """Render one note with FluidSynth: mono float32 at :data:`SR`, ``hold + release`` seconds long.

    Raises
    ------
    DatasetError
        FluidSynth is missing, fails or runs longer than :data:`TIMEOUT_S`.
    """
    p = clip.params
    midi = midi_note_file(program=p["program"], note=p["note"], velocity=p["velocity"], hold=p["hold"],
                          tail=p["release"])
    return render_midi(midi, soundfont=p["soundfont"], gain=p["gain"], seconds=p["hold"] + p["release"], fade=0.05,
                       what=clip.rel, timeout=TIMEOUT_S)


def midi_note_file(*, program: int, note: int, velocity: int, hold: float, tail: float) -> bytes:
    """A standard MIDI file (format 0) playing one note on channel 1 at 120 bpm.

    Parameters
    ----------
    program : General MIDI program, 0-based.
    note, velocity : MIDI note number and velocity (1–127).
    hold : seconds from note-on to note-off.
    tail : seconds from note-off to the end of the track.
    """
    ticks_per_second = 2 * TICKS_PER_QUARTER  # two quarter notes a second at 120 bpm
    off = round(hold * ticks_per_second)
    events = [(0, bytes([0xC0, program])), (0, bytes([0x90, note, velocity])), (off, bytes([0x80, note, 0]))]
    return midi_file(events, tempo_bpm=120, end_tick=off + round(tail * ticks_per_second))
