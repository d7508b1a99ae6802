"""Stage 05's pick by its own rule against stage 04's structures rule, on finished stage-05 runs.

Usage::

    .venv/bin/python benchmarks/bench_stage05_pick_rules.py --root ROOT --runs NAME:EXP[:stemN] [...]

For each run (dataset NAME, experiment EXP) the stage's pick (the most stable model,
:func:`audioclust.clustering.structures.picked_model`) is set beside the representative of the structure most of
the stage's selected rows agree on (:func:`audioclust.clustering.structures.find_structures`, stage 04's rule at
its default threshold, ties by silhouette). ``stemN`` scores against the N-th ``_``-separated field of each file's
stem instead of its label (FSDD: ``stem1``, the speaker). The labels only score.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sklearn.metrics import normalized_mutual_info_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from bench_autoencoder import emit  # noqa: E402
from bench_stage05_variants import set_label, truth_of  # noqa: E402

from audioclust.clustering.structures import find_structures  # noqa: E402
from audioclust.core.paths import ProjectPaths  # noqa: E402
from audioclust.results import read_partitions, read_results, true_flags  # noqa: E402


def line_of(root: Path, dataset: str, experiment: str, stem_field: int | None) -> str:
    paths = ProjectPaths(root, dataset, experiment)
    rows = read_results(paths, "autoencoder")
    partitions = read_partitions(paths, "autoencoder")
    truth = truth_of(paths, stem_field)
    selected = rows[true_flags(rows, "selected")]
    structures = find_structures(selected["id"].tolist(), [partitions[i] for i in selected["id"]],
                                 selected["silhouette"].tolist())

    def named(row_id: str) -> str:
        row = rows.set_index("id").loc[row_id]
        return (f"{row['feature']} z{int(row['latent_dim'])} {row['stage']}, {int(row['n_clusters'])}: "
                f"{normalized_mutual_info_score(truth, partitions[row_id]):.3f}")

    pick = rows.loc[true_flags(rows, "pick"), "id"].iloc[0]
    first = structures[0]
    name = set_label(dataset, stem_field)
    return (f"| {name} | {experiment} | {named(pick)} | {named(first.representative)} "
            f"| {len(first.members)} of {len(selected)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--runs", nargs="+", required=True, metavar="NAME:EXP[:stemN]")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()
    lines = ["| set | experiment | stage 05 pick (NMI) | structures rule (NMI) | rows in its structure |",
             "|---|---|---|---|---:|"]
    for item in args.runs:
        name, experiment, *rest = item.split(":")
        lines.append(line_of(args.root, name, experiment, int(rest[0].removeprefix("stem")) if rest else None))
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
