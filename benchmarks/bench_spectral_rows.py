"""Stage 05's label-free answer with and without its spectral rows (``ae_spectral``), from one run per set.

Usage::

    .venv/bin/python benchmarks/bench_spectral_rows.py --root ROOT --sets NAME:K[:EXP[:stemN]] [...]
        [--table-only] [--cost] [--neighbours] [--out FILE] [--set KEY=VALUE ...]

For each set, one ``audioclust autoencoder`` process in experiment EXP (default ``ae_spectral``) with today's
``autoencoder.algorithms`` (K-Means and spectral clustering of every pre-trained embedding), ``cluster.k=K`` and
no figures; checkpoints of the same settings are reused. ``--table-only`` reads runs made before. ``stemN``
scores against the N-th ``_``-separated field of each file's stem instead of its label (FSDD: ``stem1``, the
speaker).

From that one run, two label-free answers: the stage's own (the model's stability is its most stable clusterer's,
and a spectral row is selected where it is more stable than K-Means by over 0.02) and the rule without spectral
rows (the ``ae_spectral`` rows dropped, each model's stability its K-Means', then the same latent choice,
selection and pick). The labels only score. Beside them: stage 04's best eligible row by NMI at the same k (in
experiment ``default``; chosen by the labels), and with ``--cost`` what a spectral row costs: the fit and stability
gain of spectral clustering and of K-Means, timed side by side on every saved pre-trained embedding (seconds per
model). ``--neighbours`` adds the stage's answer with each spectral row's ``n_neighbors`` tuned over stage 04's grid
(5, 10, 20) as stage 04 tunes it, by ``silhouette`` (stage 04's ``tune_criterion``) and by ``stability``: the
spectral rows, their gains and the models' stabilities are recomputed on the saved pre-trained embeddings, the
other rows kept, and the choices made again.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from bench_autoencoder import emit, run, run_arguments  # noqa: E402
from bench_stage05_variants import scored, set_label, truth_of  # noqa: E402

from audioclust.clustering.selection import autoencoder_criterion  # noqa: E402
from audioclust.clustering.structures import mark_autoencoder_choices  # noqa: E402
from audioclust.clustering.metrics import internal_scores  # noqa: E402
from audioclust.clustering.tuning import quiet_fit_predict, select_params  # noqa: E402
from audioclust.config import load_config  # noqa: E402
from audioclust.core.paths import ProjectPaths  # noqa: E402
from audioclust.report.summary import best_by_nmi  # noqa: E402
from audioclust.results import read_partitions, read_results, true_flags  # noqa: E402
from audioclust.stages.autoencoder import latent_stability  # noqa: E402


def without_spectral(results: pd.DataFrame, partitions: dict[str, np.ndarray], criterion: str,
                     k: int) -> pd.DataFrame:
    """The run's rows as the stage chose before its spectral rows: K-Means' gain is each model's stability."""
    rows = results[results["stage"] != "ae_spectral"].reset_index(drop=True)
    kmeans_gain = rows[rows["stage"] == "ae_kmeans"].set_index("view")["stability"]
    rows["latent_stability"] = rows["view"].map(kmeans_gain)
    mark_autoencoder_choices(rows, criterion, k, partitions)
    return rows


def tuned_neighbours(cfg, paths: ProjectPaths, results: pd.DataFrame, partitions: dict[str, np.ndarray],
                     criterion: str, tune_by: str, k: int) -> tuple[pd.DataFrame, dict[str, np.ndarray], str]:
    """The run's rows with every spectral row's ``n_neighbors`` tuned by ``tune_by`` over stage 04's grid, its
    stability gain and scores recomputed, each model's stability its most stable clusterer's, the choices made
    again; with the partitions and the neighbours each model's tuning chose."""
    rows, parts, chosen = results.copy(), dict(partitions), []
    for view, model in rows.groupby("view", sort=False):
        spectral = model.index[model["stage"] == "ae_spectral"]
        if spectral.empty:
            continue
        at = spectral[0]
        z = np.load(paths.results / "autoencoder" / "embeddings" / view / "pretrained.npy")
        fitted, params, _ = select_params("spectral", z, n_clusters=k, random_state=cfg.seed, criterion=tune_by,
                                         sample_size=cfg.cluster.silhouette_sample_size,
                                         min_cluster_share=cfg.cluster.min_cluster_share,
                                         n_resamples=cfg.autoencoder.stability_resamples,
                                         stability_max_samples=cfg.cluster.stability_max_samples)
        labels = np.asarray(fitted.labels_)
        chosen.append(str(params["n_neighbors"]))
        rows.loc[at, "stability"] = latent_stability(cfg, z, k, labels, algorithm="spectral")
        for score, value in internal_scores(z, labels, sample_size=cfg.cluster.silhouette_sample_size,
                                            random_state=cfg.seed).items():
            if score in rows.columns:
                rows.loc[at, score] = value
        parts[rows.loc[at, "id"]] = labels
        pretrained = model.index[model["stage"] != "dcec"]
        rows.loc[model.index, "latent_stability"] = rows.loc[pretrained, "stability"].max()
    mark_autoencoder_choices(rows, criterion, k, parts)
    return rows, parts, ", ".join(chosen)


