"""Stage 04's stability criterion: how much of its label-free choice is the noise of its half-samples?

Usage::

    .venv/bin/python benchmarks/bench_cluster_stability.py --root ROOT --sets textures:class speech:word ...
        [--resamples 5 20] [--seeds 5] [--first-seed 0] [--margin M] [--ties 0 0.05 0.1] [--corpora DIR]
        [--out FILE]

``ROOT`` is the folder of :mod:`bench_embeddings` / :mod:`bench_selection` after their stage-04 runs (``cluster.k``
= the number of classes); nothing is run here but the stability estimates. Stage 04 marks each feature's selected
row by the stability gain of :func:`audioclust.clustering.tuning.stability_gain`, estimated on
``cluster.stability_resamples`` half-samples with the run's seed, and the overall pick from those rows
(:func:`audioclust.clustering.structures.mark_structures`).

For each label set, the rows that could be selected (``eligible``; with ``--margin``, only those within it of
their feature's best gain) get their gain estimated again, each partition and parameter kept as the run fitted them, for
each B of ``--resamples`` with ``--seeds`` seeds of the estimate (the first is the run's own seed: with the run's
B it must reproduce ``results.csv``, and the script stops if it does not). The other rows keep their gain. Then
the selection and the pick are made again per B and seed. Reported per B: the spread of one row's gain between
seeds (median and largest sd over the rows), how many features' selected row changes with the seed, the pick's
NMI over the seeds (mean, sd, distinct rows), and the seconds per gain on one thread. The labels only score.

The pick is the medoid of structure 1's members, one selected row per feature, so it moves whenever a feature's
selected row does. ``--ties`` also scores an alternative that looks past that choice (:func:`near_representative`):
each member feature offers its other eligible rows as stable within the tie that agree with its selected row.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import numpy as np
import pandas as pd
import yaml
from bench_embeddings import parse_project_arguments, project_arguments, run_chain, save_runs
from sklearn.metrics import normalized_mutual_info_score
from threadpoolctl import threadpool_limits

from audioclust.clustering.selection import mark_selected
from audioclust.clustering.structures import agreement_matrix, mark_structures
from audioclust.clustering.tuning import stability_gain
from audioclust.represent.views import build_views
from audioclust.results import read_partitions, read_results, read_table, true_flags
from audioclust.stages._shared import given_k, views_settings


def fit_params(params: str) -> dict:
    """The parameters a row was fitted with: its ``params`` column without the fitted attributes it also shows
    (``eps_``, ``m_``)."""
    return {key: value for key, value in json.loads(params or "{}").items() if not key.endswith("_")}


def candidates(results: pd.DataFrame, margin: float) -> pd.DataFrame:
    """The eligible rows whose gain is within ``margin`` of their feature's best: the rows a less noisy estimate
    could select."""
    eligible = results[true_flags(results, "eligible")]
    best = eligible.groupby("feature")["stability"].transform("max")
    return eligible[eligible["stability"] >= best - margin]


def choices(results: pd.DataFrame, gains: dict[str, float], partitions: dict[str, np.ndarray], cfg, k: int | None,
            tie: float) -> tuple[dict[str, str], str]:
    """Each feature's selected row and the overall pick, with ``gains`` in place of the rows' stability; with
    ``tie`` > 0 the pick is :func:`near_representative` instead of the stage's (the medoid of structure 1)."""
    rows = results.copy()
    rows["stability"] = [gains.get(i, s) for i, s in zip(rows["id"], rows["stability"])]
    mark_selected(rows, cfg.cluster.criterion, k)
    mark_structures(rows, partitions, cfg.cluster.criterion, cfg.cluster.structure_agreement, cfg.cluster.pick,
                    cfg.cluster.focus)
    chosen = rows[rows["selected"]]
    pick = (near_representative(rows, partitions, cfg.cluster.structure_agreement, tie) if tie > 0
            else str(rows.loc[rows["pick"], "id"].iloc[0]))
    return dict(zip(chosen["feature"], chosen["id"])), pick


