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

Replicates
    With several seeds (``experiment.seeds``) the views are built once and every view × algorithm
    is clustered once per seed (k selection, grids, stability and their samples are the random
    parts); the first seed's partitions are the tables and figures above, and
    ``replicates/`` holds every seed's rows (:func:`audioclust.report.summary.write_replicates`):
    ``results.csv`` and ``structures.csv`` with a ``seed`` column, ``rows.csv`` (each row's mean
    and sd) and ``summary.csv|md|tex`` (the label-free selection judged per seed).

Views are clustered in parallel, one view per process (``parallel.n_jobs``), each process
with one BLAS/OpenMP thread.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from audioclust import __version__
from audioclust.clustering import registry as estimators
from audioclust.clustering import tuning
from audioclust.clustering.kselect import KSelection, selection_table
from audioclust.clustering.metrics import INTERNAL, NOISE, external_scores
from audioclust.clustering.selection import degenerate_rule, mark_selected
from audioclust.clustering.structures import mark_structures
from audioclust.clustering.traits import mark_followed_traits
from audioclust.config import Config
from audioclust.core.cache import MemoFolder, content_hash, from_json_array, json_array
from audioclust.core.errors import AudioclustError, ConfigError
from audioclust.core.parallel import parallel_map
from audioclust.core.paths import ProjectPaths
from audioclust.core.storage import remove_stale_temps, write_csv
from audioclust.report.figure_jobs import draw_figures
from audioclust.report import replicates
from audioclust.report.summary import write_replicates, write_summaries
from audioclust.represent.vectors import ViewSpec
from audioclust.represent.views import build_views
from audioclust.results import CLUSTER_COLUMNS, STABILITY, read_table
from audioclust.stages import _shared
from audioclust.stages._cluster_figures import FIGURE_KINDS, figure_jobs
from audioclust.stages._runs import recorded, replicate_seeds, with_seed
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
    computed: int = 0   # rows fitted here (the others came from the memo)


