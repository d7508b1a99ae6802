"""Stage 04's figures: which rows they show, as jobs that :func:`~audioclust.report.figure_jobs.draw_figures` draws.

Shown by default (``cluster.figure_rows: selected``) are the label-free rows: each feature's
selected row, the structures' representatives (the pick and its alternatives) among them;
``best`` adds each feature's best row by NMI (the summary's other row), ``all`` every row that
fitted. A figure costs about a second of CPU (drawing, PNG at 300 dpi, PDF).

- ``explained_variance``: per feature, the PCA of each of its views;
- ``k_selection``: per view of a selected row (every view with ``all``), the k-selection criteria;
- ``scatter_pca``, ``contingency``: per shown row;
- ``scatter_tsne``: per structure representative (``cluster.tsne``), from the projection the
  report's sound map shares (:func:`~audioclust.represent.projection.project`);
- ``dendrogram``, ``fcm_memberships``: per view of a structure representative (of every shown
  row with ``all``) that agglomerative / FCM clustered.

File names and titles are words (:mod:`audioclust.report.names`): ``scatter_tsne_mel_image_png_kmeans``,
"Mel-spectrogram image (PNG), K-Means, k = 6".
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from audioclust.clustering.kselect import KSelection
from audioclust.config import Config
from audioclust.core.cache import MemoFolder
from audioclust.report import figures as plots
from audioclust.report import names
from audioclust.report.figure_jobs import FigureJob
from audioclust.report.summary import best_by_nmi
from audioclust.represent.projection import embed_2d, project
from audioclust.represent.views import View
from audioclust.results import true_flags

log = logging.getLogger(__name__)

#: the figure kinds this stage writes (a re-run removes those of rows it no longer draws)
FIGURE_KINDS: tuple[str, ...] = ("explained_variance", "k_selection", "scatter_pca", "scatter_tsne", "contingency",
                                 "dendrogram", "fcm_memberships")


def figure_jobs(cfg: Config, results: pd.DataFrame, structures: pd.DataFrame, views: dict[str, View],
                fitted: dict[str, Any], kselect: dict[str, KSelection], labels: np.ndarray, labelled: np.ndarray,
                projections: Path) -> list[FigureJob]:
    """The figures of one stage-04 run (see the module's description).

    ``fitted`` maps a row id to what its fit left (``labels``, ``info``: FCM's memberships ``u`` and
    ``m``, agglomerative's ``linkage`` and ``n_clusters``); ``projections`` is the folder of the
    shared 2-D projections.
    """
    c = cfg.cluster
    jobs: list[FigureJob] = []
    ok = results[results["status"] == "ok"]
    selected = list(ok.loc[true_flags(ok, "selected"), "id"])
    shown = list(selected)
    for feature in pd.unique(ok["feature"]) if c.figure_rows != "selected" else []:
        best = best_by_nmi(ok[ok["feature"] == feature])   # the summary's best row
        if best is not None and best["id"] not in shown:
            shown.append(best["id"])
    representatives = [r for r in structures.get("representative", pd.Series(dtype=str)) if r in fitted]
    shown += [r for r in representatives if r not in shown]
    if c.figure_rows == "all":
        shown += [r for r in ok["id"] if r not in shown and r in fitted]
    view_of = dict(zip(ok["id"], ok["view"]))
    title_of = {row["id"]: names.row_name(row) for _, row in ok.iterrows()}

    for feature in pd.unique(results["feature"]):
        vs = {n: v for n, v in views.items() if v.spec.feature == feature and v.explained_variance_ratio is not None}
        if vs:
            jobs.append(FigureJob(names.figure_stem("explained_variance", feature), plots.explained_variance, dict(
                ratios={n: v.explained_variance_ratio for n, v in vs.items()},
                kept={n: v.n_components for n, v in vs.items()},
                title=f"{names.feature_name(feature)}: PCA of each view")))
    k_views = set(kselect) if c.figure_rows == "all" else {view_of[r] for r in selected}
    for name in sorted(k_views & set(kselect)):
        s = kselect[name]
        jobs.append(FigureJob(names.figure_stem("k_selection", name), plots.k_selection, dict(
            table=s.table, choices=s.choices, consensus=s.consensus, title=names.view_name(name))))

    shown_labels = labels if labelled.any() else None   # "" (unlabelled) is drawn in light grey
    n = len(labels)
    limit = c.tsne_max_samples
    # t-SNE grows faster than n: above the limit it embeds (and the scatter shows) a seeded sample
    tsne_rows = (np.sort(np.random.default_rng(cfg.seed).choice(n, size=limit, replace=False))
                 if limit is not None and n > limit else np.arange(n))
    if c.tsne and representatives and tsne_rows.size < n:
        log.info("t-SNE on a seeded sample of %d of %d files (cluster.tsne_max_samples)", tsne_rows.size, n)
    for row_id in shown:
        f, vname = fitted[row_id], view_of[row_id]
        X = views[vname].X
        methods = ["pca", "tsne"] if c.tsne and row_id in representatives else ["pca"]
        for method in methods:
            rows = tsne_rows if method == "tsne" else np.arange(n)
            jobs.append(FigureJob(names.figure_stem(f"scatter_{method}", row_id), projected_scatter, dict(
                X=X[rows], method=method, seed=cfg.seed, projections=projections, clusters=f.labels[rows],
                labels=None if shown_labels is None else shown_labels[rows], title=title_of[row_id])))
        if labelled.any():
            jobs.append(FigureJob(names.figure_stem("contingency", row_id), plots.contingency_heatmap, dict(
                labels_true=labels[labelled], labels_pred=f.labels[labelled], title=title_of[row_id])))
    for vname in dict.fromkeys(view_of[r] for r in (shown if c.figure_rows == "all" else representatives)):
        agg = fitted.get(f"{vname}.agglomerative")
        if agg is not None:
            i = agg.info
            jobs.append(FigureJob(names.figure_stem("dendrogram", vname), plots.dendrogram, dict(
                X=views[vname].X, linkage=i["linkage"], n_clusters=int(i["n_clusters"]),
                title=f"{names.view_name(vname)}, agglomerative ({i['linkage']} linkage)")))
        fcm = fitted.get(f"{vname}.fcm")
        if fcm is not None:
            i = fcm.info
            jobs.append(FigureJob(names.figure_stem("fcm_memberships", vname), plots.membership_histogram, dict(
                u=i["u"], title=f"{names.view_name(vname)}, Fuzzy C-Means (m = {float(i['m']):.3g})")))
    unique = {job.stem: job for job in jobs}   # a view's figure asked for by two of its rows is drawn once
    return list(unique.values())


def projected_scatter(X: np.ndarray, method: str, seed: int, projections: Path, clusters: np.ndarray,
                      labels: np.ndarray | None, title: str) -> Figure:
    """:func:`~audioclust.report.figures.scatter_2d` of X's PCA, or of its t-SNE kept in ``projections``."""
    Y = project(X, "tsne", seed, MemoFolder(projections)) if method == "tsne" else embed_2d(X, "pca", seed)
    return plots.scatter_2d(Y, clusters, labels, method="t-SNE" if method == "tsne" else "PCA", title=title)
