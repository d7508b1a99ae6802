"""Regret of the label-free choice: how far what a user without labels gets falls below the best selectable row.

Usage::

    .venv/bin/python benchmarks/bench_selection.py --root /tmp/bench_embed \\
        [--sets demo:label textures:class instruments:instrument instruments:pitch_class speech:word speech:voice \\
                fsdd:digit fsdd:speaker] [--corpora results/bench/corpora] [--analyse-only] [--out selection.json]

Each label set is brought in and run through stages 01–04 exactly as :mod:`bench_embeddings` does (same
``--root``, so one folder serves both; ``cluster.k`` = the number of classes, the only thing the labels set).
The generated corpora come from ``python -m audioclust.corpora KIND results/bench/corpora/KIND --size bench``.

From one stage-04 run per label set it reports, with NMI against that label set (the labels score, they choose
nothing):

- ``best``: the best row the selection could choose (eligible rows, by NMI);
- regret of the overall pick **before** (``cluster.pick: criterion``: the features' selected row with the best
  stability) and **after** (``cluster.pick: structures``, :mod:`audioclust.clustering.structures`);
- regret of the best of the structures' representatives (the pick and its alternatives): does some
  structure the report shows hold the labelled one?
- the regret of a consensus partition of structure 1 (co-association of its members) in place of its medoid;
- the regret of each feature's own selected row;
- the after-pick and the alternatives at other ``cluster.structure_agreement`` thresholds (is the default
  a plateau or a knife edge?).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from bench_embeddings import parse_project_arguments, project_arguments, run_chain, save_runs
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import normalized_mutual_info_score

from audioclust.clustering.structures import mark_structures
from audioclust.results import true_flags

THRESHOLDS = (0.2, 0.3, 0.4)


def marked(results: pd.DataFrame, partitions: dict[str, np.ndarray], criterion: str, threshold: float,
           pick: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A copy of ``results`` with ``structure`` and ``pick`` marked by that rule, and its structures table."""
    rows = results.copy()
    return rows, mark_structures(rows, partitions, criterion, threshold, pick)


def consensus(rows: pd.DataFrame, partitions: dict[str, np.ndarray]) -> np.ndarray:
    """The alternative to the medoid: a consensus partition of structure 1's members (co-association, average
    linkage, as many clusters as the pick); the pick itself when the structure has one member."""
    members = rows.loc[rows["structure"] == 1, "id"].tolist()
    picked = rows.loc[rows["pick"], "id"].iloc[0]
    if len(members) < 2:
        return partitions[picked]
    together = np.mean([partitions[i][:, None] == partitions[i][None, :] for i in members], axis=0)
    k = int(rows.loc[rows["pick"], "n_clusters"].iloc[0])
    return AgglomerativeClustering(n_clusters=k, metric="precomputed", linkage="average").fit_predict(1.0 - together)