@recorded("cluster")
def run(cfg: Config, paths: ProjectPaths, recompute: bool = False) -> pd.DataFrame:
    """Cluster every view with every algorithm; write tables, labels, summary and figures.

    Views are clustered in parallel (``parallel.n_jobs`` processes, one view each), every
    process with one BLAS/OpenMP thread: on a shared machine, K-Means with more threads
    than free cores can be a hundred times slower. Each finished row (and each view's k
    selection) is memoised under the content of its view, its algorithm's settings, k and
    the seed (``results/<name>/.memo/clustering/``, shared by the dataset's experiments): a re-run
    recomputes only the rows whose inputs changed,
    and draws only the figures whose inputs changed.

    Parameters
    ----------
    cfg : Config
        ``views``, ``cluster``, ``seed``, ``parallel`` (and ``features`` for the views).
    paths : ProjectPaths
    recompute : True ignores the memoised rows and every figure drawn before: everything is computed anew
        (but for the 2-D projections, kept by content: the same matrix gives the same projection).

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
    seeds = replicate_seeds(cfg)
    cfg = with_seed(cfg, seeds[0])   # the primary seed: its partitions are the ones shown
    table = read_table(paths)
    labels = table["label"].fillna("").astype(str).to_numpy()
    labelled = labels != ""
    log.info("cluster: %d files, %s%s", len(table),
             f"{len(set(labels[labelled]))} labels on {int(labelled.sum())} files" if labelled.any() else "no labels",
             f"; {len(seeds)} seeds ({', '.join(map(str, seeds))})" if len(seeds) > 1 else "")
    with threadpool_limits(limits=1):   # the views are the seeds' shared work: built once
        views = build_views(views_settings(cfg), paths, table, store_rows=read_table(paths, ok_only=False))
    out = paths.results / "clustering"
    shutil.rmtree(out / ".memo", ignore_errors=True)   # where memos were kept before they were shared by experiments
    memo = MemoFolder(paths.memo("clustering"), read=not recompute)
    items = [(v.spec, v.X, content_hash(v.X), seed) for seed in seeds for v in views]

    # views whose every row is memoised are read here; the others go to the worker processes
    parts: list[_ViewResult | None] = [_cluster_view(item, cfg, memo, compute=False) for item in items]
    missing = [i for i, part in enumerate(parts) if part is None]
    work = partial(_cluster_view, cfg=cfg, memo=memo)
    for i, part in zip(missing, parallel_map(work, [items[i] for i in missing], workers(cfg), desc="cluster",
                                             unit="view")):
        parts[i] = part
    computed = sum(part.computed for part in parts if part is not None)
    n_rows = sum(len(part.rows) for part in parts if part is not None)
    log.info("cluster: %d rows, %d computed, %d reused from %s", n_rows, computed, n_rows - computed,
             paths.rel(memo.folder))
    memo.prune()
    by_seed = {seed: [p for p, item in zip(parts, items) if item[3] == seed and p is not None] for seed in seeds}
    traits = _shared.recording_traits(cfg, paths, table)
    per_seed = [_partitions(by_seed[seed], seed, labels, labelled, traits, cfg) for seed in seeds]
    results, fitted, structures = per_seed[0]
    done = by_seed[seeds[0]]
    kselect = {v.spec.name: part.kselect for v, part in zip(views, done) if part.kselect is not None}
    grids = [g for part in done for g in part.grids]
    _log_problems(results, kselect, paths.rel(out / "results.csv"))
    for warning in _shared.followed_traits_warnings(structures, "cluster", paths.rel(out / "structures.csv")):
        log.warning(warning)

    _write_tables(results, fitted, grids, kselect, table, out)
    write_csv(out / "structures.csv", structures)
    over_seeds = write_replicates(out, [r for r, _, _ in per_seed], [s for _, _, s in per_seed],
                                  cfg.cluster.criterion)
    write_summaries(paths, cfg.cluster.criterion, cfg.cluster.tune_criterion)  # keeps stage 05's rows
    if cfg.cluster.figures:
        draw_figures(figure_jobs(cfg, results, structures, {v.spec.name: v for v in views}, fitted, kselect, labels,
                                 labelled, paths.projections),
                     out / "figures", FIGURE_KINDS, workers(cfg), recompute=recompute)
    _log_summary(results, structures, cfg.cluster.criterion)
    if over_seeds is not None:
        _log_replicates(over_seeds)
    return results


def _log_replicates(summary: pd.DataFrame) -> None:
    for _, r in summary[summary["Choice"] != replicates.BEST].iterrows():
        log.info("over %d seeds, %s %s: %s on %s chosen in %s; NMI %s", r["Seeds"], r["Choice"], r["Feature"],
                 r["Algorithm"], r["Type"], r["Chosen in"], replicates.plus_minus(r["NMI"], r["NMI sd"]))


def _partitions(parts: list[_ViewResult], seed: int, labels: np.ndarray, labelled: np.ndarray, traits: pd.DataFrame,
                cfg: Config) -> tuple[pd.DataFrame, dict[str, _Fitted], pd.DataFrame]:
    """One seed's results table (external scores added, selection and structures marked), fits and structures (with
    the recording ``traits`` each follows)."""
    results = pd.DataFrame([row for part in parts for row in part.rows], columns=CLUSTER_COLUMNS)
    results["seed"] = seed
    fitted = {key: f for part in parts for key, f in part.fitted.items()}
    if labelled.any():
        for i, row_id in enumerate(results["id"]):
            if row_id in fitted:
                for key, value in external_scores(labels[labelled], fitted[row_id].labels[labelled]).items():
                    results.at[i, key] = value
    mark_selected(results, cfg.cluster.criterion, given_k(cfg))
    partitions = {key: f.labels for key, f in fitted.items()}
    structures = mark_structures(results, partitions, cfg.cluster.criterion, cfg.cluster.structure_agreement,
                                 cfg.cluster.pick, cfg.cluster.focus)
    mark_followed_traits(structures, partitions, traits, cfg.cluster.structure_agreement)
    return results, fitted, structures.assign(seed=seed)


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


def _cluster_view(item: tuple[ViewSpec, np.ndarray, str, int], cfg: Config, memo: MemoFolder,
                  compute: bool = True) -> _ViewResult | None:
    """k selection and every algorithm on one view with one seed (in a worker process), each from its memo when
    there is one.

    With ``compute`` False nothing is fitted: the view's result when every part of it is memoised, else None.
    """
    spec, X, view_hash, seed = item
    cfg = with_seed(cfg, seed)
    c = cfg.cluster
    selection = None
    if c.k == "auto" and X.shape[0] >= 3:
        key = _kselect_key(cfg, view_hash)
        selection = _read_kselect(memo.get(key))
        if selection is None:
            if not compute:
                return None
            k, k_source, selection = choose_k(cfg, X)
            record = {"meta": json_array(selection.to_record())}
            memo.put(key, **record)
            selection = _read_kselect(record)   # as a re-run will read it: the same tables and figures
        k, k_source = selection.consensus, "auto"
    else:
        k, k_source, _ = choose_k(cfg, X)
    result = _ViewResult(rows=[], fitted={}, grids=[], kselect=selection)
    for name in c.algorithms:
        key = _row_key(cfg, view_hash, name, k)
        cached = _read_row(memo.get(key))
        if cached is None and not compute:
            return None
        if cached is None:
            row, fitted, grid = _cluster_one(cfg, spec, X, name, k, k_source)
            result.computed += 1
            record = _row_record(row, fitted, grid)   # a skipped or failed row too: the same inputs fail again
            memo.put(key, **record)
            row, fitted, grid = _read_row(record)     # as a re-run will read it
        else:
            row, fitted, grid = cached
            if estimators.get_spec(name).needs_k:   # the row depends on k's value, not on who chose it
                row["k_source"] = k_source
        result.rows.append(row)
        if fitted is not None:
            result.fitted[row["id"]] = fitted
            result.grids.append(grid.assign(id=row["id"]))
    return result


# --------------------------------------------------------------------------- memo

#: bump when a change of this stage's code changes what a memoised row holds
_MEMO_VERSION = 2

#: settings of the ``cluster`` section that every row depends on (besides its algorithm's own)
_ROW_SETTINGS = ("tune", "tune_criterion", "criterion", "stability_resamples", "stability_max_samples",
                 "silhouette_sample_size", "min_cluster_share", "max_noise_share", "max_samples_quadratic",
                 "max_samples_slow")

#: settings the estimated k depends on
_KSELECT_SETTINGS = ("k_min", "k_max", "k_methods", "gap_references", "kselect_max_samples",
                     "silhouette_sample_size", "n_init")


@lru_cache(maxsize=1)
def _code_versions() -> dict[str, str]:
    import skfuzzy
    import sklearn
    return {"memo": str(_MEMO_VERSION), "audioclust": __version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "scikit-fuzzy": skfuzzy.__version__}


def _row_key(cfg: Config, view_hash: str, name: str, k: int | None) -> str:
    """What one row depends on: its view's content, the algorithm and its settings, k, the seed, the code."""
    c = cfg.cluster
    return content_hash({"view": view_hash, "algorithm": name, "k": k, "seed": cfg.seed,
                         "params": _shared.params_from_config(c).get(name, {}),
                         "grid": _shared.grid_from_config(c, name),
                         "settings": {s: getattr(c, s) for s in _ROW_SETTINGS}, "code": _code_versions()}, 24)