def near_representative(rows: pd.DataFrame, partitions: dict[str, np.ndarray], threshold: float, tie: float) -> str:
    """An alternative to structure 1's medoid that depends less on which row each feature's noisy gain selects:
    each member feature offers its selected row and its other eligible rows within ``tie`` of that row's gain
    whose partition agrees with it (AMI >= ``threshold``); the offer agreeing most, on average over the other
    features (each weighing the same), with their offers represents the structure."""
    members = rows[rows["selected"] & (rows["structure"] == 1)]
    eligible = rows[true_flags(rows, "eligible")]
    offers: dict[str, list[str]] = {}
    for feature, selected, gain in zip(members["feature"], members["id"], members["stability"]):
        near = eligible.loc[(eligible["feature"] == feature) & (eligible["id"] != selected)
                            & (eligible["stability"] >= gain - tie), "id"].tolist()
        agree = agreement_matrix([partitions[selected]] + [partitions[i] for i in near])[0, 1:]
        offers[feature] = [selected] + [i for i, a in zip(near, agree) if a >= threshold]
    if len(offers) < 2:
        return str(members["id"].iloc[0])
    ids = [i for offer in offers.values() for i in offer]
    owner = np.array([f for f, offer in offers.items() for _ in offer])
    agreement = agreement_matrix([partitions[i] for i in ids])
    score = [np.mean([agreement[n, owner == f].mean() for f in offers if f != owner[n]]) for n in range(len(ids))]
    return ids[int(np.argmax(score))]


def run_resamples(paths) -> int:
    """The B the stage-04 run used, from its ``config.yaml``."""
    saved = yaml.safe_load((paths.results / "config.yaml").read_text()) or {}
    return int(saved["cluster"]["stability_resamples"])


def measure_set(cfg, paths, resamples: list[int], n_seeds: int, margin: float, ties: list[float],
                first_seed: int = 0) -> dict:
    c = cfg.cluster
    results = read_results(paths, "clustering")
    partitions = read_partitions(paths, "clustering")
    results = results[results["id"].isin(partitions)].reset_index(drop=True)
    table = read_table(paths)
    truth = table["label"].to_numpy()
    nmi = {i: normalized_mutual_info_score(truth, p) for i, p in partitions.items()}
    with threadpool_limits(limits=1):
        views = {v.spec.name: v.X for v in build_views(views_settings(cfg), paths, table)}
    rows = candidates(results, margin)
    used = run_resamples(paths)
    seeds = [cfg.seed + first_seed + s for s in range(n_seeds)]
    # per B, per term of the estimate (the gain and its two terms), per seed: the rows' values
    parts = {b: {part: {s: {} for s in seeds} for part in ("stability", "stability_raw", "stability_null")}
             for b in resamples}
    seconds = {b: [] for b in resamples}
    with threadpool_limits(limits=1):
        for _, row in rows.iterrows():
            row_k = int(row["k"]) if pd.notna(row["k"]) and row["k_source"] != "found" else None
            for b in resamples:
                for seed in seeds:
                    start = time.perf_counter()
                    estimate = stability_gain(row["algorithm"], views[row["view"]], row_k, seed,
                                              fit_params(row["params"]), labels=partitions[row["id"]], n_resamples=b,
                                              max_samples=c.stability_max_samples)
                    seconds[b].append(time.perf_counter() - start)
                    for part, values in parts[b].items():
                        values[seed][row["id"]] = estimate[part]
                    gain = estimate["stability"]
                    if b == used and seed == cfg.seed and not np.isclose(gain, row["stability"]):
                        raise SystemExit(f"{paths.dataset} {row['id']}: recomputed gain {gain:.6f} differs from "
                                         f"results.csv's {row['stability']:.6f}")
    k = given_k(cfg)
    best_nmi = max(nmi[i] for i in results.loc[true_flags(results, "eligible"), "id"])
    out = {"files": len(table), "candidates": len(rows), "rows": len(results), "best_nmi": best_nmi, "by_b": {}}
    for b in resamples:
        gains = parts[b]["stability"]
        spread = pd.DataFrame(gains).std(axis=1, ddof=1)
        made = {tie: [choices(results, gains[seed], partitions, cfg, k, tie) for seed in seeds] for tie in ties}
        features = sorted({f for selected, _ in made[ties[0]] for f in selected})
        changed = [f for f in features if len({selected.get(f) for selected, _ in made[ties[0]]}) > 1]
        picks = {str(tie): [pick for _, pick in made[tie]] for tie in ties}
        picked_nmi = {tie: [nmi[p] for p in ids] for tie, ids in picks.items()}
        out["by_b"][str(b)] = {
            "sd_median": float(spread.median()), "sd_max": float(spread.max()),
            # which term is noisier: the data's stability or that of its Gaussian reference
            **{f"{part}_sd_median": float(pd.DataFrame(parts[b][part]).std(axis=1, ddof=1).median())
               for part in ("stability_raw", "stability_null")},
            "features_changed": changed, "n_features": len(features),
            "picks": {tie: dict(Counter(ids)) for tie, ids in picks.items()},
            "pick_nmi": picked_nmi, "seconds_per_gain": float(np.median(seconds[b])),
            "gains": {str(seed): gains[seed] for seed in seeds}}
    return out


