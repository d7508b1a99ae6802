"""Clustering quality on FSDD: stages 01–04 with the config defaults, labels = digit and = speaker.

Usage::

    .venv/bin/python benchmarks/bench_quality.py [--limit N] [--root DIR] [--out quality.json] [--n-jobs 2]
                                                 [--labels digit speaker] [--skip-autoencoder]
                                                 [--set key=value ...] [--compare silhouette stability ...]

For each label set (``digit``: 10 classes, ``speaker``: 6) it builds a project (a temporary
folder, or ``--root``), brings FSDD (``../shared/datasets/fsdd/recordings``) in as links with
:func:`audioclust.stages.prepare.prepare`, and runs metadata → transform → extract → cluster with
``configs/default.yaml`` and one override: ``cluster.k`` = the number of classes, as the goals
of the issue are stated (the researcher types it; labels still choose nothing else).
Stage 05 (``autoencoder``) runs too, unless ``--skip-autoencoder``, and adds its rows.

``--limit N`` uses a seeded random sample of N recordings (the same for both label sets), so
every digit and speaker stays represented. ``--set`` adds config overrides (as the CLI's).
``--compare`` adds, for each named criterion, the overall label-free row that criterion would
have selected from the same ``results.csv`` (:func:`audioclust.clustering.selection.mark_selected`; the grid
points were chosen by ``cluster.tune_criterion`` either way, so only the selection differs;
``stability`` is in the table only when ``cluster.criterion`` is ``stability``).

Prints a Markdown table: per label set, the label-free selection (the row with the best
internal criterion over every feature, view and algorithm: what a user without labels would
take), each feature's label-free row, and the best row by NMI (uses labels), with NMI, ACC
and ARI; plus the stage times. ``--out`` writes every number as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
FSDD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fsdd" / "recordings"
sys.path.insert(0, str(REPO / "src"))

from audioclust.cli import run_stage
from audioclust.clustering.metrics import oriented
from audioclust.clustering.selection import autoencoder_criterion, mark_selected
from audioclust.config import load_config
from audioclust.core.paths import ProjectPaths
from audioclust.report.summary import best_by_nmi
from audioclust.stages._shared import given_k
from audioclust.stages.prepare import prepare

log = logging.getLogger("bench_quality")
LABEL_SETS = {"digit": 10, "speaker": 6}
CHAIN = ["metadata", "transform", "extract", "cluster"]


def sample_source(limit: int | None, folder: Path, seed: int = 0) -> Path:
    """FSDD itself, or a folder of links to a seeded random sample of ``limit`` of its recordings."""
    if limit is None:
        return FSDD
    files = sorted(FSDD.glob("*.wav"))
    chosen = np.random.default_rng(seed).choice(len(files), size=min(limit, len(files)), replace=False)
    folder.mkdir(parents=True, exist_ok=True)
    for i in sorted(chosen):
        (folder / files[i].name).symlink_to(files[i])
    return folder


def run_label_set(root: Path, source: Path, label: str, n_jobs: int, autoencoder: bool,
                  overrides: list[str] = (), compare: list[str] = ()) -> dict:
    """Stages 01–04 for one label set; its rows and timings."""
    name = f"fsdd_{label}"
    paths = ProjectPaths(root, name)
    n_files = prepare("fsdd", source, paths.raw, label=label)
    k = LABEL_SETS[label]
    cfg = load_config(root, name, overrides=[f"cluster.k={k}", f"parallel.n_jobs={n_jobs}", *overrides])
    times = {}
    for stage in CHAIN:
        start = time.perf_counter()
        run_stage(stage, cfg, paths)
        times[stage] = round(time.perf_counter() - start, 1)
    results = pd.read_csv(paths.results / "clustering" / "results.csv")
    rows = summary_rows(results, cfg.cluster.criterion)
    rows += [r for c in compare if c != cfg.cluster.criterion for r in compare_rows(results, c, given_k(cfg))]
    if autoencoder:
        rows += autoencoder_rows(cfg, paths, times)
    return {"labels": label, "k": k, "files": n_files, "criterion": cfg.cluster.criterion,
            "seconds": times, "rows": rows}


def _row(kind: str, r: pd.Series) -> dict:
    return {"row": kind, "feature": r["feature"], "type": r["type"], "algorithm": r["algorithm"],
            "params": r["params"], "nmi": float(r["nmi"]), "acc": float(r["acc"]), "ari": float(r["ari"])}


def summary_rows(results: pd.DataFrame, criterion: str) -> list[dict]:
    """The overall label-free choice, each feature's label-free row, the best row by NMI."""
    ok = results[results["status"] == "ok"]
    selected = ok[ok["selected"].astype(bool)]
    rows = [_row("label-free (overall)", selected.loc[oriented(selected[criterion], criterion).idxmax()])]
    rows += [_row(f"label-free ({r['feature']})", r) for _, r in selected.iterrows()]
    rows.append(_row("best by NMI (uses labels)", best_by_nmi(ok)))
    return rows


