"""Stage 05 at ``cluster.k: auto``: each model's own k (the stage's rule) against one k shared by every model.

Usage::

    .venv/bin/python benchmarks/bench_stage05_k.py --root ROOT --experiment EXP --sets NAME[:K] [...]

ROOT/NAME must hold a stage-05 run of experiment EXP at ``cluster.k=auto``. For each set every model's saved
pre-trained embedding is clustered again, by K-Means and by the other clusterers of the run, at the k the run
estimated for that model and at the shared k (``:K``; without it, the k of the view of stage 04's pick in the same
experiment). The stage's label-free choices (latent size, selected row, pick:
:func:`audioclust.clustering.structures.mark_autoencoder_choices`) are made on both sets of rows. DCEC is left out
(it refines K-Means at the same k), so the picks are of pre-trained rows. The labels only score.
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

from bench_autoencoder import emit  # noqa: E402
from bench_stage05_variants import truth_of  # noqa: E402

from audioclust.clustering.metrics import internal_scores  # noqa: E402
from audioclust.clustering.selection import autoencoder_criterion  # noqa: E402
from audioclust.clustering.structures import mark_autoencoder_choices  # noqa: E402
from audioclust.config import Config, load_config  # noqa: E402
from audioclust.core.paths import ProjectPaths  # noqa: E402
from audioclust.results import read_results, true_flags  # noqa: E402
from audioclust.stages.autoencoder import cluster_embedding, latent_stability  # noqa: E402


def stage04_k(paths: ProjectPaths) -> int:
    """The k estimated on the view of stage 04's pick (a density clusterer's row gives the k it found, so the
    view's K-Means row is read)."""
    rows = read_results(paths, "clustering")
    view = rows.loc[true_flags(rows, "pick"), "view"].iloc[0]
    return int(rows[(rows["view"] == view) & (rows["algorithm"] == "kmeans")]["k"].iloc[0])


def rows_at(cfg: Config, run: pd.DataFrame, paths: ProjectPaths, truth: np.ndarray,
            shared_k: int | None) -> pd.DataFrame:
    """The run's pre-trained rows, every clusterer re-fitted at each model's k (``shared_k`` None) or at
    ``shared_k``, with their stability gains, criterion and NMI, and the stage's choices made on them."""
    rows, partitions = [], {}
    pretrained = run[run["stage"] != "dcec"]
    for view, model_rows in pretrained.groupby("view", sort=False):
        z = np.load(paths.results / "autoencoder" / "embeddings" / view / "pretrained.npy")
        k = int(model_rows["k"].iloc[0]) if shared_k is None else shared_k
        km, _, others = cluster_embedding(cfg, z, k)
        fitted = {"kmeans": (km.labels_, latent_stability(cfg, z, k, km.labels_)),
                  **{name: (p.labels, p.stability) for name, p in others.items()}}
        gains = {}
        for _, row in model_rows.iterrows():
            labels, gains[row["id"]] = fitted[row["algorithm"]]
            scores = internal_scores(z, labels, sample_size=cfg.cluster.silhouette_sample_size, random_state=cfg.seed)
            rows.append({**row.to_dict(), "k": k, "stability": gains[row["id"]], **scores,
                         "nmi": normalized_mutual_info_score(truth, labels)})
            partitions[row["id"]] = labels
        for row in rows[-len(model_rows):]:
            row["latent_stability"] = max(gains.values())
    frame = pd.DataFrame(rows)
    mark_autoencoder_choices(frame, autoencoder_criterion(cfg.cluster.criterion, cfg.cluster.tune_criterion),
                             None, partitions)
    return frame


def lines_of(root: Path, dataset: str, experiment: str, shared_k: int | None) -> list[str]:
    paths = ProjectPaths(root, dataset, experiment)
    cfg = load_config(root, dataset, experiment=experiment, overrides=["cluster.k=auto"])
    run = read_results(paths, "autoencoder")
    truth = truth_of(paths, None)
    shared_k = stage04_k(paths) if shared_k is None else shared_k

    def pick(frame: pd.DataFrame) -> str:
        row = frame[true_flags(frame, "pick")].iloc[0]
        return f"{row['feature']} z{int(row['latent_dim'])} {row['stage']}, k = {int(row['k'])}: {row['nmi']:.3f}"

    own = rows_at(cfg, run, paths, truth, None)
    shared = rows_at(cfg, run, paths, truth, shared_k)
    ks = ", ".join(f"{feature} z{int(latent)}: {int(k)}"
                   for feature, latent, k in own.drop_duplicates("view")[["feature", "latent_dim", "k"]].values)
    return [f"| {dataset} | {ks} | {pick(own)} | {shared_k} | {pick(shared)} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--experiment", required=True, help="the experiment of the runs at cluster.k=auto")
    parser.add_argument("--sets", nargs="+", required=True, metavar="NAME[:K]")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()
    lines = ["| set | each model's k | pick, own k (NMI) | shared k | pick, shared k (NMI) |", "|---|---|---|---:|---|"]
    for item in args.sets:
        name, *k = item.split(":")
        lines += lines_of(args.root, name, args.experiment, int(k[0]) if k else None)
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