def _nmi(values: list[float]) -> str:
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def markdown(runs: list[dict], resamples: list[int], ties: list[float]) -> str:
    """Per label set and B: the gain's spread, the features whose selected row moves, and the pick's NMI (mean ± sd
    over the seeds; distinct rows picked) for each representative tie."""
    lines = ["| labels | files | rows re-estimated | B | gain sd (median / max) | sd of S(X) / S(G) (median) | "
             "features whose row changes | s per gain | " + " | ".join(
                 f"pick NMI, tie {t} (rows)" for t in ties) + " |",
             "|:---|---:|---:|---:|---|---|---:|---:|" + "---|" * len(ties)]
    for r in runs:
        for b in resamples:
            m = r["by_b"][str(b)]
            cells = [f"{_nmi(m['pick_nmi'][str(t)])} ({len(m['picks'][str(t)])})" for t in ties]
            lines.append(f"| {r['set']} | {r['files']} | {r['candidates']} of {r['rows']} | {b} | "
                         f"{m['sd_median']:.3f} / {m['sd_max']:.3f} | {m['stability_raw_sd_median']:.3f} / "
                         f"{m['stability_null_sd_median']:.3f} | {len(m['features_changed'])} of {m['n_features']} | "
                         f"{m['seconds_per_gain']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = project_arguments(__doc__.split("\n\n")[0], [
        "demo:label", "textures:class", "instruments:instrument", "instruments:pitch_class", "speech:word",
        "speech:voice"])
    parser.add_argument("--resamples", type=int, nargs="+", default=[5, 20], help="half-samples per estimate")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the estimate, from the run's own")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="start the seeds this far after the run's own (another sample of seeds)")
    parser.add_argument("--margin", type=float, default=float("inf"),
                        help="re-estimate only the eligible rows within this gain of their feature's best (default: "
                             "all; a narrow margin leaves rows that a less noisy estimate would bring near the "
                             "top at their old gain, which favours the near-row representatives)")
    parser.add_argument("--ties", type=float, nargs="+", default=[0.0, 0.05, 0.1],
                        help="representatives to compare: 0 the stage's (the medoid), above 0 near_representative")
    args = parse_project_arguments(parser, argv)
    runs = []
    for name in args.sets:
        cfg, paths, _, _ = run_chain(args.root, name, args.corpora, args.models, args.limit, args.n_jobs,
                                     analyse_only=True)
        start = time.perf_counter()
        measured = measure_set(cfg, paths, args.resamples, args.seeds, args.margin, args.ties, args.first_seed)
        runs.append({"set": name, **measured, "seconds": round(time.perf_counter() - start, 1)})
        print(markdown(runs, args.resamples, args.ties), flush=True)
        save_runs(args.out, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
