"""Spoken words from the espeak-ng speech synthesiser, in several voices, each word repeated.

A voice is an espeak-ng accent with a voice variant (``en-gb+f4``) and its own base pitch and
speed; every repetition of a word jitters the speed (±12 %), the pitch (±8 on espeak-ng's
0–99 scale) and the level (0 to -6 dB), so no two repetitions are the same file. The silence
espeak-ng leaves around a word is trimmed to 50 ms. Label sets: ``word`` (the folder),
``voice``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from audioclust.core.errors import DatasetError
from audioclust.corpora import SR, Clip, Summary, check_size, clip_rng, require_tool, run_tool, write_corpus

#: Bumped when the rendering changes, so a re-run renders every file again.
VERSION = 1

#: Seconds each espeak-ng call may take.
TIMEOUT_S = 30

#: Samples below this level (dB under the word's peak) count as silence when trimming.
SILENCE_DB = -40.0

#: Silence kept before and after a word, s.
PAD_S = 0.05

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: ``name`` is its ``-v`` argument (accent ``+`` variant) and its label.

    Parameters
    ----------
    name : ``-v`` argument, e.g. ``en-gb+f4``.
    pitch : base pitch, ``-p`` (0–99).
    speed : base speed in words per minute, ``-s``.
    """

    name: str
    pitch: int
    speed: int


#: Eight voices: five accents, male and female variants, spread in pitch and speed.
VOICES = (
    Voice("en-us+m1", 40, 160),
    Voice("en-gb+f4", 65, 150),
    Voice("en-gb-scotland+m2", 45, 140),
    Voice("en-029+f1", 55, 170),
    Voice("en-gb+m3", 30, 150),
    Voice("en-us+f2", 60, 165),
    Voice("en-gb-x-rp+m7", 35, 145),
    Voice("en-us-nyc+f3", 70, 175),
)

#: Per size: words, number of voices (the first of :data:`VOICES`), repetitions.
SIZES: dict[str, tuple[tuple[str, ...], int, int]] = {
    "tiny": (("zero", "one", "seven"), 2, 2),
    "small": (WORDS, 4, 3),
    "bench": (WORDS, 8, 6),
}


def plan(size: str, *, seed: int = 0) -> list[Clip]:
    """The recordings of ``size``: one clip per word, voice and repetition.

    Parameters
    ----------
    size : ``tiny``, ``small`` or ``bench`` (:data:`SIZES`).
    seed : draws each repetition's speed, pitch and level.
    """
    check_size(size)
    words, n_voices, reps = SIZES[size]
    clips = []
    for word in words:
        for voice in VOICES[:n_voices]:
            for rep in range(1, reps + 1):
                rng = clip_rng(seed, word, voice.name, rep)
                clips.append(Clip(
                    rel=f"{word}/{word}_{voice.name}_r{rep}.wav",
                    labels={"word": word, "voice": voice.name},
                    params={"version": VERSION, "word": word, "voice": voice.name,
                            "speed": round(voice.speed * float(rng.uniform(0.88, 1.12))),
                            "pitch": int(np.clip(voice.pitch + rng.integers(-8, 9), 0, 99)),
                            "gain_db": round(float(rng.uniform(-6.0, 0.0)), 2)}))
    return clips


def generate(dest: str | Path, *, size: str = "tiny", seed: int = 0, n_jobs: int = -1) -> Summary:
    """Speak the words of ``size`` into ``dest/<word>/`` and write the label CSVs beside it.

    Parameters
    ----------
    dest : the corpus folder (new, or written by this generator before).
    size : ``tiny`` (12 files), ``small`` (120) or ``bench`` (480).
    seed : draws the repetitions' jitter.
    n_jobs : espeak-ng processes at a time (-1: every core).

    Raises
    ------
    DatasetError
        ``espeak-ng`` is missing (the message names the Debian package), ``dest`` is somebody
        else's folder, or espeak-ng fails.
    """
    check_size(size)
    require_tool("espeak-ng", package="espeak-ng")
    return write_corpus(dest, kind="speech", clips=plan(size, seed=seed), render=render, n_jobs=n_jobs)


def render(clip: Clip) -> np.ndarray:
    """Speak one word with the ``espeak-ng`` command: mono float32 at :data:`SR`, silence trimmed.

    Raises
    ------
    DatasetError
        espeak-ng is missing, fails, writes another sample rate or nothing audible.
    """
    p = clip.params
    with tempfile.TemporaryDirectory(prefix="audioclust-espeak-") as tmp:
        wav = Path(tmp, "word.wav")
        command = ["espeak-ng", "-v", p["voice"], "-p", str(p["pitch"]), "-s", str(p["speed"]), "-w", str(wav),
                   p["word"]]
        run_tool(command, what=clip.rel, package="espeak-ng", timeout=TIMEOUT_S)
        y, sr = sf.read(wav, dtype="float32")
    if sr != SR or y.ndim != 1:
        raise DatasetError(f"espeak-ng wrote {clip.rel} with {y.ndim} dimension(s) at {sr} Hz, "
                           f"expected mono at {SR} Hz")
    loud = np.flatnonzero(np.abs(y) > np.max(np.abs(y), initial=0.0) * 10 ** (SILENCE_DB / 20))
    if not loud.size:
        raise DatasetError(f"espeak-ng wrote silence for {clip.rel}")
    pad = round(PAD_S * SR)
    y = y[max(0, loud[0] - pad):loud[-1] + pad + 1]
    return y * np.float32(10 ** (p["gain_db"] / 20))
