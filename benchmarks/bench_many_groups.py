"""A collection of many small groups: 24 General MIDI instruments, 10 notes each, for stage 04's k estimate.

Usage::

    .venv/bin/python benchmarks/bench_many_groups.py --root ROOT
    .venv/bin/audioclust run --root ROOT --dataset many --stages metadata transform extract embed cluster \\
        --set cluster.figures=false
    .venv/bin/audioclust cluster --root ROOT --dataset many --experiment k24 --set cluster.k=24 --set cluster.figures=false

Writes ``ROOT/datasets/many/<instrument>/<instrument>_<note>.wav``: ten distinct MIDI notes of 48-72 per instrument
(drawn with seed 3), velocity 90, held 0.8-1.3 s and released for 0.5 s, rendered by FluidSynth from the FluidR3
soundfont as the instrument corpus renders its notes (needs ``fluidsynth`` and ``fluid-soundfont-gm``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from audioclust.corpora.instruments import GAIN, RELEASE_S, TIMEOUT_S, midi_note_file  # noqa: E402
from audioclust.corpora.midi import SOUNDFONT, SR, checked_soundfont, render_midi  # noqa: E402

#: instrument -> General MIDI program (0-based), from every family
PROGRAMS = {"piano": 0, "harpsichord": 6, "vibraphone": 11, "marimba": 12, "drawbar": 16, "church_organ": 19,
            "accordion": 21, "nylon_guitar": 24, "clean_guitar": 27, "dist_guitar": 30, "acoustic_bass": 32,
            "violin": 40, "cello": 42, "harp": 46, "trumpet": 56, "trombone": 57, "horn": 60, "alto_sax": 65,
            "oboe": 68, "clarinet": 71, "flute": 73, "banjo": 105, "steel_drums": 114, "choir": 52}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    args = parser.parse_args()
    out = args.root / "datasets" / "many"
    if out.exists():
        sys.exit(f"{out} exists: give another --root")
    soundfont = str(checked_soundfont(SOUNDFONT))
    rng = np.random.default_rng(3)
    for name, program in PROGRAMS.items():
        (out / name).mkdir(parents=True)
        for note in rng.choice(np.arange(48, 73), 10, replace=False):
            hold = float(rng.uniform(0.8, 1.3))
            midi = midi_note_file(program=program, note=int(note), velocity=90, hold=hold, tail=RELEASE_S)
            y = render_midi(midi, soundfont=soundfont, gain=GAIN, seconds=hold + RELEASE_S, fade=0.05, what=name,
                            timeout=TIMEOUT_S)
            sf.write(out / name / f"{name}_{note}.wav", y, SR, subtype="PCM_16")
    print(f"{out}: {len(PROGRAMS) * 10} files")


if __name__ == "__main__":
    main()
