"""Every figure of the pipeline, in one style, saved as PNG (300 dpi) and PDF.

Figures are made with :class:`matplotlib.figure.Figure` on the Agg canvas directly, never
through pyplot's global state: the package works headless, a long run leaks no figures,
and in a notebook a returned figure is still shown (IPython renders ``Figure`` objects).

Style
    :data:`STYLE` (matplotlib rcParams) is applied by :func:`style` around the making and
    the saving of each figure; :func:`new_figure` opens one. Sequential values use
    ``viridis``/``cividis``; categories use the Okabe–Ito palette (:data:`OKABE_ITO`,
    colour-blind safe, in :data:`CATEGORICAL` order), and beyond its 8 colours the marker
    shape changes too, so more categories stay distinguishable (:func:`category_style`).

Saving
    :func:`save_figure` writes ``<path>.png`` and ``<path>.pdf`` atomically, closes the
    figure and returns both paths.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.optimize import linear_sum_assignment

from audioclust.core.storage import write_bytes

log = logging.getLogger(__name__)


# the PDF backend subsets fonts through fontTools, which logs every table at INFO
logging.getLogger("fontTools").setLevel(logging.WARNING)

#: Okabe & Ito (2008) colour-blind-safe palette, in its published order
OKABE_ITO: tuple[str, ...] = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
                              "#000000")

#: the order categories get the palette's colours: yellow (faint on white) and black last
CATEGORICAL: tuple[str, ...] = tuple(OKABE_ITO[i] for i in (0, 1, 2, 4, 5, 6, 3, 7))

#: line colour of single-series figures and the colour of marks on them (blue, vermillion)
LINE, MARK = OKABE_ITO[4], OKABE_ITO[5]

#: marker shapes cycled with the colours when there are more categories than colours
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")

#: colour map of sequential values (counts, memberships)
SEQUENTIAL = "viridis"

#: colour map of heat-maps read in print (perceptually uniform, colour-blind safe)
HEATMAP = "cividis"

#: resolution of the PNG files
DPI = 300

STYLE: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.5,
    "lines.markersize": 4,
    "image.cmap": SEQUENTIAL,
    "axes.prop_cycle": matplotlib.cycler(color=list(CATEGORICAL)),
    # layout="constrained" (new_figure) fits labels and outside legends; a tight bbox would draw everything twice
    "savefig.bbox": None,
    "pdf.fonttype": 42,  # TrueType in the PDF: text stays editable and searchable
    "figure.dpi": 100,
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Context in which figures get the package style (:data:`STYLE`)."""
    with matplotlib.rc_context(STYLE):
        yield


def styled(func: Callable[..., Figure]) -> Callable[..., Figure]:
    """Decorator: make the figure inside :func:`style`."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with style():
            return func(*args, **kwargs)
    return wrapper


def new_figure(nrows: int = 1, ncols: int = 1, width: float = 4.0, height: float = 3.0,
               **subplot_kw: Any) -> tuple[Figure, Any]:
    """A figure on the Agg canvas and its axes (``squeeze=False``: always a 2-D array of axes).

    Parameters
    ----------
    nrows, ncols : grid of axes.
    width, height : size of *one* panel in inches.
    """
    with style():
        fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def save_figure(fig: Figure, path: str | Path) -> list[Path]:
    """Write ``<path>.png`` (300 dpi) and ``<path>.pdf`` atomically, close the figure.

    Parameters
    ----------
    fig : Figure
    path : path without suffix; ``.png`` and ``.pdf`` are appended (names may hold dots:
        ``scatter_pca.mel.image.png.kmeans`` gives ``scatter_pca.mel.image.png.kmeans.png``).

    Returns
    -------
    [png_path, pdf_path]
    """
    base = Path(path)
    out = []
    with style():
        for suffix in (".png", ".pdf"):
            target = base.with_name(base.name + suffix)
            buffer = io.BytesIO()
            fig.savefig(buffer, format=suffix[1:], dpi=DPI, metadata={"Software": None} if suffix == ".png" else None)
            write_bytes(target, buffer.getvalue())
            out.append(target)
    close(fig)
    return out


def close(fig: Figure) -> None:
    """Release a figure: pyplot forgets it (if pyplot made it) and its artists are dropped."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)  # a no-op for figures pyplot does not manage
    fig.clear()


