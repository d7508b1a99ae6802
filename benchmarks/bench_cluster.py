"""Stage 04's time: where it goes, and what a re-run costs.

Usage::

    .venv/bin/python benchmarks/bench_cluster.py --root ROOT --dataset NAME [--profile] [--out stage04.json]

ROOT/NAME must hold stage 03's outputs (run ``audioclust run --stages metadata transform extract embed``
first). Each scenario runs ``audioclust cluster`` as its own process on the project's config and
reports wall time and the CPU time of the process and its workers:

- ``first run``: ``--recompute`` (no memoised row, no figure kept: what a new dataset costs);
- ``re-run, nothing changed``;
- ``one algorithm's setting changed``: ``--set cluster.fcm_maxiter=N`` (a value no earlier run
  used), which only the FCM rows depend on;
- ``back to the config``: the re-run after it (FCM's rows again, from their memo).

``--profile`` also runs the first run in this process, on one core, under cProfile and splits
its time into the stage's phases (k selection, parameter grids, stability, views, t-SNE,
figures). The results go to stdout as Markdown and, with ``--out``, to a JSON file.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

#: phase -> (file suffix, function name) whose cumulative time the profile reports
PHASES = {
    "views (read the memoised matrices)": ("represent/views.py", "build_views"),
    "k selection (5 criteria, k = 2..10)": ("clustering/kselect.py", "estimate_k"),
    "parameter grids (fit + internal scores)": ("clustering/tuning.py", "select_params"),
    "stability of the chosen points": ("clustering/tuning.py", "stability_gain"),
    "t-SNE": ("represent/projection.py", "project"),
    "figures (draw + PNG + PDF)": ("report/figure_jobs.py", "_draw"),
    "whole stage": ("stages/cluster.py", "run"),
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def run_stage(root: Path, dataset: str, *extra: str) -> dict[str, float]:
    """One ``audioclust cluster`` process: wall and CPU seconds (its worker processes included)."""
    command = [sys.executable, "-m", "audioclust.cli", "cluster", "--dataset", dataset, "--root", str(root), *extra]
    cpu, start = _children_cpu(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "AUDIOCLUST_PROGRESS": "off"})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    reused = next((line for line in done.stderr.splitlines() if "computed," in line and "reused" in line), "")
    drawn = next((line for line in done.stderr.splitlines() if "figures (PNG + PDF)" in line), "")
    return {"wall_s": round(wall, 1), "cpu_s": round(_children_cpu() - cpu, 1),
            "rows": reused.split("cluster: ")[-1], "figures": drawn.split(": ", 2)[-1]}


def profile(root: Path, dataset: str) -> dict[str, float]:
    """The first run in this process on one core, its time split by phase (seconds, cumulative)."""
    from audioclust.config import load_config
    from audioclust.core.paths import ProjectPaths
    from audioclust.stages import cluster

    cfg = load_config(root, dataset, overrides=["parallel.n_jobs=1"])
    profiler = cProfile.Profile()
    profiler.runcall(cluster.run, cfg, ProjectPaths(root, dataset), recompute=True)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    out = {}
    for phase, (suffix, name) in PHASES.items():
        out[phase] = round(sum(v[3] for (file, _, func), v in stats.items()
                               if file.endswith(suffix) and func == name), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--profile", action="store_true", help="also the one-core cProfile split by phase")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    root = args.root.resolve()

    from audioclust.config import load_config
    # a value no earlier run used, so that its rows are not in the memo yet
    maxiter = load_config(root, args.dataset).cluster.fcm_maxiter + 1 + int(time.time()) % 997
    scenarios = {
        "first run (--recompute)": ("--recompute",),
        "re-run, nothing changed": (),
        "one algorithm's setting changed (cluster.fcm_maxiter)": ("--set", f"cluster.fcm_maxiter={maxiter}"),
        "back to the config": (),
    }
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores, {_cpu_model()}",
              "dataset": args.dataset, "scenarios": {}}
    for name, extra in scenarios.items():
        result["scenarios"][name] = run_stage(root, args.dataset, *extra)
        print(name, result["scenarios"][name], flush=True)
    if args.profile:
        result["profile_one_core_s"] = profile(root, args.dataset)

    print(f"\n{args.dataset}, {result['date']}, {result['machine']}\n")
    print("| run | wall s | CPU s | rows | figures |\n|---|---:|---:|---|---|")
    for name, r in result["scenarios"].items():
        print(f"| {name} | {r['wall_s']} | {r['cpu_s']} | {r['rows']} | {r['figures']} |")
    if args.profile:
        print("\n| phase (one core, cProfile) | s |\n|---|---:|")
        for phase, seconds in result["profile_one_core_s"].items():
            print(f"| {phase} | {seconds} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
