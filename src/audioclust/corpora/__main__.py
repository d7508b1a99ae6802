"""``python -m audioclust.corpora {instruments,music,speech,textures} DEST [--size tiny|small|bench] [--seed N]
[--band]``."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from audioclust.core.errors import AudioclustError
from audioclust.corpora import SIZES, Summary, instruments, music, speech, textures

GENERATORS: dict[str, Callable[..., Summary]] = {
    "instruments": instruments.generate,
    "music": music.generate,
    "speech": speech.generate,
    "textures": textures.generate,
}


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m audioclust.corpora``."""
    parser = argparse.ArgumentParser(
        prog="python -m audioclust.corpora",
        description="Generate a labelled benchmark corpus into DEST/<label>/ and its label CSVs beside DEST "
                    "(see the audioclust.corpora docstring).")
    parser.add_argument("kind", choices=list(GENERATORS), help="which corpus")
    parser.add_argument("dest", help="the corpus folder: new, or one this generator wrote")
    parser.add_argument("--size", choices=SIZES, default="tiny",
                        help="tiny (tests), small (~100-150), bench (~400-600)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same corpus")
    parser.add_argument("--band", action="store_true",
                        help="music only: every style played by one band (piano, bass, the style's drums)")
    parser.add_argument("--n-jobs", type=int, default=-1, help="worker processes (-1: every core)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def describe(summary: Summary) -> str:
    """A printable account of a generated corpus: counts and mean durations per label, label CSVs."""
    lines = [f"{summary.kind}: {summary.files} files in {summary.dest} ({summary.written} written, "
             f"{summary.files - summary.written} kept), {summary.seconds / 60:.1f} min of audio, "
             f"in {summary.elapsed:.1f} s"]
    for column, counts in summary.counts.items():
        means = summary.mean_seconds[column]
        cells = ", ".join(f"{label} {n} ({means[label]:.2f} s)" for label, n in counts.items())
        lines.append(f"  {column} ({len(counts)} labels; files, mean duration): {cells}")
    lines.append(f"every label set: {summary.csvs['labels']}")
    lines.append("one per label set (path,label), for --set dataset.labels=csv --set dataset.label_csv=../<file>:")
    lines.extend(f"  {path}" for name, path in summary.csvs.items() if name != "labels")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.band and args.kind != "music":
        print("error: --band is an option of the music corpus", file=sys.stderr)
        return 2
    options = {"band": True} if args.band else {}
    try:
        summary = GENERATORS[args.kind](args.dest, size=args.size, seed=args.seed, n_jobs=args.n_jobs, **options)
    except AudioclustError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(describe(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