def analyse(cfg, paths) -> dict:
    """Best NMI and the regrets of one label set's stage-04 tables (see the module's text)."""
    folder = paths.results / "clustering"
    results = pd.read_csv(folder / "results.csv", keep_default_na=False, na_values=[""])
    for column in ("selected", "eligible", "pick"):
        results[column] = true_flags(results, column)
    labels = pd.read_csv(folder / "labels.csv", dtype={"stem": str, "label": str}, keep_default_na=False)
    labelled = labels["label"].to_numpy() != ""
    truth = labels["label"].to_numpy()[labelled]
    partitions = {i: labels[i].to_numpy()[labelled] for i in results["id"] if i in labels.columns}
    results = results[results["id"].isin(partitions)].reset_index(drop=True)
    nmi = {i: normalized_mutual_info_score(truth, p) for i, p in partitions.items()}
    best = max(nmi[i] for i in results.loc[results["eligible"], "id"])

    def regret(row_id: str) -> dict:
        return {"id": row_id, "nmi": nmi[row_id], "regret": best - nmi[row_id]}

    def best_structure(table: pd.DataFrame) -> float:
        return best - max(nmi[r] for r in table["representative"])

    c = cfg.cluster
    before, _ = marked(results, partitions, c.criterion, c.structure_agreement, "criterion")
    after, table = marked(results, partitions, c.criterion, c.structure_agreement, "structures")
    together = normalized_mutual_info_score(truth, consensus(after, partitions))
    sweep = {t: marked(results, partitions, c.criterion, t, "structures") for t in THRESHOLDS}
    return {
        "best": best,
        "criterion": regret(before.loc[before["pick"], "id"].iloc[0]),
        "structures": regret(after.loc[after["pick"], "id"].iloc[0]),
        "consensus": {"nmi": together, "regret": best - together},
        "alternatives": {"n": len(table), "regret": best_structure(table),
                         "representatives": [{"id": r, "features": f, "nmi": nmi[r]}
                                             for r, f in zip(table["representative"], table["features"])]},
        "features": {row["feature"]: best - nmi[row["id"]] for _, row in results[results["selected"]].iterrows()},
        "thresholds": {str(t): {"after": best - nmi[rows.loc[rows["pick"], "id"].iloc[0]],
                                "alternatives": best_structure(tab), "n": len(tab)}
                       for t, (rows, tab) in sweep.items()},
    }


def markdown(runs: list[dict]) -> str:
    lines = ["| labels | k | files | best NMI | before: pick (regret) | after: pick (regret) | "
             "structures | best structure (regret) | consensus instead of the medoid (regret) |",
             "|:---|---:|---:|---:|:---|:---|---:|---:|---:|"]
    for r in runs:
        before, after = r["criterion"], r["structures"]
        lines.append(f"| {r['set']} | {r['k']} | {r['files']} | {r['best']:.2f} | "
                     f"{before['id']} ({before['regret']:.2f}) | {after['id']} ({after['regret']:.2f}) | "
                     f"{r['alternatives']['n']} | {r['alternatives']['regret']:.2f} | "
                     f"{r['consensus']['regret']:.2f} |")
    return "\n".join(lines) + "\n"


def features_markdown(runs: list[dict]) -> str:
    features = list(dict.fromkeys(f for r in runs for f in r["features"]))
    lines = ["| labels | " + " | ".join(features) + " |", "|:---|" + "---:|" * len(features)]
    for r in runs:
        lines.append(f"| {r['set']} | " + " | ".join(f"{r['features'][f]:.2f}" if f in r["features"] else "–"
                                                   for f in features) + " |")
    return "\n".join(lines) + "\n"


def thresholds_markdown(runs: list[dict]) -> str:
    lines = ["| labels | " + " | ".join(f"AMI {t}: pick / best structure (n)" for t in THRESHOLDS) + " |",
             "|:---|" + "---:|" * len(THRESHOLDS)]
    for r in runs:
        cells = [f"{r['thresholds'][str(t)]['after']:.2f} / {r['thresholds'][str(t)]['alternatives']:.2f} "
                 f"({r['thresholds'][str(t)]['n']})" for t in THRESHOLDS]
        lines.append(f"| {r['set']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = project_arguments(__doc__.split("\n\n")[0], [
        "demo:label", "textures:class", "instruments:instrument", "instruments:pitch_class", "speech:word",
        "speech:voice", "fsdd:digit", "fsdd:speaker"])
    args = parse_project_arguments(parser, argv)
    runs = []
    for name in args.sets:
        cfg, paths, k, times = run_chain(args.root, name, args.corpora, args.models, args.limit, args.n_jobs,
                                         args.analyse_only)
        runs.append({"set": name, "k": k, "files": int(len(pd.read_csv(paths.features_csv))), "seconds": times,
                     **analyse(cfg, paths)})
        print(markdown(runs), features_markdown(runs), thresholds_markdown(runs), sep="\n", flush=True)
        save_runs(args.out, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
