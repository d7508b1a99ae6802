"""Stage 04: classical clustering of every feature view, scored honestly.

For each view (:mod:`audioclust.represent.views`: feature × kind × source) and each algorithm of
``cluster.algorithms`` (:mod:`audioclust.clustering.registry`):

1. k: ``cluster.k`` when given; when ``auto``, the consensus of the k-selection criteria on
   that view (:func:`audioclust.clustering.kselect.estimate_k`, over ``k_min..k_max``, on a seeded
   sample of ``cluster.kselect_max_samples`` files when there are more). Labels never
   set k: a researcher who wants k = number of classes writes that number into ``cluster.k``.
   ``k_source`` says which (``given`` | ``auto``); algorithms that find their own number
   of clusters (DBSCAN, HDBSCAN, affinity propagation) report it in ``k`` (``found``).
2. Hyper-parameters: the algorithm's small grid, the best point by ``cluster.tune_criterion``
   (:func:`audioclust.clustering.tuning.select_params`; labels never seen). Within one view every
   point lives in the same space, so the silhouette (the default) compares them fairly.
3. Scores: internal (silhouette, Calinski–Harabasz, Davies–Bouldin; fuzzy partition
   coefficient and entropy for FCM; with criterion ``stability`` also the stability gain,
   :func:`audioclust.clustering.selection.stability_gain`) and, on the labelled files, external
   (NMI, ACC, ARI, homogeneity, completeness, V-measure, purity; NaN without labels);
   runtime and noise.

Label-free selection
    ``selected`` marks, per feature, the row with the best ``cluster.criterion`` over every
    view and algorithm (with ``cluster.k`` a number, among the rows with that many clusters).
    Only rows whose partition is not degenerate are eligible
    (:func:`audioclust.clustering.selection.degenerate`, the same rule that ranks the grid points: at
    least two clusters, as many as asked for, no cluster below ``cluster.min_cluster_share``
    of the mean cluster size, at most ``cluster.max_noise_share`` noise; the reason is in
    the ``degenerate`` column). Silhouette, Calinski–Harabasz and Davies–Bouldin depend on
    the scale and dimension of the view, so across views they mostly pick the
    lowest-dimensional one (a whitened 70-dimensional view always has a low silhouette);
    ``stability`` (:func:`audioclust.clustering.selection.stability_gain`: the ARI between the
    partition and the partitions of half-samples, minus the same on a Gaussian of the
    view's shape) is scale-free and comparable across views and algorithms. With
    ``cluster.k: auto`` every view is clustered at its own consensus k; stability favours
    small k somewhat (two groups are easier to reproduce than seven), which the Gaussian
    reference, clustered at the same k, partly offsets.

Structures and the overall pick
    A collection often holds several structures (instrument and pitch class, word and
    voice), and each feature's selected row captures one. The selected rows whose
    partitions agree (adjusted mutual information >= ``cluster.structure_agreement``) form a
    structure (:mod:`audioclust.clustering.structures`); ``structures.csv`` lists them, the
    one most features see first. ``pick`` marks the overall label-free row that the report
    and the sound map show: with ``cluster.pick: structures`` the most central row of
    structure 1, with ``criterion`` the selected row with the best criterion. The other
    structures are the alternatives the report offers.

Large collections
    Algorithms whose memory grows as n² (agglomerative, spectral, affinity propagation)
    are skipped above ``cluster.max_samples_quadratic`` files: their row has ``status``
    ``skipped`` and a reason; so is ``hdbscan`` above ``cluster.max_samples_slow`` (its
    time grows faster than n² in many dimensions: one fit took 14 s on 20,000 × 40 and
    222 s on 50,000 × 40). ``minibatch_kmeans``, ``birch`` and ``gmm`` run on every file
    (100,000 × 40, grid and stability included: 1, 53 and 10 s; peak RSS under 400 MiB).
    Above a size limit every quadratic or repeated computation uses a seeded sample: k
    selection (``cluster.kselect_max_samples``), the silhouette
    (``cluster.silhouette_sample_size``), the stability criterion
    (``cluster.stability_max_samples``) and the t-SNE figure (``cluster.tsne_max_samples``;
    the scatter then shows the sampled files only).

Outputs in ``results/<name>/clustering/``: ``results.csv`` (one row per view × algorithm),
``structures.csv`` (one row per structure), ``labels.csv`` (``stem, label`` and one column of cluster labels per row ``id``),
``grids.csv`` (every grid point tried), ``k_selection.csv`` (when k is estimated),
``summary.csv|md|tex`` (:func:`audioclust.report.summary.write_summaries`: with stage 05's rows when
it has run) and ``figures/`` (PNG + PDF, :mod:`audioclust.report.figures`).

Views are clustered in parallel, one view per process (``parallel.n_jobs``), each process
with one BLAS/OpenMP thread.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from audioclust.clustering import registry as estimators
from audioclust.clustering import tuning
from audioclust.clustering.kselect import KSelection, selection_table
from audioclust.clustering.metrics import INTERNAL, NOISE, external_scores
from audioclust.clustering.selection import degenerate_rule, mark_selected
from audioclust.clustering.structures import mark_structures
from audioclust.config import Config
from audioclust.core.errors import AudioclustError, ConfigError
from audioclust.core.parallel import parallel_map
from audioclust.core.paths import ProjectPaths
from audioclust.core.progress import progress
from audioclust.core.storage import remove_stale_temps, write_csv
from audioclust.report import figures as plots
from audioclust.report import names
from audioclust.report.summary import best_by_nmi, write_summaries
from audioclust.represent.projection import embed_2d
from audioclust.represent.vectors import ViewSpec
from audioclust.represent.views import View, build_views
from audioclust.results import CLUSTER_COLUMNS, STABILITY, read_table
from audioclust.stages import _shared
from audioclust.stages._shared import choose_k, given_k, views_settings, workers

log = logging.getLogger(__name__)


"""Columns of :func:`audioclust.clustering.selection.stability_gain` (NaN unless the criterion is ``stability``)."""


@dataclass
class _Fitted:
    """What the figures need of one fitted row besides its table row."""

    labels: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class _ViewResult:
    """Everything the clustering of one view returns (from a worker process)."""

    rows: list[dict[str, Any]]
    fitted: dict[str, _Fitted]
    grids: list[pd.DataFrame]
    kselect: KSelection | None


def run(cfg: Config, paths: ProjectPaths) -> pd.DataFrame:
    """Cluster every view with every algorithm; write tables, labels, summary and figures.

    Views are clustered in parallel (``parallel.n_jobs`` processes, one view each), every
    process with one BLAS/OpenMP thread: on a shared machine, K-Means with more threads
    than free cores can be a hundred times slower.

    Parameters
    ----------
    cfg : Config
        ``views``, ``cluster``, ``seed``, ``parallel`` (and ``features`` for the views).
    paths : ProjectPaths

    Returns
    -------
    DataFrame with :data:`CLUSTER_COLUMNS`, one row per view × algorithm (also ``results.csv``).

    Raises
    ------
    StageInputError
        When ``features.csv`` is missing (run ``audioclust extract``).
    ConfigError
        For an unknown algorithm or grid parameter, before any work.
    """
    remove_stale_temps(*paths.generated())
    _check_config(cfg)
    table = read_table(paths)
    labels = table["label"].fillna("").astype(str).to_numpy()
    labelled = labels != ""
    log.info("cluster: %d files, %s", len(table),
             f"{len(set(labels[labelled]))} labels on {int(labelled.sum())} files" if labelled.any() else "no labels")
    with threadpool_limits(limits=1):
        views = build_views(views_settings(cfg), paths, table, store_rows=read_table(paths, ok_only=False))
    out = paths.results / "clustering"

    work = partial(_cluster_view, cfg=cfg, labels=labels, labelled=labelled)
    parts: list[_ViewResult] = parallel_map(work, [(v.spec, v.X) for v in views], workers(cfg), desc="cluster",
                                            unit="view")
    results = pd.DataFrame([row for part in parts for row in part.rows], columns=CLUSTER_COLUMNS)
    fitted = {key: f for part in parts for key, f in part.fitted.items()}
    kselect = {v.spec.name: part.kselect for v, part in zip(views, parts) if part.kselect is not None}
    grids = [g for part in parts for g in part.grids]
    _log_problems(results, kselect, paths.rel(out / "results.csv"))

    mark_selected(results, cfg.cluster.criterion, given_k(cfg))
    structures = mark_structures(results, {key: f.labels for key, f in fitted.items()}, cfg.cluster.criterion,
                                 cfg.cluster.structure_agreement, cfg.cluster.pick, cfg.cluster.focus)
    _write_tables(results, fitted, grids, kselect, table, out)
    write_csv(out / "structures.csv", structures)
    write_summaries(paths, cfg.cluster.criterion, cfg.cluster.tune_criterion)  # keeps stage 05's rows
    if cfg.cluster.figures:
        with threadpool_limits(limits=1):
            _figures(cfg, results, {v.spec.name: v for v in views}, fitted, kselect, labels, labelled,
                     out / "figures")
    _log_summary(results, structures, cfg.cluster.criterion)
    return results


# --------------------------------------------------------------------------- steps

def _check_config(cfg: Config) -> None:
    """Unknown algorithms and grid parameters fail before any work."""
    if not cfg.cluster.algorithms:
        raise ConfigError("config key 'cluster.algorithms' is empty: list at least one, e.g. [kmeans]")
    for name in cfg.cluster.algorithms:
        estimators.get_spec(name)
        _shared.grid_from_config(cfg.cluster, name)
    unknown = sorted(set(cfg.cluster.focus) - set(cfg.views.features) - {m.name for m in _shared.embedding_models(cfg)})
    if unknown:
        raise ConfigError(f"config key 'cluster.focus' names {', '.join(unknown)}, which is neither in "
                          "'views.features' nor in 'embeddings.models'")
    if not cfg.views.features and not cfg.embeddings.models:
        raise ConfigError("config keys 'views.features' and 'embeddings.models' are both empty: list at least one "
                          "feature (e.g. [mfcc]) or model (e.g. [aisfx])")


def _cluster_view(item: tuple[ViewSpec, np.ndarray], cfg: Config, labels: np.ndarray,
                  labelled: np.ndarray) -> _ViewResult:
    """k selection and every algorithm on one view (runs in a worker process)."""
    spec, X = item
    k, k_source, selection = choose_k(cfg, X)
    result = _ViewResult(rows=[], fitted={}, grids=[], kselect=selection)
    for name in cfg.cluster.algorithms:
        row, fitted, grid = _cluster_one(cfg, spec, X, name, k, k_source, labels, labelled)
        result.rows.append(row)
        if fitted is not None:
            result.fitted[row["id"]] = fitted
            result.grids.append(grid.assign(id=row["id"]))
    return result


def _cluster_one(cfg: Config, view: ViewSpec, X: np.ndarray, name: str, k: int | None, k_source: str,
                 labels: np.ndarray, labelled: np.ndarray
                 ) -> tuple[dict[str, Any], _Fitted | None, pd.DataFrame | None]:
    """One view × algorithm: select parameters, fit, score; never raises for a failed fit."""
    c = cfg.cluster
    spec = estimators.get_spec(name)
    n = X.shape[0]
    row: dict[str, Any] = {col: math.nan for col in CLUSTER_COLUMNS}
    row.update({"id": f"{view.name}.{name}", "feature": view.feature, "view": view.name, "type": view.type,
                "kind": view.kind, "source": view.source, "algorithm": name,
                "k": k if spec.needs_k else math.nan, "k_source": k_source if spec.needs_k else "found",
                "params": "", "status": "ok", "reason": "", "selected": False, "degenerate": "", "n_samples": n,
                "n_dims": X.shape[1]})
    if spec.quadratic and n > c.max_samples_quadratic:
        row.update(status="skipped", reason=f"{n} files > cluster.max_samples_quadratic = {c.max_samples_quadratic} "
                                            "(memory grows as n²); raise it, or use minibatch_kmeans or birch")
        return row, None, None
    if spec.slow and n > c.max_samples_slow:
        row.update(status="skipped", reason=f"{n} files > cluster.max_samples_slow = {c.max_samples_slow} (time grows "
                                            "faster than n² in many dimensions); raise it, or use minibatch_kmeans "
                                            "or birch")
        return row, None, None
    if spec.needs_k and (k is None or not 2 <= k < n):
        row.update(status="error", reason=f"k = {k} does not fit {n} files (2 <= k < n_files): set cluster.k or "
                                          "cluster.k_min/k_max")
        return row, None, None
    start = time.perf_counter()
    try:
        est, params, grid = tuning.select_params(
            name, X, n_clusters=k if spec.needs_k else None, random_state=cfg.seed, criterion=c.tune_criterion,
            params=_shared.params_from_config(c).get(name, {}), grid=_shared.grid_from_config(c, name),
            sample_size=c.silhouette_sample_size, min_cluster_share=c.min_cluster_share,
            max_noise_share=c.max_noise_share,
            n_resamples=c.stability_resamples, stability_max_samples=c.stability_max_samples)
    except (AudioclustError, ValueError, MemoryError, np.linalg.LinAlgError) as exc:
        row.update(status="error", reason=f"{type(exc).__name__}: {exc}", runtime_s=time.perf_counter() - start)
        return row, None, None
    runtime = time.perf_counter() - start
    pred = np.asarray(est.labels_).astype(int)
    shown = {**params, **{attr: float(getattr(est, attr)) for attr in ("eps_", "m_") if hasattr(est, attr)}}
    sizes = np.unique(pred[pred != NOISE], return_counts=True)[1]
    chosen = grid.loc[grid["selected"]].iloc[0]
    row.update(params=json.dumps(shown, sort_keys=True, default=str), runtime_s=runtime, fit_s=float(chosen["fit_s"]),
               n_noise=int(np.sum(pred == NOISE)), min_cluster_size=int(sizes.min()) if sizes.size else 0,
               degenerate=chosen["degenerate"])
    # the grid already scored the chosen point on the same data with the same seed
    row.update({key: float(chosen[key]) for key in (*INTERNAL, *STABILITY) if key in chosen.index})
    row["n_clusters"] = int(chosen["n_clusters"])
    if c.criterion == "stability" and not row["degenerate"] and np.isnan(row["stability"]):
        start = time.perf_counter()
        try:
            row.update(tuning.stability_gain(
                name, X, k if spec.needs_k else None, cfg.seed, params, labels=pred,
                n_resamples=c.stability_resamples, max_samples=c.stability_max_samples))
        except (ValueError, np.linalg.LinAlgError) as exc:
            # said once for every view by the parent (_log_problems): this runs in a worker process
            row["reason"] = f"stability failed ({type(exc).__name__}: {exc}); the row cannot be selected"
        row["stability_s"] = time.perf_counter() - start
    if not spec.needs_k:
        row["k"] = row["n_clusters"]
    info: dict[str, Any] = {}
    if hasattr(est, "u_"):
        row["partition_coefficient"] = est.partition_coefficient_
        row["partition_entropy"] = est.partition_entropy_
        info.update(u=est.u_, m=est.m_)
    if name == "agglomerative":
        info.update(linkage=est.linkage, n_clusters=int(est.n_clusters))
    if labelled.any():
        row.update(external_scores(labels[labelled], pred[labelled]))
    return row, _Fitted(labels=pred, info=info), grid


def _log_problems(results: pd.DataFrame, kselect: dict[str, KSelection], table: str) -> None:
    """Each kind of problem once, with the number of views it concerns; ``table`` (results.csv) has every row.

    The views were clustered in worker processes, which log nothing of this themselves: their
    rows hold the facts (``status``, ``reason``, ``degenerate``).
    """
    n_views = results["view"].nunique()
    for name, part in results[results["status"] == "skipped"].groupby("algorithm", sort=False):
        log.warning("%s skipped on %d of %d views: %s", name, len(part), n_views, part["reason"].iloc[0])
    for name, part in results[results["status"] == "error"].groupby("algorithm", sort=False):
        log.warning("%s failed on %d of %d views (%s); see the reason column of %s", name, len(part), n_views,
                    _counted(part["reason"]), table)
    ok = results[results["status"] == "ok"]
    for name, part in ok[ok["degenerate"].fillna("") != ""].groupby("algorithm", sort=False):
        log.warning("%s: every grid point degenerate on %d of %d views (%s); see the degenerate column of %s",
                    name, len(part), n_views, _counted(part["degenerate"].map(degenerate_rule)), table)
    unstable = ok[ok["reason"].fillna("").str.startswith("stability failed")]
    if len(unstable):
        log.warning("stability failed on %d row(s), which cannot be selected, e.g. %s; see the reason column of %s",
                    len(unstable), unstable["id"].iloc[0], table)
    dropped = {view: s.dropped for view, s in kselect.items() if s.dropped}
    if dropped:
        log.warning("k selection left out k = %s on %d of %d views: k must be below the number of files",
                    ", ".join(map(str, sorted({k for ks in dropped.values() for k in ks}))), len(dropped), n_views)


def _counted(reasons: pd.Series) -> str:
    """``fewer than 2 clusters: 14, noise share > 0.5: 6``: each reason and its count, most common first."""
    return ", ".join(f"{reason}: {n}" for reason, n in Counter(reasons).most_common())


def _log_summary(results: pd.DataFrame, structures: pd.DataFrame, criterion: str) -> None:
    counts = Counter(results["status"])
    log.info("cluster: %d rows (%s)", len(results), ", ".join(f"{s}: {n}" for s, n in sorted(counts.items())))
    for _, row in results[results["selected"]].iterrows():
        log.info("selected for %s: %s on %s, k=%s, %s=%.3f, NMI=%s", row["feature"], row["algorithm"], row["view"],
                 row["k"], criterion, row[criterion], "n/a" if pd.isna(row["nmi"]) else f"{row['nmi']:.3f}")
    for _, s in structures.iterrows():
        log.info("structure %d%s: %d feature(s) agree (%s); representative %s", s["structure"],
                 " (the pick)" if s["pick"] else "", s["n_features"], s["features"], s["representative"])


# --------------------------------------------------------------------------- figures

#: the figure kinds this stage writes (a re-run removes those of rows it no longer draws)
FIGURE_KINDS: tuple[str, ...] = ("explained_variance", "k_selection", "scatter_pca", "scatter_tsne", "contingency",
                                 "dendrogram", "fcm_memberships")


def _figures(cfg: Config, results: pd.DataFrame, views: dict[str, View], fitted: dict[str, _Fitted],
             kselect: dict[str, KSelection], labels: np.ndarray, labelled: np.ndarray, folder: Path) -> None:
    """Explained variance per feature, k selection per view, and for the selected / best rows:
    scatter (PCA; t-SNE for the selected), contingency, dendrogram and FCM memberships of the selected view.

    File names and titles are words (:mod:`audioclust.report.names`): ``scatter_tsne_mel_image_png_kmeans``,
    "Mel-spectrogram image (PNG), K-Means, k = 6"."""
    seed = cfg.seed
    jobs = []
    for feature in pd.unique(results["feature"]):
        vs = {n: v for n, v in views.items() if v.spec.feature == feature and v.explained_variance_ratio is not None}
        if vs:
            jobs.append((names.figure_stem("explained_variance", feature), lambda vs=vs, f=feature:
                         plots.explained_variance({n: v.explained_variance_ratio for n, v in vs.items()},
                                                  {n: v.n_components for n, v in vs.items()},
                                                  title=f"{names.feature_name(f)}: PCA of each view")))
    for name, sel in kselect.items():
        jobs.append((names.figure_stem("k_selection", name), lambda s=sel, n=name: plots.k_selection(
            s.table, s.choices, s.consensus, title=names.view_name(n))))

    ok = results[results["status"] == "ok"]
    title_of = {row["id"]: names.row_name(row) for _, row in ok.iterrows()}
    shown_labels = labels if labelled.any() else None   # "" (unlabelled) is drawn in light grey
    chosen: list[tuple[str, bool]] = [(i, True) for i in ok.loc[ok["selected"], "id"]]
    for feature in pd.unique(ok["feature"]):
        best = best_by_nmi(ok[ok["feature"] == feature])   # the summary's best row
        if best is not None and best["id"] not in {i for i, _ in chosen}:
            chosen.append((best["id"], False))
    view_of = dict(zip(ok["id"], ok["view"]))
    tsne_views = sorted({view_of[i] for i, sel in chosen if sel}) if cfg.cluster.tsne else []
    n = len(labels)
    limit = cfg.cluster.tsne_max_samples
    # t-SNE grows faster than n: above the limit it embeds (and the scatter shows) a seeded sample
    tsne_rows = (np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))
                 if limit is not None and n > limit else np.arange(n))
    if tsne_rows.size < n:
        log.info("t-SNE on a seeded sample of %d of %d files (cluster.tsne_max_samples)", tsne_rows.size, n)
    # t-SNE is the slow part: one view per process, one thread each
    embeddings = {(v, "tsne"): (Y, tsne_rows) for v, Y in zip(tsne_views, parallel_map(
        partial(embed_2d, method="tsne", random_state=seed), [views[v].X[tsne_rows] for v in tsne_views], workers(cfg),
        desc="t-SNE"))}
    for row_id, is_selected in chosen:
        f, vname = fitted[row_id], view_of[row_id]
        if (vname, "pca") not in embeddings:
            embeddings[(vname, "pca")] = (embed_2d(views[vname].X, "pca", seed), np.arange(n))
        for method in ["pca", "tsne"] if (vname, "tsne") in embeddings and is_selected else ["pca"]:
            Y, rows = embeddings[(vname, method)]
            jobs.append((names.figure_stem(f"scatter_{method}", row_id), lambda Y=Y, rows=rows, f=f, m=method, r=row_id:
                         plots.scatter_2d(Y, f.labels[rows], None if shown_labels is None else shown_labels[rows],
                                          method="t-SNE" if m == "tsne" else "PCA", title=title_of[r])))
        if labelled.any():
            jobs.append((names.figure_stem("contingency", row_id), lambda f=f, r=row_id: plots.contingency_heatmap(
                labels[labelled], f.labels[labelled], title=title_of[r])))
        if not is_selected:
            continue
        agg = fitted.get(f"{vname}.agglomerative")
        if agg is not None:
            jobs.append((names.figure_stem("dendrogram", vname), lambda i=agg.info, X=views[vname].X, v=vname:
                         plots.dendrogram(X, linkage=i["linkage"], n_clusters=i["n_clusters"],
                                          title=f"{names.view_name(v)}, agglomerative ({i['linkage']} linkage)")))
        fcm = fitted.get(f"{vname}.fcm")
        if fcm is not None:
            jobs.append((names.figure_stem("fcm_memberships", vname), lambda i=fcm.info, v=vname:
                         plots.membership_histogram(i["u"], title=f"{names.view_name(v)}, Fuzzy C-Means "
                                                                  f"(m = {i['m']:.3g})")))
    written = set()
    for stem, make in progress(jobs, "figures", unit="figure"):
        written.update(plots.save_figure(make(), folder / stem))
    # a re-run that selects other rows must not leave the old rows' figures beside the new ones
    existing = folder.iterdir() if folder.is_dir() else []
    stale = [p for p in existing
             if p.suffix in (".png", ".pdf") and names.figure_kind(p.stem) in FIGURE_KINDS and p not in written]
    for path in stale:
        path.unlink()
    log.info("cluster: %d figures (PNG + PDF) in %s%s", len(jobs), folder,
             f"; {len(stale)} files of an earlier run removed" if stale else "")


def _write_tables(results: pd.DataFrame, fitted: dict[str, _Fitted], grids: list[pd.DataFrame],
                  kselect: dict[str, KSelection], table: pd.DataFrame, out: Path) -> None:
    write_csv(out / "results.csv", results)
    frame = pd.DataFrame({"stem": table["stem"], "label": table["label"]})
    cluster_labels = pd.DataFrame({key: f.labels for key, f in fitted.items()}, index=frame.index)
    write_csv(out / "labels.csv", pd.concat([frame, cluster_labels], axis=1))
    if grids:
        merged = pd.concat(grids, ignore_index=True)
        write_csv(out / "grids.csv", merged[["id", *[c for c in merged.columns if c != "id"]]])
    if kselect:
        write_csv(out / "k_selection.csv", selection_table(kselect))