def category_style(i: int) -> dict[str, str]:
    """Colour and marker of category ``i``: Okabe–Ito colours (:data:`CATEGORICAL` order), the marker
    changes every 8 categories."""
    return {"color": CATEGORICAL[i % len(CATEGORICAL)], "marker": MARKERS[(i // len(CATEGORICAL)) % len(MARKERS)]}


# --------------------------------------------------------------------------- figures

@styled
def explained_variance(ratios: dict[str, np.ndarray], kept: dict[str, int | None] | None = None,
                       title: str = "", max_components: int = 200) -> Figure:
    """Cumulative explained variance against the number of PCA components, one line per view.

    Parameters
    ----------
    ratios : dict name -> ndarray of shape (n_components,)
        Explained-variance ratios (decreasing).
    kept : dict name -> int or None
        Components kept by the view (a marker on its line).
    max_components : int
        x-axis limit.
    """
    fig, axes = new_figure(width=4.5, height=3.0)
    ax = axes[0, 0]
    for i, (name, ratio) in enumerate(ratios.items()):
        cum = np.cumsum(ratio)[:max_components]
        x = np.arange(1, cum.size + 1)
        st = category_style(i)
        ax.plot(x, cum, color=st["color"], label=name)
        n = (kept or {}).get(name)
        if n:
            ax.plot([n], [np.cumsum(ratio)[n - 1]], marker=st["marker"], color=st["color"], markersize=6,
                    markeredgecolor="black", markeredgewidth=0.5, linestyle="none")
    ax.set_xlabel("PCA components")
    ax.set_ylabel("cumulative explained variance")
    ax.set_ylim(0, 1.02)
    ax.set_xscale("log")
    ax.legend(loc="lower right")
    ax.set_title(title)
    return fig


#: criteria of the k-selection table, their labels and the direction of the best value
K_CRITERIA: tuple[tuple[str, str], ...] = (
    ("inertia", "inertia (elbow)"), ("silhouette", "silhouette (max)"), ("davies_bouldin", "Davies–Bouldin (min)"),
    ("calinski_harabasz", "Calinski–Harabasz (max)"), ("gap", "gap statistic"))

_CHOICE_OF = {"inertia": "elbow"}


@styled
def k_selection(table: pd.DataFrame, choices: dict[str, int], consensus: int | None = None,
                title: str = "") -> Figure:
    """One panel per criterion against k, each criterion's choice marked, the consensus as a dashed line.

    Parameters
    ----------
    table : DataFrame
        Column ``k`` and any of ``inertia, silhouette, davies_bouldin, calinski_harabasz, gap`` (+ ``gap_s``).
    choices : dict criterion -> k (``elbow`` for the inertia panel).
    consensus : int or None
    """
    present = [(col, label) for col, label in K_CRITERIA if col in table.columns]
    fig, axes = new_figure(1, max(1, len(present)), width=2.4, height=2.3)
    k = table["k"].to_numpy()
    for ax, (col, label) in zip(axes[0], present):
        y = table[col].to_numpy(dtype=float)
        if col == "gap" and "gap_s" in table.columns:
            ax.errorbar(k, y, yerr=table["gap_s"].to_numpy(dtype=float), color=LINE, marker="o", capsize=2)
        else:
            ax.plot(k, y, color=LINE, marker="o")
        chosen = choices.get(_CHOICE_OF.get(col, col))
        if chosen is not None and chosen in k:
            ax.plot([chosen], [y[list(k).index(chosen)]], marker="*", markersize=12, color=MARK,
                    linestyle="none", label=f"choice k={chosen}")
            ax.legend(loc="best")
        if consensus is not None:
            ax.axvline(consensus, color="black", linestyle="--", linewidth=0.8)
        ax.set_xlabel("k")
        ax.set_title(label)
        ax.set_xticks(k)
    if consensus is not None:
        fig.suptitle(f"{title}  (consensus k = {consensus}, dashed)" if title else f"consensus k = {consensus}")
    elif title:
        fig.suptitle(title)
    return fig


def _scatter_groups(ax, Y: np.ndarray, groups: np.ndarray, name: str) -> None:
    values = pd.unique(pd.Series(groups).astype(str))
    order = sorted(values, key=lambda v: (v == "-1", _natural(v)))
    for i, value in enumerate(order):
        mask = np.asarray(pd.Series(groups).astype(str) == value)
        noise = value == "-1"
        st = {"color": "#999999", "marker": "x"} if noise else category_style(i)
        # rasterised points: a PDF of thousands of markers stays small and quick to open
        ax.scatter(Y[mask, 0], Y[mask, 1], s=6, alpha=0.7, linewidths=0.3 if noise else 0,
                   label="noise" if noise else value, rasterized=True, **st)
    ax.set_title(name)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)                    # embedding axes have no units
    ax.grid(False)
    if len(order) <= 20:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2.5, handletextpad=0.2)


def _natural(value: str) -> tuple:
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


@styled
def scatter_2d(Y: np.ndarray, clusters: np.ndarray, labels: np.ndarray | None = None, method: str = "PCA",
               title: str = "") -> Figure:
    """2-D embedding coloured by cluster and, when given, by true label (side by side).

    Parameters
    ----------
    Y : ndarray of shape (n_samples, 2)
    clusters : ndarray of shape (n_samples,)
        ``-1`` (noise) is drawn as grey crosses.
    labels : ndarray of shape (n_samples,) or None
    method : axis naming, e.g. ``PCA`` or ``t-SNE``.
    """
    panels = 2 if labels is not None else 1
    fig, axes = new_figure(1, panels, width=3.6, height=3.0)
    _scatter_groups(axes[0, 0], Y, clusters, f"{method}: clusters")
    if labels is not None:
        _scatter_groups(axes[0, 1], Y, labels, f"{method}: true labels")
    if title:
        fig.suptitle(title)
    return fig


def matched_contingency(labels_true: Sequence[Any], labels_pred: Sequence[Any]) -> pd.DataFrame:
    """Counts classes × clusters with the clusters reordered to match the classes (Hungarian).

    The cluster matched to the i-th class comes i-th; unmatched clusters follow, largest first.

    Returns
    -------
    DataFrame of shape (n_classes, n_clusters); index: classes (natural order), columns: clusters.
    """
    table = pd.crosstab(pd.Series(np.asarray(labels_true).astype(str), name="class"),
                        pd.Series(np.asarray(labels_pred), name="cluster"))
    table = table.loc[sorted(table.index, key=_natural)]
    rows, cols = linear_sum_assignment(table.to_numpy(), maximize=True)
    matched = [table.columns[c] for _, c in sorted(zip(rows, cols))]
    rest = [c for c in table.sum(axis=0).sort_values(ascending=False).index if c not in matched]
    return table[matched + rest]


@styled
def contingency_heatmap(labels_true: Sequence[Any], labels_pred: Sequence[Any], title: str = "") -> Figure:
    """Heat-map of classes (rows) × clusters (columns, matched order); counts written in the cells.

    Parameters
    ----------
    labels_true, labels_pred : array-like of shape (n_samples,)
    """
    table = matched_contingency(labels_true, labels_pred)
    n_rows, n_cols = table.shape
    fig, axes = new_figure(width=max(3.0, 0.45 * n_cols + 1.5), height=max(2.5, 0.35 * n_rows + 1.0))
    ax = axes[0, 0]
    values = table.to_numpy()
    image = ax.imshow(values, cmap=HEATMAP, aspect="auto")
    ax.grid(False)
    ax.set_xticks(range(n_cols), [("noise" if str(c) == "-1" else str(c)) for c in table.columns])
    ax.set_yticks(range(n_rows), [str(i) for i in table.index])
    ax.set_xlabel("cluster (matched order)")
    ax.set_ylabel("true label")
    if n_rows * n_cols <= 400:
        threshold = values.max() / 2 if values.size else 0
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=6,
                    color="black" if v > threshold else "white")
    fig.colorbar(image, ax=ax, label="files")
    ax.set_title(title)
    return fig


