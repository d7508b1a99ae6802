"""Stage 05's figures drawn in the stage's process (``parallel.n_jobs=1``) against worker processes.

Usage::

    .venv/bin/python benchmarks/bench_stage05_figures.py --root ROOT [--dataset demo] [--jobs 2] [--rounds 3]

ROOT/DATASET must hold a finished stage 05 (its checkpoints). Each measurement is a fresh process that removes
every model's memo and runs the stage: the checkpoints are reused, so it embeds, clusters, runs DCEC and draws every
model's figures again. It reports the stage's wall seconds and the seconds spent in the figures of the models
(:func:`audioclust.stages.autoencoder._model_figures`, timed from outside). The two settings alternate round by
round (1, JOBS, 1, JOBS, ...), so a drift of the machine reaches both; medians and the per-round ratio are printed.
Every other setting is the project's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from bench_autoencoder import emit  # noqa: E402


def one_run(root: Path, dataset: str, jobs: int) -> dict[str, float]:
    """Run stage 05 once in this process with ``parallel.n_jobs=jobs``, every memo removed first."""
    from audioclust.config import load_config
    from audioclust.core.paths import ProjectPaths
    from audioclust.stages import autoencoder

    paths = ProjectPaths(root, dataset)
    for memo in (paths.results / "autoencoder" / "embeddings").glob(f"*/{autoencoder.MEMO}"):
        memo.unlink()
    spent = []
    draw = autoencoder._model_figures

    def timed(*args, **kwargs):
        began = time.perf_counter()
        try:
            return draw(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - began)

    autoencoder._model_figures = timed
    cfg = load_config(root, dataset, overrides=[f"parallel.n_jobs={jobs}", "cluster.figures=true"])
    began = time.perf_counter()
    autoencoder.run(cfg, paths)
    return {"stage_s": time.perf_counter() - began, "figures_s": sum(spent), "models": len(spent)}


def measure(root: Path, dataset: str, jobs: int) -> dict[str, float]:
    """:func:`one_run` in a fresh interpreter (worker processes start as they would for a user)."""
    done = subprocess.run([sys.executable, __file__, "--root", str(root), "--dataset", dataset, "--one", str(jobs)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(root: Path, dataset: str, jobs: int, rounds: int) -> str:
    runs: dict[int, list[dict[str, float]]] = {1: [], jobs: []}
    for _ in range(rounds):
        for n in (1, jobs):
            runs[n].append(measure(root, dataset, n))
            print(f"n_jobs={n}: {runs[n][-1]}", file=sys.stderr, flush=True)
    lines = [f"| `parallel.n_jobs` | models | figures s (median of {rounds}) | stage s (median) |",
             "|---|---:|---:|---:|"]
    for n, found in runs.items():
        lines.append(f"| {n} | {int(found[0]['models'])} | {statistics.median(r['figures_s'] for r in found):.1f} | "
                     f"{statistics.median(r['stage_s'] for r in found):.1f} |")
    for key in ("figures_s", "stage_s"):
        ratios = [a[key] / b[key] for a, b in zip(runs[1], runs[jobs])]
        lines.append(f"\n{key}: 1 / {jobs} per round: " + ", ".join(f"{r:.2f}" for r in ratios))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--jobs", type=int, default=2, help="the worker processes set against 1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)   # a single measurement, in a child process
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_run(args.root, args.dataset, args.one)))
        return
    emit(table(args.root, args.dataset, args.jobs, args.rounds), args.out)


if __name__ == "__main__":
    main()
