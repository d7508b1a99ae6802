"""Number of clusters against a known k: the consensus rule of stage 04 against the plain majority.

Usage::

    .venv/bin/python benchmarks/bench_kselect.py [--demo-root .] [--fsdd-root /tmp/exp_q]
                                                 [--n-jobs 2] [--out kselect.json]

Cases, each a matrix whose number of groups is known (labels are read only to build the
cases and to score):

- ``demo``: every view of the demo project in ``--demo-root`` (7 families; skipped until
  ``make demo`` has built it);
- ``fsdd``: the views of the ``fsdd_digit`` project that ``bench_quality.py`` built in
  ``--fsdd-root``: the files of the first 2, 3, 4 and 6 speakers on the stats views of mel,
  MFCC and spectrogram (k = the speakers: the stats views group by voice), and digits
  0..m-1 (m = 3, 5, 8) of each of the first two speakers on the image views of mel, MFCC and
  MFCC without c0 (k = m: within one voice the image views group by word);
- ``blobs``: seeded isotropic Gaussian blobs, k = 2, 3, 4, 6, 8 in 10 and 40 dimensions, at
  three spreads.

Each case runs :func:`audioclust.stages._shared.choose_k` with the config of ``--demo-root`` (``k: auto``,
``k_min..k_max``, the same sampling as stage 04), and the criteria's choices are combined
twice: by :func:`audioclust.clustering.kselect.consensus` with the k range (the rule stage 04 uses)
and without it (the most common choice). Prints, per group, the mean |k - truth| and the
share of exact answers; ``--out`` writes every case as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.datasets import make_blobs
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from audioclust.clustering.kselect import consensus
from audioclust.config import load_config
from audioclust.core.errors import StageInputError
from audioclust.core.paths import ProjectPaths
from audioclust.represent.views import build_views
from audioclust.results import read_table
from audioclust.stages._shared import choose_k, views_settings

SPEAKER_COUNTS = (2, 3, 4, 6)
DIGIT_COUNTS = (3, 5, 8)


def project_views(root: Path, dataset: str) -> tuple[list, object]:
    """The views of one built project (from its cache) and its file table."""
    cfg = load_config(root, dataset, overrides={"cluster.k": "auto"})
    paths = ProjectPaths(root, dataset)
    table = read_table(paths)
    return build_views(views_settings(cfg), paths, table), table


def demo_cases(root: Path) -> list[tuple[str, np.ndarray, int]]:
    try:
        views, table = project_views(root, "demo")
    except StageInputError as exc:
        print(f"demo cases skipped (run `make demo` first): {exc}", file=sys.stderr)
        return []
    truth = table["label"].nunique()
    return [(f"demo/{v.spec.name}", v.X, truth) for v in views]


def fsdd_cases(root: Path) -> list[tuple[str, np.ndarray, int]]:
    views, table = project_views(root, "fsdd_digit")
    # FSDD file names are <digit>_<speaker>_<take>
    parts = table["stem"].str.split("_")
    digit, speaker = parts.str[0].astype(int).to_numpy(), parts.str[1].to_numpy()
    speakers = sorted(set(speaker))
    cases = []
    for v in views:
        feature, kind = v.spec.feature, v.spec.kind
        if kind == "stats" and feature in ("mel", "mfcc", "spectrogram"):
            for m in SPEAKER_COUNTS:
                cases.append((f"fsdd/{m} speakers/{v.spec.name}", v.X[np.isin(speaker, speakers[:m])], m))
        if kind == "image" and feature in ("mel", "mfcc", "mfcc_no_c0"):
            for s in speakers[:2]:
                for m in DIGIT_COUNTS:
                    cases.append((f"fsdd/{s} digits 0-{m - 1}/{v.spec.name}",
                                  v.X[(speaker == s) & (digit < m)], m))
    return cases


def blob_cases() -> list[tuple[str, np.ndarray, int]]:
    cases = []
    for k in (2, 3, 4, 6, 8):
        for dims, spread in ((10, 1.0), (40, 2.0), (40, 4.0)):
            X, _ = make_blobs(n_samples=600, n_features=dims, centers=k, cluster_std=spread, center_box=(-6, 6),
                              random_state=100 * k + dims)
            cases.append((f"blobs/k{k} d{dims} sd{spread}", X, k))
    return cases


def score(name: str, X: np.ndarray, truth: int, cfg) -> dict:
    with threadpool_limits(limits=1):
        _, _, selection = choose_k(cfg, X)
    ks = range(cfg.cluster.k_min, cfg.cluster.k_max + 1)
    choices = selection.choices
    return {"case": name, "truth": truth, "choices": choices,
            "consensus": consensus(choices.values(), ks), "majority": consensus(choices.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-root", type=Path, default=REPO)
    parser.add_argument("--fsdd-root", type=Path, default=None,
                        help="project root of bench_quality.py's FSDD run (skipped when not given)")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    cases = demo_cases(args.demo_root) + blob_cases()
    if args.fsdd_root is not None:
        cases += fsdd_cases(args.fsdd_root)
    cfg = load_config(args.demo_root, "demo", overrides={"cluster.k": "auto"})
    rows = Parallel(n_jobs=args.n_jobs)(delayed(score)(name, X, truth, cfg) for name, X, truth in cases)

    print(f"k = {cfg.cluster.k_min}..{cfg.cluster.k_max}; per group: mean |k - truth| · share exact")
    print("| cases | n | plain majority | consensus (stage 04) |")
    print("|:---|---:|---:|---:|")
    for group in dict.fromkeys(r["case"].split("/")[0] for r in rows):
        part = [r for r in rows if r["case"].startswith(group + "/")]
        cells = []
        for rule in ("majority", "consensus"):
            err = np.array([abs(r[rule] - r["truth"]) for r in part])
            cells.append(f"{err.mean():.2f} · {(err == 0).mean():.2f}")
        print(f"| {group} | {len(part)} | {cells[0]} | {cells[1]} |")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
