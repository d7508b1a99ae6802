"""DCEC's stop rule: what a floor in files (``autoencoder.tol_files``) saves, and what it changes.

Usage::

    .venv/bin/python benchmarks/bench_dcec_stop.py histories --root ROOT [--floor 1]
    .venv/bin/python benchmarks/bench_dcec_stop.py compare --root ROOT --sets NAME[:stemN] [...] --base EXP --variant EXP

``histories`` replays every DCEC history saved under ``ROOT/logs/<dataset>/dcec_k*_s*/`` (the label change of each
target update, which stage 05 logs) under the floor: the run would have stopped at the first update after the start
that changed at most ``--floor`` files. It counts the runs that would have stopped earlier, those that reached the
batch limit with labels still changing, and the batches saved. Runs the floor itself ended (the last update changed
1 to ``--floor`` files, at least ``tol`` of them) are left out. The number of files of a dataset is read from a
stage-05 ``labels.csv`` of it.

``compare`` sets two stage-05 runs of the same models side by side (the base with ``tol_files: 0``, the variant with
the floor; the variant reuses the base's checkpoints): per DCEC row its batches, what stopped it, its seconds, its
NMI in both and the NMI between the two partitions, then the totals and both picks. ``stemN`` scores against the N-th
``_``-separated field of each file's stem instead of its label. The labels only score.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import normalized_mutual_info_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from bench_stage05_variants import scored, set_label, truth_of  # noqa: E402

from audioclust.core.paths import ProjectPaths  # noqa: E402
from audioclust.results import read_partitions, read_results, true_flags  # noqa: E402


def files_of(root: Path, dataset: str) -> int | None:
    """The number of files stage 05 clustered for ``dataset`` (from any of its ``autoencoder/labels.csv``)."""
    for labels in sorted((root / "results" / dataset).rglob("autoencoder/labels.csv")):
        return len(pd.read_csv(labels, usecols=["stem"]))
    return None


def replay(changes: list[int], steps: list[int], floor: int) -> int:
    """The batch at which a history would have stopped with the floor (its own last batch if never)."""
    return next((step for step, changed in zip(steps[1:], changes[1:]) if changed <= floor), steps[-1])


def histories(root: Path, floor: int, tol: float = 0.001) -> None:
    runs = earlier = at_limit = at_limit_earlier = 0
    batches = saved = 0
    for metrics in sorted((root / "logs").glob("*/dcec_k*_s*/*/metrics.csv")):
        dataset = metrics.relative_to(root / "logs").parts[0]
        n = files_of(root, dataset)
        history = pd.read_csv(metrics).dropna(subset=["delta_label"]).drop_duplicates("step")
        if n is None or len(history) < 2:
            continue
        changes = np.rint(history["delta_label"].to_numpy() * n).astype(int).tolist()
        steps = history["step"].astype(int).tolist()
        if 0 < changes[-1] <= floor and changes[-1] / n >= tol:   # a run with the floor: tol alone goes on there
            continue
        stop = replay(changes, steps, floor)
        runs += 1
        batches += steps[-1]
        saved += steps[-1] - stop
        earlier += stop < steps[-1]
        limited = changes[-1] > 0 and not changes[-1] <= floor   # ended by the batch limit, labels still moving
        at_limit += limited
        at_limit_earlier += limited and stop < steps[-1]
    print(f"{runs} DCEC histories; with at most {floor} file(s) changed as a stop, {earlier} stop earlier, "
          f"saving {saved:,} of {batches:,} batches ({saved / max(batches, 1):.0%}); {at_limit} reached the limit "
          f"with labels changing, {at_limit_earlier} of them after an update within the floor")


def compare(root: Path, dataset: str, stem_field: int | None, base: str, variant: str) -> None:
    truth = truth_of(ProjectPaths(root, dataset, base), stem_field)
    runs = {name: ProjectPaths(root, dataset, name) for name in (base, variant)}
    parts = {name: read_partitions(paths, "autoencoder") for name, paths in runs.items()}
    rows = {name: scored(read_results(paths, "autoencoder"), parts[name], truth).set_index("id")
            for name, paths in runs.items()}
    dcec = rows[base].index[rows[base]["stage"] == "dcec"]
    table = pd.DataFrame({
        "batches": [f"{rows[base].at[i, 'dcec_iterations']:.0f} → {rows[variant].at[i, 'dcec_iterations']:.0f}"
                    for i in dcec],
        "stopped by": [f"{rows[base].at[i, 'stopped_by']} → {rows[variant].at[i, 'stopped_by']}" for i in dcec],
        "s": [f"{rows[base].at[i, 'runtime_s']:.0f} → {rows[variant].at[i, 'runtime_s']:.0f}" for i in dcec],
        "NMI": [f"{rows[base].at[i, 'nmi']:.3f} → {rows[variant].at[i, 'nmi']:.3f}" for i in dcec],
        "agreement": [round(normalized_mutual_info_score(parts[base][i], parts[variant][i]), 3) for i in dcec],
    }, index=[i.split(".npy")[0] for i in dcec])
    change = rows[variant].loc[dcec, "nmi"] - rows[base].loc[dcec, "nmi"]
    before, after = rows[base].loc[dcec, "dcec_iterations"].sum(), rows[variant].loc[dcec, "dcec_iterations"].sum()
    print(f"\n## {set_label(dataset, stem_field)}: {len(truth)} files\n")
    print(table.to_string())
    print(f"\nbatches {before:,.0f} → {after:,.0f} ({after / before - 1:+.0%}); DCEC s "
          f"{rows[base].loc[dcec, 'runtime_s'].sum():.0f} → {rows[variant].loc[dcec, 'runtime_s'].sum():.0f}; "
          f"NMI change mean {change.mean():+.3f} ({change.min():+.3f} … {change.max():+.3f}), "
          f"{int((change.abs() < 5e-4).sum())} of {len(change)} the same")
    for name in (base, variant):
        picked = rows[name][true_flags(rows[name].reset_index(), "pick").to_numpy()]
        print(f"pick of {name}: {picked.index[0]} NMI {picked['nmi'].iloc[0]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    replayed = sub.add_parser("histories", help="replay the saved DCEC histories under a floor")
    replayed.add_argument("--root", type=Path, required=True)
    replayed.add_argument("--floor", type=int, default=1)
    compared = sub.add_parser("compare", help="two stage-05 runs' DCEC rows side by side")
    compared.add_argument("--root", type=Path, required=True)
    compared.add_argument("--sets", nargs="+", required=True, metavar="NAME[:stemN]")
    compared.add_argument("--base", required=True, help="the experiment run with tol_files 0")
    compared.add_argument("--variant", required=True, help="the experiment run with the floor")
    args = parser.parse_args()
    if args.command == "histories":
        histories(args.root, args.floor)
        return
    for spec in args.sets:
        name, *stem = spec.split(":")
        compare(args.root, name, int(stem[0].removeprefix("stem")) if stem else None, args.base, args.variant)


if __name__ == "__main__":
    main()