def compare_rows(results: pd.DataFrame, criterion: str, k: int | None) -> list[dict]:
    """The overall label-free row that ``criterion`` selects from the same results (none if it is not in them)."""
    if criterion not in results.columns or results[criterion].isna().all():
        return []
    other = results.copy()
    mark_selected(other, criterion, k)
    return [{**summary_rows(other, criterion)[0], "row": f"label-free by {criterion} (overall)"}]


def autoencoder_rows(cfg, paths: ProjectPaths, times: dict) -> list[dict]:
    """Stage 05 on the same project and its label-free / best rows, chosen by the criterion stage 05 used."""
    start = time.perf_counter()
    run_stage("autoencoder", cfg, paths)
    times["autoencoder"] = round(time.perf_counter() - start, 1)
    results = pd.read_csv(paths.results / "autoencoder" / "results.csv")
    criterion = autoencoder_criterion(cfg.cluster.criterion, cfg.cluster.tune_criterion)
    return [{**r, "row": f"autoencoder: {r['row']}"} for r in summary_rows(results, criterion)]


def markdown(runs: list[dict]) -> str:
    lines = [f"Label-free criterion: {runs[0]['criterion']}.", "",
             "| labels | k | files | row | feature | type | algorithm | NMI | ACC | ARI |",
             "|:---|---:|---:|:---|:---|:---|:---|---:|---:|---:|"]
    for run in runs:
        for r in run["rows"]:
            lines.append(f"| {run['labels']} | {run['k']} | {run['files']} | {r['row']} | {r['feature']} | "
                         f"{r['type']} | {r['algorithm']} | {r['nmi']:.3f} | {r['acc']:.3f} | {r['ari']:.3f} |")
    lines += ["", "| labels | " + " | ".join(f"{s} (s)" for s in runs[0]["seconds"]) + " |",
              "|:---|" + "---:|" * len(runs[0]["seconds"])]
    for run in runs:
        lines.append(f"| {run['labels']} | " + " | ".join(str(v) for v in run["seconds"].values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="use a seeded random sample of this many recordings")
    parser.add_argument("--root", type=Path, help="project folder to build in (default: a temporary one, removed)")
    parser.add_argument("--out", type=Path, help="also write the numbers as JSON here")
    parser.add_argument("--n-jobs", type=int, default=2, help="worker processes for stages 02-03 (default 2)")
    parser.add_argument("--labels", nargs="+", choices=list(LABEL_SETS), default=list(LABEL_SETS))
    parser.add_argument("--skip-autoencoder", action="store_true", help="stages 01-04 only")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as the CLI's --set (repeatable)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="CRITERION",
                        help="also show the overall label-free row of these criteria (from the same results)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    if not FSDD.is_dir():
        log.error("FSDD not found at %s", FSDD)
        return 2
    root = args.root or Path(tempfile.mkdtemp(prefix="bench_quality_"))
    (root / "configs").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "configs" / "default.yaml", root / "configs" / "default.yaml")
    try:
        source = sample_source(args.limit, root / "sample")
        runs = [run_label_set(root, source, label, args.n_jobs, not args.skip_autoencoder, args.overrides,
                              args.compare) for label in args.labels]
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    text = markdown(runs)
    sys.stdout.write(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
                                        "limit": args.limit, "machine": platform.platform(),
                                        "cpus": os.cpu_count(), "runs": runs, "markdown": text}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