@styled
def dendrogram(X: np.ndarray, linkage: str = "ward", n_clusters: int | None = None, title: str = "",
               truncate: int = 40) -> Figure:
    """Dendrogram of agglomerative clustering (scipy), cut height for ``n_clusters`` dashed.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    linkage : ``ward`` | ``complete`` | ``average`` | ``single``
    n_clusters : int or None
    truncate : show the last ``truncate`` merges (leaf counts in brackets).
    """
    from scipy.cluster import hierarchy

    Z = hierarchy.linkage(np.asarray(X, dtype=np.float64), method=linkage)
    fig, axes = new_figure(width=6.0, height=3.0)
    ax = axes[0, 0]
    hierarchy.dendrogram(Z, ax=ax, truncate_mode="lastp", p=truncate, color_threshold=0,
                         above_threshold_color=LINE, no_labels=False, leaf_font_size=6)
    if n_clusters and 1 < n_clusters <= Z.shape[0]:
        # a cut between the (n-k)-th and the next merge gives k clusters
        heights = Z[:, 2]
        cut = (heights[-n_clusters] + heights[-n_clusters + 1]) / 2
        ax.axhline(cut, color=MARK, linestyle="--", linewidth=1, label=f"k = {n_clusters}")
        ax.legend(loc="upper right")
    ax.set_ylabel(f"merge distance ({linkage})")
    ax.grid(False, axis="x")
    ax.set_title(title)
    return fig