def _kselect_key(cfg: Config, view_hash: str) -> str:
    c = cfg.cluster
    return content_hash({"view": view_hash, "kselect": {s: getattr(c, s) for s in _KSELECT_SETTINGS},
                         "seed": cfg.seed, "code": _code_versions()}, 24)


def _row_record(row: dict[str, Any], fitted: _Fitted | None, grid: pd.DataFrame | None) -> dict[str, np.ndarray]:
    if fitted is None or grid is None:
        return {"meta": json_array({"row": row})}
    arrays = {k: v for k, v in fitted.info.items() if isinstance(v, np.ndarray)}
    scalars = {k: v for k, v in fitted.info.items() if k not in arrays}
    return {"labels": fitted.labels, **{f"info_{k}": v for k, v in arrays.items()},
            "meta": json_array({"row": row, "info": scalars, "grid": grid.to_dict(orient="records")})}


def _read_row(memo: dict[str, np.ndarray] | None
              ) -> tuple[dict[str, Any], _Fitted | None, pd.DataFrame | None] | None:
    """A memoised row as (row, what the fit left, grid); the last two are None for a skipped or failed row."""
    if memo is None:
        return None
    meta = from_json_array(memo["meta"])
    if "labels" not in memo:
        return meta["row"], None, None
    info = {**meta["info"], **{k[len("info_"):]: v for k, v in memo.items() if k.startswith("info_")}}
    return meta["row"], _Fitted(labels=memo["labels"], info=info), pd.DataFrame(meta["grid"])


def _read_kselect(memo: dict[str, np.ndarray] | None) -> KSelection | None:
    return None if memo is None else KSelection.from_record(from_json_array(memo["meta"]))


def _cluster_one(cfg: Config, view: ViewSpec, X: np.ndarray, name: str, k: int | None, k_source: str
                 ) -> tuple[dict[str, Any], _Fitted | None, pd.DataFrame | None]:
    """One view × algorithm: select parameters, fit, score without labels (the parent adds the external
    scores: the memoised row holds nothing the labels decide); never raises for a failed fit."""
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