def cost(cfg, folder: Path, k: int) -> str:
    """Mean seconds per saved pre-trained embedding of a fit and its stability gain: K-Means / spectral clustering."""
    seconds = {"kmeans": [], "spectral": []}
    for path in sorted(folder.glob("*/pretrained.npy")):
        z = np.load(path)
        for name, spent in seconds.items():
            began = time.perf_counter()
            labels = quiet_fit_predict(name, k, cfg.seed, {}, z)
            latent_stability(cfg, z, k, labels, algorithm=name)
            spent.append(time.perf_counter() - began)
    return f"{np.mean(seconds['kmeans']):.1f} / {np.mean(seconds['spectral']):.1f}"


def lines_of(root: Path, dataset: str, k: int, experiment: str, stem_field: int | None,
             with_cost: bool, neighbours: bool) -> list[str]:
    paths = ProjectPaths(root, dataset, experiment)
    results, partitions = read_results(paths, "autoencoder"), read_partitions(paths, "autoencoder")
    cfg = load_config(root, dataset, experiment=experiment, overrides=[f"cluster.k={k}"])
    criterion = autoencoder_criterion(cfg.cluster.criterion, cfg.cluster.tune_criterion)
    truth = truth_of(paths, stem_field)
    before = scored(without_spectral(results, partitions, criterion, k), partitions, truth)
    after = scored(results, partitions, truth)
    name = set_label(dataset, stem_field)

    def shown(rows: pd.DataFrame) -> str:
        row = rows[true_flags(rows, "pick")].iloc[0]
        return f"{row['id']} {row['nmi']:.3f}"

    classical = ProjectPaths(root, dataset, "default")
    stage04 = "n/a"
    if stem_field is None and (classical.results / "clustering" / "results.csv").is_file():
        best = best_by_nmi(read_results(classical, "clustering"))
        stage04 = "n/a" if best is None else f"{best['nmi']:.3f} ({best['id']})"
    spent = cost(cfg, paths.results / "autoencoder" / "embeddings", k) if with_cost else "n/a"
    changed = (true_flags(after, "selected").sum(), int((after.loc[true_flags(after, "selected"), "stage"]
                                                         == "ae_spectral").sum()))
    line = (f"| {name} (k={k}) | {shown(before)} | **{shown(after)}** | {changed[1]} of {changed[0]} | {stage04} | "
            f"{spent} |")
    if neighbours:
        for tune_by in ("silhouette", "stability"):
            rows, parts, chosen = tuned_neighbours(cfg, paths, results, partitions, criterion, tune_by, k)
            line += f" {shown(scored(rows, parts, truth))} | {chosen} |"
    return [line]


def main() -> None:
    parser = run_arguments(__doc__.split("\n\n")[0], "NAME:K[:EXP[:stemN]]")
    parser.add_argument("--cost", action="store_true", help="also time K-Means' and spectral's fit and stability gain")
    parser.add_argument("--neighbours", action="store_true",
                        help="also the pick with spectral clustering's n_neighbors tuned by silhouette and by stability")
    args = parser.parse_args()
    tuned = (" pick, neighbours by silhouette | neighbours per model | pick, neighbours by stability | "
             "neighbours per model |") if args.neighbours else ""
    lines = ["| set (k) | pick without spectral rows | pick with them | spectral rows selected | "
             "stage 04 best by NMI | fit + stability s per model: K-Means / spectral |" + tuned,
             "|---|---|---|---:|---|---:|" + ("---|---|---|---|" if args.neighbours else "")]
    for item in args.sets:
        name, k, *rest = item.split(":")
        experiment = rest[0] if rest else "ae_spectral"
        stem_field = int(rest[1].removeprefix("stem")) if len(rest) > 1 else None
        if not args.table_only:
            run(args.root, name, int(k), experiment, args.overrides, features=None)
        lines += lines_of(args.root, name, int(k), experiment, stem_field, args.cost, args.neighbours)
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
