"""The cost of replicates: stage 04 with one seed and with several, side by side, on one dataset.

Usage::

    .venv/bin/python benchmarks/bench_replicates.py --root ROOT --dataset NAME [--seeds 0,1,2,3,4] [--out FILE]

ROOT/NAME must hold stage 03's outputs. Each scenario runs ``audioclust cluster --recompute`` as its own
process, in an experiment of its own (``seeds1``, ``seeds<n>``), neither reusing the
other's rows: what is shared is the work every seed needs once (reading the features, building the
views), and the rest (k selection, grids, stability, each a seeded random part) is repeated per seed.
It prints wall and CPU time (the process and its workers) and the replicate summary of the
several-seed run (``clustering/replicates/summary.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_cluster import _cpu_model, run_stage  # noqa: E402

from audioclust.core.paths import ProjectPaths  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    root = args.root.resolve()
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
