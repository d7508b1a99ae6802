"""Excerpts of instrumental music in eight styles, rendered by FluidSynth from generated MIDI.

A style is an arrangement: the General MIDI instruments of the melody, the chords and the bass,
a drum pattern, the metre, a tempo range, the mode and the chord progressions it uses. Every
piece draws from the seed its tempo inside the style's range, its progression, its melody, its
velocities and its level; its key (one of the 12 tonics) is planned so that each style plays
every key equally often. With ``band=True`` every style is played by one band (piano melody
and chords, acoustic bass, the style's drums), so that only rhythm, tempo, metre, mode and
harmony tell the styles apart, not the instruments. A piece is cut from its start, like a clip
taken from a recording, and faded out over its last second. Reverb and chorus are FluidSynth's defaults. Label sets:
``style`` (the folder), ``key`` (the tonic's pitch class; each style keeps its mode),
``tempo`` (beats per minute, rounded). Files: ``bossa/bossa_Fs_07.wav`` (``s`` for a sharp).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audioclust.core.errors import DatasetError
from audioclust.corpora import Clip, Summary, check_size, clip_rng, write_corpus
from audioclust.corpora.instruments import PITCH_CLASSES
from audioclust.corpora.midi import SOUNDFONT, TICKS_PER_QUARTER, checked_soundfont, midi_file, render_midi

#: Bumped when the rendering changes, so a re-run renders every file again.
VERSION = 1

#: FluidSynth's master gain: low enough that no mix clips before the level is set.
GAIN = 0.3

#: Seconds each FluidSynth call may take.
TIMEOUT_S = 120

#: Seconds of the fade-out at the end of an excerpt.
FADE_S = 1.0

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)

#: Drum channel (General MIDI channel 10) and the kit's notes used below.
DRUMS = 9
KICK, SIDE_STICK, SNARE, CLAP, CLOSED_HAT, PEDAL_HAT, OPEN_HAT, RIDE, MARACAS = 36, 37, 38, 39, 42, 44, 46, 51, 70

#: A bass note's chord tone: the root, third, fifth and octave of the bar's chord, or a semitone below the next
#: bar's root (a walking bass's approach note).
ROOT, THIRD, FIFTH, OCTAVE, APPROACH = 0, 1, 2, 3, -1


@dataclass(frozen=True)
class Style:
    """An arrangement that every piece of the style plays in its own key, tempo and melody.

    Parameters
    ----------
    name : label and file-name prefix.
    tempo : lowest and highest tempo, quarter notes per minute.
    metre : beats per bar.
    minor : natural minor instead of major.
    sevenths : chords of four notes instead of triads.
    progressions : chord progressions as 0-based scale degrees, a chord per bar.
    melody : (General MIDI program, 0-based, or None for no melody; the bars' rhythms in beats, each filling a bar).
    comp : (program, chord hits as (beat, beats held) per bar; empty for an arpeggio in eighths).
    bass : (program, notes as (beat, beats held, chord tone) per bar).
    drums : (beat, drum note) per bar; empty for none.
    swing : where an off-beat eighth falls inside its beat (0.5 straight, 2/3 swung).
    power : the chords are root, fifth and octave (a distorted guitar's power chord).
    """

    name: str
    tempo: tuple[int, int]
    metre: int
    minor: bool
    sevenths: bool
    progressions: tuple[tuple[int, ...], ...]
    melody: tuple[int | None, tuple[tuple[float, ...], ...]]
    comp: tuple[int, tuple[tuple[float, float], ...]]
    bass: tuple[int, tuple[tuple[float, float, int], ...]]
    drums: tuple[tuple[float, int], ...] = ()
    swing: float = 0.5
    power: bool = False


def _every(step: float, metre: int, note: int, start: float = 0.0) -> tuple[tuple[float, int], ...]:
    """A drum note on every ``step`` beats of a bar from ``start``."""
    return tuple((float(beat), note) for beat in np.arange(start, metre, step))


_EIGHTHS = tuple((beat, 0.45) for beat in np.arange(0, 4, 0.5))

#: Eight styles from popular and art music: instruments, metres, tempos and rhythms that set them apart.
STYLES = {s.name: s for s in (
    Style("ballad", (60, 76), 4, False, False, ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 0, 4)),
          melody=(0, ((2, 2), (1, 1, 2), (1.5, 0.5, 2), (3, 1))),
          comp=(0, ()),  # piano arpeggio
          bass=(0, ((0, 4, ROOT),))),
    Style("rock", (112, 140), 4, False, False, ((0, 3, 4, 3), (0, 4, 5, 3), (5, 3, 0, 4)),
          melody=(None, ()),
          comp=(29, _EIGHTHS), power=True,  # overdriven guitar
          bass=(33, tuple((beat, 0.45, ROOT) for beat in np.arange(0, 4, 0.5))),
          drums=((0, KICK), (2, KICK), (2.5, KICK), (1, SNARE), (3, SNARE), *_every(0.5, 4, CLOSED_HAT))),
    Style("jazz", (120, 180), 4, False, True, ((1, 4, 0, 0), (0, 5, 1, 4), (2, 5, 1, 4)),
          melody=(66, ((1, 0.5, 0.5, 2), (0.5, 0.5, 0.5, 0.5, 2), (1.5, 0.5, 1, 1), (3, 1))),  # tenor sax
          comp=(0, ((0, 0.8), (1.5, 0.5))),  # piano, the Charleston rhythm
          bass=(32, ((0, 1, ROOT), (1, 1, THIRD), (2, 1, FIFTH), (3, 1, APPROACH))),  # walking
          drums=((0, RIDE), (1, RIDE), (1.5, RIDE), (2, RIDE), (3, RIDE), (3.5, RIDE), (1, PEDAL_HAT),
                 (3, PEDAL_HAT)),
          swing=2 / 3),
    Style("strings", (66, 96), 4, True, False, ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6)),
          melody=(40, ((2, 2), (3, 1), (1, 1, 2), (4,))),  # violin
          comp=(48, ((0, 4),)),  # string ensemble
          bass=(42, ((0, 2, ROOT), (2, 2, FIFTH)))),  # cello
    Style("techno", (122, 132), 4, True, False, ((0, 0, 5, 6), (0, 3, 0, 3), (0, 5, 3, 4)),
          melody=(81, ((0.5,) * 8, (0.75, 0.75, 0.5, 0.75, 0.75, 0.5))),  # sawtooth lead
          comp=(89, ((0, 4),)),  # warm pad
          bass=(38, tuple((beat + 0.5, 0.4, ROOT) for beat in range(4))),  # synth bass on the off-beats
          drums=(*_every(1, 4, KICK), (1, CLAP), (3, CLAP), *_every(1, 4, OPEN_HAT, 0.5),
                 *_every(0.5, 4, CLOSED_HAT, 0.25))),
    Style("bossa", (126, 146), 4, False, True, ((0, 1, 4, 0), (0, 3, 1, 4), (1, 4, 0, 5)),
          melody=(73, ((1.5, 0.5, 2), (1, 1, 1, 1), (0.5, 1, 0.5, 2))),  # flute
          comp=(24, ((0, 0.5), (1.5, 0.5), (2.5, 0.5), (3, 0.5))),  # nylon guitar
          bass=(32, ((0, 1.5, ROOT), (1.5, 0.5, FIFTH), (2, 1.5, ROOT), (3.5, 0.5, FIFTH))),
          drums=((0, SIDE_STICK), (1.5, SIDE_STICK), (3, SIDE_STICK), (0, KICK), (1.5, KICK), (2, KICK),
                 (3.5, KICK), *_every(0.5, 4, MARACAS))),
    Style("reggae", (68, 84), 4, False, False, ((0, 3, 0, 4), (0, 5, 3, 4), (0, 0, 3, 3)),
          melody=(11, ((1, 1, 2), (2, 1, 1), (1.5, 0.5, 1, 1))),  # vibraphone
          comp=(16, tuple((beat + 0.5, 0.3) for beat in range(4))),  # drawbar organ skank
          bass=(33, ((0, 1.5, ROOT), (2, 0.5, FIFTH), (2.5, 1, THIRD))),
          drums=((2, KICK), (2, SIDE_STICK), *_every(0.5, 4, CLOSED_HAT))),  # the one drop
    Style("waltz", (150, 180), 3, False, False, ((0, 4, 4, 0), (0, 3, 4, 0), (0, 0, 3, 4)),
          melody=(21, ((1, 1, 1), (2, 1), (3,), (1.5, 0.5, 1))),  # accordion
          comp=(25, ((1, 0.8), (2, 0.8))),  # steel guitar on two and three
          bass=(32, ((0, 1, ROOT),))),
)}

#: Per size: styles, pieces per style (a multiple of 12 plays every key alike), seconds per piece.
SIZES: dict[str, tuple[tuple[str, ...], int, float]] = {
    "tiny": (("ballad", "rock", "techno"), 2, 4.0),
    "small": (tuple(STYLES), 12, 8.0),
    "bench": (tuple(STYLES), 48, 15.0),
}

#: The programs of ``band=True``: piano melody and chords, acoustic bass.
BAND = {"melody": 0, "comp": 0, "bass": 32}

#: Centre notes (MIDI) of the melody, the chords and the bass.
MELODY_NOTE, COMP_NOTE, BASS_NOTE = 72, 60, 40


def plan(size: str, *, seed: int = 0, band: bool = False, soundfont: Path = SOUNDFONT) -> list[Clip]:
    """The pieces of ``size``: per style, ``n`` pieces whose keys run through the 12 tonics from a random start.

    Parameters
    ----------
    size : ``tiny``, ``small`` or ``bench`` (:data:`SIZES`).
    seed : draws each piece's key offset, tempo, progression, melody, velocities and level.
    band : every style played by the same instruments (:data:`BAND`).
    soundfont : the ``.sf2`` file rendered from.
    """
    check_size(size)
    names, per_style, seconds = SIZES[size]
    clips = []
    for name in names:
        style = STYLES[name]
        first_key = int(clip_rng(seed, name, "keys").integers(12))
        for i in range(per_style):
            rng = clip_rng(seed, name, i)
            tonic = (first_key + i) % 12
            tempo = round(float(rng.uniform(*style.tempo)), 1)
            key = PITCH_CLASSES[tonic]
            clips.append(Clip(
                rel=f"{name}/{name}_{key.replace('#', 's')}_{i:02d}.wav",
                labels={"style": name, "key": key, "tempo": str(round(tempo))},
                params={"version": VERSION, "style": name, "tonic": tonic, "tempo": tempo, "seconds": seconds,
                        "seed": int(rng.integers(2**31)), "level": round(float(rng.uniform(0.3, 0.8)), 3),
                        "band": band, "gain": GAIN, "soundfont": str(soundfont)}))
    return clips


def generate(dest: str | Path, *, size: str = "tiny", seed: int = 0, n_jobs: int = -1, band: bool = False,
             soundfont: str | Path = SOUNDFONT) -> Summary:
    """Render the pieces of ``size`` into ``dest/<style>/`` and the label CSVs beside it.

    Parameters
    ----------
    dest : the corpus folder (new, or written by this generator before).
    size : ``tiny`` (6 pieces of 4 s), ``small`` (96 of 8 s) or ``bench`` (384 of 15 s).
    seed : draws the pieces.
    n_jobs : FluidSynth processes at a time (-1: every core).
    band : every style played by the same instruments (:data:`BAND`).
    soundfont : the General MIDI ``.sf2`` file.

    Raises
    ------
    DatasetError
        ``fluidsynth`` or the soundfont is missing (the message names the Debian package),
        ``dest`` is somebody else's folder, or FluidSynth fails.
    """
    check_size(size)
    soundfont = checked_soundfont(soundfont)
    return write_corpus(dest, kind="music", clips=plan(size, seed=seed, band=band, soundfont=soundfont),
                        render=render, n_jobs=n_jobs)


def render(clip: Clip) -> np.ndarray:
    """Render one piece with FluidSynth: mono float32 at :data:`SR`, ``seconds`` long, peak at ``level``.

    Raises
    ------
    DatasetError
        FluidSynth is missing, fails, runs longer than :data:`TIMEOUT_S` or renders silence.
    """
    p = clip.params
    midi = piece_file(STYLES[p["style"]], tonic=p["tonic"], tempo=p["tempo"], seconds=p["seconds"],
                      rng=np.random.default_rng(p["seed"]), band=p["band"])
    y = render_midi(midi, soundfont=p["soundfont"], gain=p["gain"], seconds=p["seconds"], fade=FADE_S, what=clip.rel,
                    timeout=TIMEOUT_S)
    peak = float(np.abs(y).max())
    if peak == 0:
        raise DatasetError(f"fluidsynth rendered {clip.rel} silent")
    return y * np.float32(p["level"] / peak)


def piece_file(style: Style, *, tonic: int, tempo: float, seconds: float, rng: np.random.Generator,
               band: bool = False) -> bytes:
    """The MIDI file of one piece: enough bars of ``style`` in ``tonic`` at ``tempo`` to fill ``seconds``, played
    by the style's instruments or, with ``band``, by :data:`BAND`.

    Channel 1 plays the melody, 2 the chords, 3 the bass and 10 the drums. Velocities vary by ±8 around each
    part's level; the melody walks the scale by steps and leaps of a third, landing on a chord tone at each bar.
    """
    scale = MINOR if style.minor else MAJOR
    bars = int(np.ceil(seconds * tempo / 60 / style.metre)) + 1  # one more: the excerpt ends inside a bar
    progression = style.progressions[int(rng.integers(len(style.progressions)))]
    chords = [progression[bar % len(progression)] for bar in range(bars + 1)]
    events: list[tuple[int, bytes]] = []

    def tick(beat: float) -> int:
        whole = np.floor(beat)
        if style.swing != 0.5 and abs(beat - whole - 0.5) < 1e-9:
            beat = whole + style.swing
        return round(beat * TICKS_PER_QUARTER)

    def note(channel: int, pitch: int, start: float, length: float, velocity: int) -> None:
        velocity = int(np.clip(velocity + rng.integers(-8, 9), 1, 127))
        on, off = tick(start), max(tick(start + length) - 10, tick(start) + 1)
        events.extend([(on, bytes([0x90 | channel, pitch, velocity])), (off, bytes([0x80 | channel, pitch, 0]))])

    def degree_note(degree: int, centre: int) -> int:
        """The MIDI note of a scale degree (any integer) in the octave of the tonic nearest ``centre``."""
        base = centre - 6 + (tonic - (centre - 6)) % 12
        return base + scale[degree % 7] + 12 * (degree // 7)

    def chord_notes(degree: int, centre: int) -> list[int]:
        if style.power:  # root, fifth, octave
            root = degree_note(degree, centre)
            return [root, degree_note(degree + 4, centre), root + 12]
        return [degree_note(degree + step, centre) for step in ((0, 2, 4, 6) if style.sevenths else (0, 2, 4))]

    melody_program, rhythms = style.melody
    comp_program, hits = style.comp
    bass_program, line = style.bass
    if band:
        comp_program, bass_program = BAND["comp"], BAND["bass"]
        melody_program = None if melody_program is None else BAND["melody"]
    programs = [(1, comp_program), (2, bass_program)] + ([(0, melody_program)] if melody_program is not None else [])
    events.extend((0, bytes([0xC0 | channel, program])) for channel, program in programs)
    position = 0  # the melody's scale step above the tonic
    for bar in range(bars):
        start, degree = bar * style.metre, chords[bar]
        chord = chord_notes(degree, COMP_NOTE)
        if hits:
            for beat, length in hits:
                for pitch in chord:
                    note(1, pitch, start + beat, length, 70)
        else:  # an arpeggio in eighths: root, fifth, octave, third above, ...
            pattern = [chord[0], chord[2], chord[0] + 12, chord[1] + 12]
            for i, beat in enumerate(np.arange(0, style.metre, 0.5)):
                note(1, pattern[i % len(pattern)], start + beat, 0.5, 60)
        bass_chord = chord_notes(degree, BASS_NOTE)
        for beat, length, tone in line:
            if tone == APPROACH:
                pitch = chord_notes(chords[bar + 1], BASS_NOTE)[0] - 1
            elif tone == OCTAVE:
                pitch = bass_chord[0] + 12
            else:
                pitch = bass_chord[min(tone, len(bass_chord) - 1)]
            note(2, pitch, start + beat, length, 90)
        for beat, drum in style.drums:
            note(DRUMS, drum, start + beat, 0.25, 100 if beat == int(beat) else 80)
        if melody_program is None:
            continue
        beat = 0.0
        for i, length in enumerate(rhythms[int(rng.integers(len(rhythms)))]):
            if i == 0:  # land on the chord tone nearest the melody
                tones = [degree + step + 7 * octave for step in (0, 2, 4) for octave in (-1, 0, 1)]
                position = min(tones, key=lambda t: (abs(t - position), t))
            else:
                position += int(rng.choice((-2, -1, -1, 1, 1, 2)))
            position = int(np.clip(position, -3, 10))
            if rng.random() > 0.1:  # a rest now and then
                note(0, degree_note(position, MELODY_NOTE), start + beat, length, 85)
            beat += length
    end = round(bars * style.metre * TICKS_PER_QUARTER)
    return midi_file(events, tempo_bpm=tempo, end_tick=end)
