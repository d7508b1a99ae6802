"""How many half-samples stage 05's stability gain needs: its spread between seeds, its cost, and the picks it makes.

Usage::

    .venv/bin/python benchmarks/bench_stability_resamples.py --root ROOT --runs NAME:EXPERIMENT [...]
        [--resamples 5 20 50] [--spread-seeds 6] [--ties 0.02 0.05] [--features mel mfcc spectrogram] [--out FILE]

Nothing is trained: each stage-05 run's pre-trained embeddings (``embeddings/<view>/pretrained.npy``) and K-Means
partitions (``labels.csv``) are read back. For each model and each number of half-samples B the stability gain
is computed as the stage computes ``latent_stability`` (the run's seed and ``cluster.stability_max_samples``),
and again with ``--spread-seeds`` other seeds for its spread. With the B the run used (:func:`run_resamples`),
the recomputed gain must equal the one in ``results.csv``: the script stops if it does not. Then the stage's
choices are made again with each B's gains (:func:`chosen_latents`, :func:`mark_selected`,
:func:`picked_model`, the same partitions for the agreement tie), with each tie band of ``--ties``: the table
gives the picked model and its NMI (the labels only score).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from audioclust.clustering.selection import (  # noqa: E402
    STABILITY_TIE, autoencoder_criterion, chosen_latents, mark_selected)
from audioclust.clustering.structures import picked_model  # noqa: E402
from audioclust.config import load_config  # noqa: E402
from audioclust.core.paths import ProjectPaths  # noqa: E402
from audioclust.results import read_partitions, read_results  # noqa: E402
from audioclust.stages._shared import given_k  # noqa: E402
from audioclust.stages.autoencoder import latent_stability  # noqa: E402


def run_resamples(paths: ProjectPaths, cfg) -> int:
    """The B of the run's ``latent_stability``: ``autoencoder.stability_resamples`` where its ``config.yaml`` has
    that key, else ``cluster.stability_resamples`` (runs before stage 05 had a key of its own)."""
    saved = yaml.safe_load((paths.results / "config.yaml").read_text()) or {}
    own = "stability_resamples" in (saved.get("autoencoder") or {})
    return cfg.autoencoder.stability_resamples if own else cfg.cluster.stability_resamples


def measure_run(root: Path, name: str, experiment: str, resamples: list[int], spread_seeds: int,
                features: list[str], ties: list[float]) -> dict:
    paths = ProjectPaths(root, name, experiment)
    cfg = load_config(root, name, config_file=paths.results / "config.yaml", experiment=experiment)
    results = read_results(paths, "autoencoder")
    results = results[results["feature"].isin(features)].reset_index(drop=True)
    partitions = read_partitions(paths, "autoencoder")
    used = run_resamples(paths, cfg)
    gains: dict[int, dict[str, float]] = {b: {} for b in resamples}
    spread: dict[int, list[float]] = {b: [] for b in resamples}
    seconds: dict[int, list[float]] = {b: [] for b in resamples}
    for _, row in results[results["stage"] == "ae_kmeans"].iterrows():
        z = np.load(paths.results / "autoencoder" / "embeddings" / row["view"] / "pretrained.npy")
        labels, k = partitions[row["id"]], int(row["k"])
        for b in resamples:
            def gain(seed: int) -> float:
                return latent_stability(cfg, z, k, labels, n_resamples=b, seed=seed)
            began = time.perf_counter()
            gains[b][row["view"]] = gain(cfg.seed)
            seconds[b].append(time.perf_counter() - began)
            spread[b].append(float(np.std([gain(cfg.seed + 1 + s) for s in range(spread_seeds)])))
        if used in gains and not np.isclose(gains[used][row["view"]], row["latent_stability"]):
            sys.exit(f"{name}/{experiment} {row['view']}: B = {used} gives {gains[used][row['view']]:.4f}, the run "
                     f"{row['latent_stability']:.4f}: not the stage's computation")
    criterion = autoencoder_criterion(cfg.cluster.criterion, cfg.cluster.tune_criterion)
    picks = {}
    for b in resamples:
        for tie in ties:
            frame = results.drop(columns=["latent_chosen", "selected", "pick"]).copy()
            frame["latent_stability"] = frame["view"].map(gains[b])
            frame["latent_chosen"] = chosen_latents(frame, tie)
            frame["selected"] = False
            mark_selected(frame, criterion, given_k(cfg), among=frame["latent_chosen"])
            row = frame[picked_model(frame, criterion, partitions, tie)].iloc[0]
            picks[pick_key(b, tie, ties)] = {"model": f"{row['feature']} z{row['latent_dim']}",
                                             "nmi": float(row["nmi"]), "gain": float(row["latent_stability"])}
    return {"run": f"{name} / {experiment}", "seed": cfg.seed, "models": len(gains[resamples[0]]),
            "picks": picks, "spread": {b: float(np.mean(v)) for b, v in spread.items()},
            "spread_max": {b: float(np.max(v)) for b, v in spread.items()},
            "seconds": {b: float(np.mean(v)) for b, v in seconds.items()}}


def pick_key(b: int, tie: float, ties: list[float]) -> str:
    """A column of picks: B, and the tie band when several are compared."""
    return f"B = {b}" if len(ties) == 1 else f"B = {b}, tie {tie:g}"


def table(rows: list[dict], resamples: list[int]) -> str:
    keys = list(rows[0]["picks"])
    head = ("| run | models | " + " | ".join(f"{key}: pick, NMI" for key in keys) + " | "
            + " | ".join(f"B = {b}: sd of a gain (mean / max), s" for b in resamples) + " |")
    lines = [head, "|---|---:|" + "---|" * (len(keys) + len(resamples))]
    for r in rows:
        picks = " | ".join(f"{r['picks'][key]['model']}, {r['picks'][key]['nmi']:.3f}" for key in keys)
        spread = " | ".join(f"{r['spread'][b]:.3f} / {r['spread_max'][b]:.3f}, {r['seconds'][b]:.2f}"
                            for b in resamples)
        lines.append(f"| {r['run']} (seed {r['seed']}) | {r['models']} | {picks} | {spread} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--runs", nargs="+", required=True, help="NAME:EXPERIMENT")
    parser.add_argument("--resamples", nargs="+", type=int, default=[5, 20, 50])
    parser.add_argument("--spread-seeds", type=int, default=6)
    parser.add_argument("--features", nargs="+", default=["mel", "mfcc", "spectrogram"],
                        help="the models compared (a run may hold more)")
    parser.add_argument("--ties", nargs="+", type=float, default=[STABILITY_TIE],
                        help="tie bands of the latent size and the pick (stage 05's: 0.02)")
    parser.add_argument("--out", type=Path, help="the rows as JSON")
    args = parser.parse_args()
    rows = []
    for spec in args.runs:
        name, experiment = spec.split(":")
        rows.append(measure_run(args.root, name, experiment, args.resamples, args.spread_seeds, args.features,
                                args.ties))
        print(json.dumps(rows[-1]), flush=True)
    print(table(rows, args.resamples))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
