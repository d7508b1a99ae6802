"""Quality at a glance: per collection, the label-free picks of stages 04 and 05 beside stage 04's best row chosen by
the labels, all scored from the saved partitions.

Usage::

    .venv/bin/python benchmarks/bench_glance.py --root ROOT --sets NAME:STAGE04_EXP:STAGE05_EXP[:stemN] [...]
        [--out FILE]

ROOT/NAME must hold a stage-04 run in experiment STAGE04_EXP and a stage-05 run in STAGE05_EXP, made at the same
``cluster.k`` (the commands are on the benchmarks page). Beside stage 05's pick, the best of its structures'
representatives (the pick and the alternatives of ``structures.csv``, which the report offers; the labels choose which
is best, so it measures what a user can find there, not what they get). ``stemN`` scores against the N-th
``_``-separated field of each file's stem instead of its label (FSDD: ``stem1``, the speaker). Every NMI is computed
again from the runs' ``labels.csv`` against that truth; the best row by the labels is taken among stage 04's eligible
rows (those its label-free selection could choose). The labels only score.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from bench_autoencoder import emit  # noqa: E402
from bench_stage05_variants import scored, set_label, truth_of  # noqa: E402

from audioclust.core.paths import ProjectPaths  # noqa: E402
from audioclust.results import read_partitions, read_results, true_flags  # noqa: E402


def scored_rows(paths: ProjectPaths, source: str, stem_field: int | None) -> pd.DataFrame:
    """A stage's rows with ``nmi`` computed again from its partitions against the labels or a stem field."""
    rows, partitions = read_results(paths, source), read_partitions(paths, source)
    truth = truth_of(paths, stem_field, source)
    return scored(rows[rows["id"].isin(partitions)], partitions, truth)


def shown(row: pd.Series) -> str:
    return f"{row['id']}, k = {int(row['n_clusters'])}: {row['nmi']:.3f}"


def line_of(root: Path, item: str) -> str:
    name, stage04, stage05, *rest = item.split(":")
    stem_field = int(rest[0].removeprefix("stem")) if rest else None
    clustering = scored_rows(ProjectPaths(root, name, stage04), "clustering", stem_field)
    autoencoder = scored_rows(ProjectPaths(root, name, stage05), "autoencoder", stem_field)
    pick04 = clustering[true_flags(clustering, "pick")].iloc[0]
    pick05 = autoencoder[true_flags(autoencoder, "pick")].iloc[0]
    eligible = clustering[true_flags(clustering, "eligible")]
    best = eligible.loc[eligible["nmi"].idxmax()]
    gap = best["nmi"] - pick05["nmi"]
    structures = ProjectPaths(root, name, stage05).results / "autoencoder" / "structures.csv"
    offered = autoencoder[autoencoder["id"].isin(pd.read_csv(structures)["representative"])] \
        if structures.is_file() else autoencoder.iloc[:0]
    alternative = shown(offered.loc[offered["nmi"].idxmax()]) if len(offered) else "(no structures.csv)"
    label = set_label(name, stem_field)
    return (f"| {label} | {shown(pick04)} | {shown(pick05)} | {len(offered)}: {alternative} | {shown(best)} | "
            f"{'above by ' if gap < 0 else ''}{abs(gap):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--sets", nargs="+", required=True, metavar="NAME:STAGE04_EXP:STAGE05_EXP[:stemN]")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()
    lines = ["| set | stage 04 pick (NMI) | stage 05 pick (NMI) | stage 05 structures: the best (NMI) | "
             "stage 04 best by the labels (NMI) | stage 05's pick short of it by |", "|---|---|---|---|---|---:|"]
    lines += [line_of(args.root, item) for item in args.sets]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