@styled
def membership_histogram(u: np.ndarray, title: str = "") -> Figure:
    """Fuzzy C-Means memberships: histogram of each sample's largest membership.

    Parameters
    ----------
    u : ndarray of shape (n_clusters, n_samples)
        Memberships (columns sum to 1); 1/n_clusters is the fuzziest possible value, dashed.
    """
    u = np.asarray(u, dtype=np.float64)
    fig, axes = new_figure(width=4.0, height=2.8)
    ax = axes[0, 0]
    ax.hist(u.max(axis=0), bins=np.linspace(0, 1, 41), color=LINE, edgecolor="white", linewidth=0.3)
    ax.axvline(1.0 / u.shape[0], color="black", linestyle="--", linewidth=0.8,
               label=f"1/c = {1.0 / u.shape[0]:.2f}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("largest membership of a file")
    ax.set_ylabel("files")
    ax.legend(loc="upper left")
    ax.set_title(title)
    return fig


# --------------------------------------------------------------------------- autoencoder (stage 05)

@styled
def loss_curves(metrics: pd.DataFrame, title: str = "") -> Figure:
    """Training and validation loss per epoch from a Lightning CSV log.

    Parameters
    ----------
    metrics : DataFrame
        ``metrics.csv`` of :class:`pytorch_lightning.loggers.CSVLogger`: ``epoch`` and
        ``train_loss`` / ``val_loss`` (epoch means; one of them per line).
    """
    fig, axes = new_figure(width=4.0, height=2.8)
    ax = axes[0, 0]
    for color, (col, name) in zip((LINE, MARK),
                                  (("train_loss", "training"), ("val_loss", "validation"))):
        if col in metrics.columns and metrics[col].notna().any():
            per_epoch = metrics.dropna(subset=[col]).groupby("epoch")[col].last()
            ax.plot(per_epoch.index + 1, per_epoch.to_numpy(), marker="o", color=color, label=name)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (MSE per pixel)")
    ax.legend(loc="upper right")
    if title:
        fig.suptitle(title)
    return fig


@styled
def reconstruction_grid(rows: dict[str, Any], names: list[str], title: str = "") -> Figure:
    """Images side by side: one column per example, one row per version (input, reconstructions).

    Parameters
    ----------
    rows : dict name -> array (or tensor) of shape (n_examples, 1, T, F) or (n_examples, T, F)
        Drawn time along x, frequency (bin 0 at the bottom) along y, all on the colour
        range of the first row.
    names : the examples' titles (length n_examples).
    """
    arrays = {name: np.asarray(images, dtype=np.float32).reshape(len(names), *np.shape(images)[-2:])
              for name, images in rows.items()}
    first = next(iter(arrays.values()))
    vmin, vmax = float(first.min()), float(first.max())
    fig, axes = new_figure(len(arrays), len(names), width=1.5, height=1.3)
    for r, (row_name, images) in enumerate(arrays.items()):
        for c, name in enumerate(names):
            ax = axes[r, c]
            ax.imshow(images[c].T, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap=SEQUENTIAL)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if r == 0:
                ax.set_title(name)
            if c == 0:
                ax.set_ylabel(row_name)
    if title:
        fig.suptitle(title)
    return fig


@styled
def dcec_history(history: pd.DataFrame, tol: float, title: str = "") -> Figure:
    """DCEC per target update: share of labels changed (stop threshold dashed), MSE and KL.

    Updates that left a cluster empty (the collapse guard's trigger) are crossed in the first panel.

    Parameters
    ----------
    history : DataFrame with ``iteration, delta_label, n_clusters, loss, recon, kl``
        (:attr:`audioclust.dcec.DCECResult.history`; ``n_clusters`` optional).
    tol : the stop threshold (a share).
    """
    fig, axes = new_figure(1, 3, width=2.6, height=2.4)
    x = history["iteration"].to_numpy()
    ax = axes[0, 0]
    delta = 100 * history["delta_label"].to_numpy()
    ax.plot(x, delta, marker="o", color=LINE)
    if "n_clusters" in history.columns:
        lost = (history["n_clusters"] < history["n_clusters"].max()).to_numpy()
        if lost.any():
            ax.plot(x[lost], delta[lost], linestyle="none", marker="X", markersize=8, color=MARK,
                    label="a cluster emptied")
    ax.axhline(100 * tol, color="black", linestyle="--", linewidth=0.8, label=f"tol {100 * tol:g} %")
    ax.set_ylabel("labels changed (%)")
    ax.legend(loc="upper right")
    for ax, (col, name, color) in zip(axes[0, 1:], (("recon", "reconstruction MSE", LINE),
                                                   ("kl", "KL(P‖Q)", MARK))):
        ax.plot(x, history[col].to_numpy(), marker="o", color=color)
        ax.set_ylabel(f"{name} (mean since last update)")
    for ax in axes[0]:
        ax.set_xlabel("iteration (batches)")
    if title:
        fig.suptitle(title)
    return fig


@styled
def latent_size_curve(results: pd.DataFrame, names: dict[str, str] | None = None, title: str = "") -> Figure:
    """Reconstruction MSE (and NMI when there are labels) against the latent size, per feature and stage.

    Parameters
    ----------
    results : the stage-05 results (``feature, stage, latent_dim, recon_mse, nmi``).
    names : how the legend names each stage (default: the stage itself).
    """
    with_nmi = results["nmi"].notna().any()
    fig, axes = new_figure(1, 2 if with_nmi else 1, width=3.6, height=2.8)
    dims = sorted(results["latent_dim"].unique())
    panels = [("recon_mse", "reconstruction MSE (all files)")] + ([("nmi", "NMI")] if with_nmi else [])
    for ax, (col, name) in zip(axes[0], panels):
        for i, ((feature, stage), part) in enumerate(results.groupby(["feature", "stage"], sort=False)):
            part = part.sort_values("latent_dim")
            st = category_style(i)
            ax.plot(part["latent_dim"], part[col], marker=st["marker"], color=st["color"],
                    label=f"{feature}, {(names or {}).get(stage, stage)}")
        ax.set_xscale("log")
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.minorticks_off()
        ax.set_xlabel("latent size")
        ax.set_ylabel(name)
    axes[0, -1].legend(loc="best")
    if title:
        fig.suptitle(title)
    return fig


def example_indices(labels: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` sample indices: the first file of each label (labels in order of appearance), else spread evenly."""
    first = pd.Series(np.arange(len(labels)))[pd.Series(labels) != ""].groupby(pd.Series(labels)).min()
    chosen = sorted(first.to_numpy())[:n] if len(first) >= 2 else []
    if len(chosen) < n:
        rest = [i for i in np.linspace(0, len(labels) - 1, n).round().astype(int) if i not in chosen]
        chosen = sorted({*chosen, *rest[:n - len(chosen)]})
    return np.asarray(chosen, dtype=int)


__all__ = ['example_indices']
