"""Stage 05 at ``cluster.k: auto``: each model's own k (the stage's rule) against one k shared by every model, and
against each model's k chosen by its stability gain.

Usage::

    .venv/bin/python benchmarks/bench_stage05_k.py --root ROOT --experiment EXP --sets NAME[:K] [...]

ROOT/NAME must hold a stage-05 run of experiment EXP at ``cluster.k=auto``. For each set every model's saved
pre-trained embedding is clustered again, by K-Means and by the other clusterers of the run, at the k the run
estimated for that model and at the shared k (``:K``; without it, the k of the view of stage 04's pick in the same
experiment), and at the k of ``cluster.k_min`` .. ``cluster.k_max`` whose K-Means partition has the largest
stability gain (the gain the pick ranks models by; ties to the smaller k), also with both ends of that range left
out (as the consensus of the k criteria discounts them). The stage's label-free choices (latent
size, selected row, pick: :func:`audioclust.clustering.structures.mark_autoencoder_choices`) are made on each set of
rows. DCEC is left out (it refines K-Means at the same k), so the picks are of pre-trained rows. The labels only
score. ``--per-model`` also writes each model's three ks and their K-Means NMI.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

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
from audioclust.stages.autoencoder import cluster_embedding  # noqa: E402


def stage04_k(paths: ProjectPaths) -> int:
    """The k estimated on the view of stage 04's pick (a density clusterer's row gives the k it found, so the
    view's K-Means row is read)."""
    rows = read_results(paths, "clustering")
    view = rows.loc[true_flags(rows, "pick"), "view"].iloc[0]
    return int(rows[(rows["view"] == view) & (rows["algorithm"] == "kmeans")]["k"].iloc[0])


def stability_gains(cfg: Config, z: np.ndarray) -> dict[int, float]:
    """The stability gain of the seeded K-Means partition of ``z`` at each k of ``cluster.k_min`` .. ``cluster.k_max``
    (at least 2)."""
    kmeans_only = replace(cfg, autoencoder=replace(cfg.autoencoder, algorithms=["kmeans"]))
    gains = {}
    for k in range(max(2, cfg.cluster.k_min), cfg.cluster.k_max + 1):
        gains[k] = cluster_embedding(kmeans_only, z, k)[1].stability
    return gains


def most_stable_k(gains: dict[int, float], inside: bool = False) -> int:
    """The k of the largest gain, ties to the smaller k; ``inside``: leaving out both ends of the range."""
    ks = sorted(gains)[1:-1] if inside else sorted(gains)
    return max(ks, key=lambda k: (gains[k], -k))


KRule = Callable[[Config, np.ndarray, pd.DataFrame], int]


def rows_at(cfg: Config, run: pd.DataFrame, paths: ProjectPaths, truth: np.ndarray, k_of: KRule) -> pd.DataFrame:
    """The run's pre-trained rows, every clusterer re-fitted at the k that ``k_of(cfg, z, model_rows)`` gives each
    model, with their stability gains, criterion and NMI, and the stage's choices made on them."""
    rows, partitions = [], {}
    pretrained = run[run["stage"] != "dcec"]
    for view, model_rows in pretrained.groupby("view", sort=False):
        z = np.load(paths.results / "autoencoder" / "embeddings" / view / "pretrained.npy")
        k = k_of(cfg, z, model_rows)
        _, kmeans, others = cluster_embedding(cfg, z, k)
        fitted = {"kmeans": kmeans, **others}
        gains = {}
        for _, row in model_rows.iterrows():
            part = fitted[row["algorithm"]]
            labels, gains[row["id"]] = part.labels, part.stability
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


def lines_of(root: Path, dataset: str, experiment: str, shared_k: int | None) -> tuple[list[str], list[str]]:
    """The set's line of the picks' table and its lines of the per-model table."""
    paths = ProjectPaths(root, dataset, experiment)
    cfg = load_config(root, dataset, experiment=experiment, overrides=["cluster.k=auto"])
    run = read_results(paths, "autoencoder")
    truth = truth_of(paths, None)
    shared_k = stage04_k(paths) if shared_k is None else shared_k

    def pick(frame: pd.DataFrame) -> str:
        row = frame[true_flags(frame, "pick")].iloc[0]
        return f"{row['feature']} z{int(row['latent_dim'])} {row['stage']}, k = {int(row['k'])}: {row['nmi']:.3f}"

    own = rows_at(cfg, run, paths, truth, lambda cfg, z, model_rows: int(model_rows["k"].iloc[0]))
    shared = rows_at(cfg, run, paths, truth, lambda cfg, z, model_rows: shared_k)
    gains: dict[str, dict[int, float]] = {}

    def by_stability(inside: bool) -> KRule:
        def k_of(cfg: Config, z: np.ndarray, model_rows: pd.DataFrame) -> int:
            view = model_rows["view"].iloc[0]
            if view not in gains:
                gains[view] = stability_gains(cfg, z)
            return most_stable_k(gains[view], inside)
        return k_of

    stable = rows_at(cfg, run, paths, truth, by_stability(False))
    inner = rows_at(cfg, run, paths, truth, by_stability(True))
    ks = ", ".join(f"{feature} z{int(latent)}: {int(k)}"
                   for feature, latent, k in own.drop_duplicates("view")[["feature", "latent_dim", "k"]].values)
    own_km, stable_km = (frame[frame["algorithm"] == "kmeans"].set_index("view") for frame in (own, stable))
    models = []
    for view, row in own_km.iterrows():
        best = stable_km.loc[view]
        models.append(f"| {dataset} | {row['feature']} z{int(row['latent_dim'])} | {int(row['k'])}: {row['nmi']:.3f} | "
                      f"{int(best['k'])}: {best['nmi']:.3f} | {best['stability']:.3f} |")
    line = (f"| {dataset} | {ks} | {pick(own)} | {shared_k} | {pick(shared)} | {pick(stable)} | "
            f"{pick(inner)} |")
    return [line], models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--experiment", required=True, help="the experiment of the runs at cluster.k=auto")
    parser.add_argument("--sets", nargs="+", required=True, metavar="NAME[:K]")
    parser.add_argument("--per-model", action="store_true", help="also each model's ks and K-Means NMI")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()
    lines = ["| set | each model's k | pick, own k (NMI) | shared k | pick, shared k (NMI) "
             "| pick, k by stability (NMI) | the same, ends left out (NMI) |", "|---|---|---|---:|---|---|---|"]
    models = ["| set | model | own k: K-Means NMI | k by stability: K-Means NMI | its gain |", "|---|---|---|---|---:|"]
    for item in args.sets:
        name, *k = item.split(":")
        picks, per_model = lines_of(args.root, name, args.experiment, int(k[0]) if k else None)
        lines += picks
        models += per_model
    emit("\n".join(lines + (["", *models] if args.per_model else [])), args.out)


if __name__ == "__main__":
    main()
