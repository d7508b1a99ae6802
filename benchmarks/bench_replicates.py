"""The cost of replicates: stage 04 with one seed and with several, side by side, on one dataset.

Usage::

    .venv/bin/python benchmarks/bench_replicates.py --root ROOT --dataset NAME [--seeds 0,1,2,3,4] [--out FILE]
    .venv/bin/python benchmarks/bench_replicates.py --root ROOT --regret NAME:EXPERIMENT [NAME:EXPERIMENT ...]

ROOT/NAME must hold stage 03's outputs. Each scenario runs ``audioclust cluster --recompute`` as its own
process, in an experiment of its own (``seeds1``, ``seeds<n>``), neither reusing the
other's rows: what is shared is the work every seed needs once (reading the features, building the
views), and the rest (k selection, grids, stability, each a seeded random part) is repeated per seed.
It prints wall and CPU time (the process and its workers) and the replicate summary of the
several-seed run (``clustering/replicates/summary.md``).

``--regret`` instead reads runs made with several seeds and prints, as mean ± sd over their seeds,
the regret of the label-free pick, of the best structure (the best of the pick and its
alternatives) and of each feature's selected row: how far each falls below the best NMI the
selection could have reached in that seed (eligible rows). The labels only score here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_cluster import _cpu_model, run_stage  # noqa: E402

from audioclust.core.paths import ProjectPaths  # noqa: E402


def regrets(root: Path, run: str) -> dict[str, tuple[float, float]]:
    """Mean and sd over the seeds of one run's regrets (see the module's text), and of its best NMI."""
    import pandas as pd

    from audioclust.results import true_flags
    from audioclust.stages.compare import parse_run

    folder = ProjectPaths(root, *parse_run(run)).results / "clustering" / "replicates"
    long = pd.read_csv(folder / "results.csv", dtype={"id": str})
    structures = pd.read_csv(folder / "structures.csv")
    per_seed: dict[str, list[float]] = {}
    for seed, rows in long.groupby("seed"):
        nmi = dict(zip(rows["id"], pd.to_numeric(rows["nmi"], errors="coerce")))
        best = max(nmi[i] for i in rows.loc[true_flags(rows, "eligible"), "id"])
        found = {"best NMI": best, "pick": best - nmi[rows.loc[true_flags(rows, "pick"), "id"].iloc[0]],
                 "best structure": best - max(nmi[r] for r in structures.loc[structures["seed"] == seed,
                                                                              "representative"])}
        found.update({f: best - nmi[i] for f, i in zip(rows.loc[true_flags(rows, "selected"), "feature"],
                                                         rows.loc[true_flags(rows, "selected"), "id"])})
        for key, value in found.items():
            per_seed.setdefault(key, []).append(value)
    return {key: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"))
            for key, v in per_seed.items()}


def print_regrets(root: Path, runs: list[str]) -> None:
    found = {run: regrets(root, run) for run in runs}
    columns = list(dict.fromkeys(key for r in found.values() for key in r))
    print("| run | " + " | ".join(columns) + " |\n|---|" + "---:|" * len(columns))
    for run, r in found.items():
        print(f"| {run} | " + " | ".join(f"{r[c][0]:.2f} ± {r[c][1]:.2f}" if c in r else "–" for c in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--dataset")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--regret", nargs="+", metavar="NAME:EXPERIMENT",
                        help="print the regrets over seeds of these runs instead of timing")
    args = parser.parse_args()
    root = args.root.resolve()
    if args.regret:
        print_regrets(root, args.regret)
        return
    if not args.dataset:
        parser.error("--dataset is required unless --regret is given")
    seeds = [int(s) for s in args.seeds.split(",")]
    many = f"seeds{len(seeds)}"
    scenarios = {f"1 seed ({seeds[0]})": ("seeds1", str(seeds[0])),
                 f"{len(seeds)} seeds ({args.seeds})": (many, args.seeds)}
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores, {_cpu_model()}",
              "dataset": args.dataset, "scenarios": {}}
    for name, (experiment, seed_list) in scenarios.items():
        result["scenarios"][name] = run_stage(root, args.dataset, "--recompute", "--experiment", experiment,
                                              "--seeds", seed_list)
        print(name, result["scenarios"][name], flush=True)
    one, several = (r["wall_s"] for r in result["scenarios"].values())
    print(f"\n{args.dataset}, {result['date']}, {result['machine']}\n")
    print("| run | wall s | CPU s | rows |\n|---|---:|---:|---|")
    for name, r in result["scenarios"].items():
        print(f"| {name} | {r['wall_s']} | {r['cpu_s']} | {r['rows']} |")
    print(f"\n{len(seeds)} seeds cost {several / one:.2f} × one seed (wall)\n")
    summary = ProjectPaths(root, args.dataset, many).results / "clustering" / "replicates" / "summary.md"
    print(summary.read_text(encoding="utf-8"))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
