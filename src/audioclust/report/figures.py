"""Every figure of the pipeline, in one style, sized for a page, saved as PNG (300 dpi) and PDF.

Figures are made with :class:`matplotlib.figure.Figure` on the Agg canvas directly, never
through pyplot's global state: the package works headless, a long run leaks no figures,
and in a notebook a returned figure is still shown (IPython renders ``Figure`` objects).

Style
    :data:`STYLE` (matplotlib rcParams) is applied by :func:`style` around the making and
    the saving of each figure; :func:`new_figure` opens one. Sequential values use
    ``viridis``/``cividis``; categories use the Okabe–Ito palette (:data:`OKABE_ITO`,
    colour-blind safe, in :data:`CATEGORICAL` order), and beyond its 8 colours the marker
    shape changes too, so more categories stay distinguishable (:func:`category_style`).

Page sizes
    Figures are made at the size they are printed: one column (:data:`COLUMN_WIDTH`, 3.5 in)
    or the text width (:data:`PAGE_WIDTH`, 7 in), never wider, with no text below 7 pt
    (:data:`MIN_FONT_SIZE`). Legends sit outside the data: below the axes, beside them, or in
    a spare panel of a grid. Titles and labels are words (:mod:`audioclust.report.names`).

Saving
    :func:`save_figure` writes ``<path>.png`` and ``<path>.pdf`` (TrueType fonts embedded)
    atomically, closes the figure and returns both paths.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import re
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, LogFormatterSciNotation, MaxNLocator, ScalarFormatter
from scipy.optimize import linear_sum_assignment

from audioclust.core.paths import ProjectPaths, label_folder
from audioclust.core.storage import write_bytes
from audioclust.report import names as naming

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

#: line styles of curves that may lie on top of each other: each stays visible
LINESTYLES: tuple[Any, ...] = ("-", "--", ":", "-.")

#: noise points (cluster -1): grey crosses
NOISE_STYLE: dict[str, str] = {"color": "#999999", "marker": "x"}

#: clusters matched to no label: hollow markers in greys no label uses
UNMATCHED_GREYS: tuple[str, ...] = ("#404040", "#7F7F7F", "#A6A6A6")

#: files without a label in a label panel
UNLABELLED_GREY = "#CCCCCC"

#: colour map of sequential values (counts, memberships, spectrograms)
SEQUENTIAL = "viridis"

#: colour map of heat-maps read in print (perceptually uniform, colour-blind safe)
HEATMAP = "cividis"

#: resolution of the PNG files
DPI = 300

#: width in inches of a figure in one column of a page, and of one across the text width
COLUMN_WIDTH, PAGE_WIDTH = 3.5, 7.0

#: smallest font size (pt) of any text at the printed size
MIN_FONT_SIZE = 7.0

STYLE: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "legend.frameon": False,
    "figure.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "image.cmap": SEQUENTIAL,
    "axes.prop_cycle": matplotlib.cycler(color=list(CATEGORICAL)),
    # layout="constrained" (new_figure) fits labels and outside legends; a tight bbox would draw everything twice
    "savefig.bbox": None,
    "pdf.fonttype": 42,  # TrueType embedded in the PDF: text stays editable and searchable
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


def new_figure(nrows: int = 1, ncols: int = 1, width: float = COLUMN_WIDTH, height: float = 2.6,
               **subplot_kw: Any) -> tuple[Figure, Any]:
    """A figure on the Agg canvas and its axes (``squeeze=False``: always a 2-D array of axes).

    Parameters
    ----------
    nrows, ncols : grid of axes.
    width, height : size of the whole figure in inches, as printed: :data:`COLUMN_WIDTH` or
        :data:`PAGE_WIDTH` wide (at most).

    Raises
    ------
    ValueError
        For a width above :data:`PAGE_WIDTH`: it would be shrunk on the page, and its text with it.
    """
    if width > PAGE_WIDTH + 1e-9:
        raise ValueError(f"figure width {width} in > {PAGE_WIDTH} in: it would not fit the text width")
    with style():
        fig = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def save_figure(fig: Figure, path: str | Path) -> list[Path]:
    """Write ``<path>.png`` (300 dpi) and ``<path>.pdf`` atomically, close the figure.

    Parameters
    ----------
    fig : Figure
    path : path without suffix; ``.png`` and ``.pdf`` are appended (file names:
        :func:`audioclust.report.names.figure_stem`).

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


def wrapped(text: str, width: float, size: float = 8.0) -> str:
    """``text`` broken into lines that fit ``width`` inches at ``size`` pt (a glyph is about 0.55 em wide),
    preferably after a comma or colon, so "k = 6" or "(m = 1.2)" stays on one line."""
    chars = max(20, int(width * 72 / (0.55 * size)))
    if len(text) <= chars:
        return text
    lines = [""]
    for part in re.split(r"(?<=[,:]) ", text):
        if lines[-1] and len(lines[-1]) + 1 + len(part) > chars:
            lines.append(part)
        else:
            lines[-1] = f"{lines[-1]} {part}" if lines[-1] else part
    return "\n".join(textwrap.fill(line, chars, break_on_hyphens=False) for line in lines)


def _suptitle(fig: Figure, title: str) -> None:
    if title:
        fig.suptitle(wrapped(title, fig.get_figwidth() - 0.2, STYLE["figure.titlesize"]))


class _PlainLogFormatter(LogFormatterSciNotation):
    """Log-axis labels as plain numbers (0.03, not 3×10⁻²) on the ticks matplotlib would label."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:.3g}" if super().__call__(x, pos) else ""


def _plain_log_labels(axis: Any) -> None:
    axis.set_major_formatter(_PlainLogFormatter())
    axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _legend_below(fig: Figure, handles: list[Any], labels: list[str], ncols: int = 1, **kw: Any) -> None:
    """One legend under the axes (constrained layout makes room): it never covers data."""
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, **kw)


# --------------------------------------------------------------------------- stage 04

#: two cumulative curves closer than this everywhere look as one line at print size (~1 pt apart)
SAME_CURVE = 0.01


@styled
def explained_variance(ratios: dict[str, np.ndarray], kept: dict[str, int | None] | None = None,
                       title: str = "", max_components: int = 200) -> Figure:
    """Cumulative explained variance against the number of PCA components, one line per view.

    Views whose curves coincide (within :data:`SAME_CURVE`, the same components kept; the
    arrays and the PNG images of one feature often do) share one line and one legend entry
    naming both sources; the other lines differ in colour, line style and marker, so a line
    on top of another stays visible.

    Parameters
    ----------
    ratios : dict view id -> ndarray of shape (n_components,)
        Explained-variance ratios (decreasing).
    kept : dict view id -> int or None
        Components kept by the view (a marker on its line).
    max_components : int
        x-axis limit.
    """
    kept = kept or {}
    curves = {view: np.cumsum(ratio)[:max_components] for view, ratio in ratios.items()}
    groups: list[list[str]] = []
    for view, cum in curves.items():
        same = next((g for g in groups if curves[g[0]].shape == cum.shape and kept.get(g[0]) == kept.get(view)
                     and np.max(np.abs(curves[g[0]] - cum), initial=0.0) <= SAME_CURVE), None)
        if same is None:
            groups.append([view])
        else:
            same.append(view)
    fig, axes = new_figure(width=COLUMN_WIDTH, height=2.3 + 0.16 * len(groups))
    ax = axes[0, 0]
    handles = []
    for i, group in enumerate(groups):
        cum = curves[group[0]]
        colour, marker, linestyle = CATEGORICAL[i % len(CATEGORICAL)], MARKERS[i % len(MARKERS)], LINESTYLES[i % 4]
        ax.plot(np.arange(1, cum.size + 1), cum, color=colour, linestyle=linestyle, label=naming.views_name(group))
        n = kept.get(group[0])
        if n:
            ax.plot([n], [np.cumsum(ratios[group[0]])[n - 1]], marker=marker, color=colour, markersize=5,
                    markeredgecolor="black", markeredgewidth=0.5, linestyle="none")
        handles.append(Line2D([], [], color=colour, linestyle=linestyle, marker=marker if n else None,
                              markersize=5, markeredgecolor="black", markeredgewidth=0.5))
    ax.set_xlabel("number of PCA components")
    ax.set_ylabel("cumulative explained variance")
    ax.set_ylim(0, 1.02)
    ax.set_xscale("log")
    longest = max(c.size for c in curves.values()) if curves else 1
    ax.set_xticks([t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500) if t <= longest] or [1])
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(FixedLocator([]))
    ax.set_title(wrapped(title, COLUMN_WIDTH - 0.3))
    _legend_below(fig, handles, [naming.views_name(g) for g in groups], title="view (marker: components kept)")
    return fig


#: criteria of the k-selection table: column, panel title (with the direction of the best value), axis label
K_CRITERIA: tuple[tuple[str, str, str], ...] = (
    ("inertia", "Inertia (elbow)", "within-cluster sum of squares"),
    ("silhouette", "Silhouette (max)", "mean silhouette"),
    ("davies_bouldin", "Davies–Bouldin (min)", "Davies–Bouldin index"),
    ("calinski_harabasz", "Calinski–Harabasz (max)", "Calinski–Harabasz index"),
    ("gap", "Gap statistic", "gap"))

_CHOICE_OF = {"inertia": "elbow"}


@styled
def k_selection(table: pd.DataFrame, choices: dict[str, int], consensus: int | None = None,
                title: str = "") -> Figure:
    """One panel per criterion against k (a grid of up to three columns, the text width), each
    criterion's choice starred, the consensus k dashed; the legend in the grid's spare panel or below.

    Parameters
    ----------
    table : DataFrame
        Column ``k``, ``inertia`` (always computed) and any of ``silhouette, davies_bouldin, calinski_harabasz,
        gap`` (+ ``gap_s``).
    choices : dict criterion -> k (``elbow`` for the inertia panel).
    consensus : int or None
    """
    present = [c for c in K_CRITERIA if c[0] in table.columns]
    ncols = min(3, len(present))
    nrows = math.ceil(len(present) / ncols)
    fig, axes = new_figure(nrows, ncols, width=PAGE_WIDTH if ncols > 1 else COLUMN_WIDTH,
                           height=1.75 * nrows + 0.75)
    k = table["k"].to_numpy()
    for ax, (col, name, quantity) in zip(axes.flat, present):
        y = table[col].to_numpy(dtype=float)
        if col == "gap" and "gap_s" in table.columns:
            ax.errorbar(k, y, yerr=table["gap_s"].to_numpy(dtype=float), color=LINE, marker="o", capsize=2)
        else:
            ax.plot(k, y, color=LINE, marker="o")
        chosen = choices.get(_CHOICE_OF.get(col, col))
        if chosen is not None and chosen in k:
            ax.plot([chosen], [y[list(k).index(chosen)]], marker="*", markersize=10, color=MARK, linestyle="none")
        if consensus is not None:
            ax.axvline(consensus, color="black", linestyle="--", linewidth=0.8)
        ax.set_xlabel("number of clusters k")
        ax.set_ylabel(quantity)
        ax.set_title(name)
        ax.set_xticks(k)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4), useMathText=True)
    handles = [Line2D([], [], marker="*", markersize=10, color=MARK, linestyle="none")]
    labels = ["the criterion's choice"]
    if consensus is not None:
        handles.append(Line2D([], [], color="black", linestyle="--", linewidth=0.8))
        labels.append(f"consensus: k = {consensus}")
    spare = list(axes.flat[len(present):])
    for ax in spare:
        ax.set_axis_off()
    if spare:
        spare[0].legend(handles, labels, loc="center")
    else:
        _legend_below(fig, handles, labels, ncols=2)
    _suptitle(fig, f"Choice of k: {title}" if title else "Choice of k")
    return fig


def _natural(value: str) -> tuple:
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _cluster_styles(clusters: np.ndarray, labels: np.ndarray | None, label_styles: dict[str, dict[str, Any]]
                    ) -> dict[str, tuple[str, dict[str, Any]]]:
    """Legend text and style of each cluster (strings, ``-1`` noise), in legend order.

    With labels, the clusters matched to labels (Hungarian on the counts of the labelled files,
    a match needs a shared file) take that label's colour and marker, in the labels' order; the
    others get hollow grey markers that no label uses. Without labels, the palette in cluster order.
    """
    ids = sorted(set(clusters) - {"-1"}, key=_natural)
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    matched: dict[str, str] = {}
    if labels is not None:
        keep = (labels != "") & (clusters != "-1")
        if keep.any():
            table = pd.crosstab(labels[keep], clusters[keep])
            rows, cols = linear_sum_assignment(table.to_numpy(), maximize=True)
            matched = {str(table.columns[c]): str(table.index[r]) for r, c in zip(rows, cols) if table.iat[r, c] > 0}
        order = list(label_styles)
        for c in sorted(matched, key=lambda c: order.index(matched[c])):
            out[c] = (f"{c} ({matched[c]})", {**label_styles[matched[c]]})
        rest = [c for c in ids if c not in matched]
        for j, c in enumerate(rest):
            out[c] = (c, {"edgecolors": UNMATCHED_GREYS[j % len(UNMATCHED_GREYS)], "facecolors": "none",
                          "marker": MARKERS[(j // len(UNMATCHED_GREYS)) % len(MARKERS)], "linewidths": 0.7})
    else:
        for i, c in enumerate(ids):
            out[c] = (c, category_style(i))
    if "-1" in set(clusters):
        out["-1"] = ("noise", {**NOISE_STYLE, "linewidths": 0.6})
    return out


#: how the axes of a 2-D projection are named
AXIS_NAMES = {"PCA": "PC"}


def _scatter_panel(ax, Y: np.ndarray, groups: np.ndarray, styles: dict[str, tuple[str, dict[str, Any]]],
                   name: str, method: str, legend_title: str) -> None:
    for value, (text, st) in styles.items():
        mask = groups == value
        st = dict(st)
        if "color" in st and st.get("marker") != "x":
            st.setdefault("linewidths", 0)
        # rasterised points: a PDF of thousands of markers stays small and quick to open
        ax.scatter(Y[mask, 0], Y[mask, 1], s=9, alpha=0.85, label=text, rasterized=True, **st)
    ax.set_title(name)
    axis = AXIS_NAMES.get(method, method)
    ax.set_xlabel(f"{axis} 1")
    ax.set_ylabel(f"{axis} 2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)                    # embedding axes have no units
    ax.spines[["left", "bottom"]].set_visible(True)
    ax.grid(False)
    if len(styles) <= 20:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, markerscale=1.8,
                  handletextpad=0.2, title=legend_title, alignment="left")


@styled
def scatter_2d(Y: np.ndarray, clusters: np.ndarray | None = None, labels: np.ndarray | None = None,
               method: str = "PCA", title: str = "") -> Figure:
    """2-D embedding coloured by cluster and, when given, by label (side by side, the text width).

    Colours mean the same in both panels: each label has a colour and marker; a cluster
    matched to a label (Hungarian matching of the counts) is drawn in that label's colour and
    marker, a cluster matched to none in hollow grey, noise (``-1``) as grey crosses. Without
    labels the clusters take the palette in order. Legends sit beside the panels.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, 2)
    clusters : ndarray of shape (n_samples,), or None for the label panel alone.
    labels : ndarray of shape (n_samples,) or None; ``""`` is an unlabelled file (light grey).
    method : axis naming, e.g. ``PCA`` or ``t-SNE``.
    """
    if clusters is None and labels is None:
        raise ValueError("scatter_2d needs clusters, labels or both")
    label_values = None if labels is None else pd.Series(labels).fillna("").astype(str).to_numpy()
    panels = []
    label_styles: dict[str, dict[str, Any]] = {}
    if label_values is not None:
        order = sorted(set(label_values) - {""}, key=_natural)
        label_styles = {lab: category_style(i) for i, lab in enumerate(order)}
    if clusters is not None:
        groups = pd.Series(clusters).astype(str).to_numpy()
        known = label_values if label_styles else None   # no labelled file: nothing to match
        panels.append((groups, _cluster_styles(groups, known, label_styles), "Clusters",
                       "cluster (matched label)" if known is not None else "cluster"))
    if label_values is not None:
        styles: dict[str, tuple[str, dict[str, Any]]] = {}
        if (label_values == "").any():  # drawn first: the labelled files on top
            styles[""] = ("unlabelled", {"color": UNLABELLED_GREY, "marker": "o"})
        styles.update({lab: (lab, st) for lab, st in label_styles.items()})
        panels.append((label_values, styles, "Labels", "label"))
    width = PAGE_WIDTH if len(panels) == 2 else COLUMN_WIDTH
    fig, axes = new_figure(1, len(panels), width=width, height=2.9)
    for ax, (groups, styles, name, legend_title) in zip(axes[0], panels):
        _scatter_panel(ax, Y, groups, styles, name, method, legend_title)
    if len(panels) == 2:  # the same points: the same limits
        axes[0, 1].set_xlim(axes[0, 0].get_xlim())
        axes[0, 1].set_ylim(axes[0, 0].get_ylim())
    _suptitle(fig, title)
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


#: cells smaller than this (inches) get no count written in them: 7 pt digits would not fit
_MIN_CELL = 0.2


@styled
def contingency_heatmap(labels_true: Sequence[Any], labels_pred: Sequence[Any], title: str = "") -> Figure:
    """Heat-map of labels (rows) × clusters (columns, matched order); counts written in the cells.

    Parameters
    ----------
    labels_true, labels_pred : array-like of shape (n_samples,)
    """
    table = matched_contingency(labels_true, labels_pred)
    n_rows, n_cols = table.shape
    width = min(PAGE_WIDTH, max(COLUMN_WIDTH, 0.3 * n_cols + 2.2))
    fig, axes = new_figure(width=width, height=min(9.0, max(2.4, 0.22 * n_rows + 1.3)))
    ax = axes[0, 0]
    values = table.to_numpy()
    image = ax.imshow(values, cmap=HEATMAP, aspect="auto")
    ax.grid(False)
    ax.set_xticks(range(n_cols), [("noise" if str(c) == "-1" else str(c)) for c in table.columns],
                  rotation=90 if n_cols > 12 else 0)
    ax.set_yticks(range(n_rows), [str(i) for i in table.index])
    ax.set_xlabel("cluster (in the order matched to the labels)")
    ax.set_ylabel("label")
    cell = min((width - 1.8) / max(n_cols, 1), (fig.get_figheight() - 1.0) / max(n_rows, 1))
    if cell >= _MIN_CELL:
        threshold = values.max() / 2 if values.size else 0
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=MIN_FONT_SIZE,
                    color="black" if v > threshold else "white")
    fig.colorbar(image, ax=ax, label="files")
    ax.set_title(wrapped(title, width - 0.6))
    return fig


#: how the dendrogram's leaves are read
LEAF_NOTE = "leaves: a number is one file (its row in labels.csv, from 0); (n) is n files merged below"


@styled
def dendrogram(X: np.ndarray, linkage: str = "ward", n_clusters: int | None = None, title: str = "",
               truncate: int = 40) -> Figure:
    """Dendrogram of agglomerative clustering (scipy), cut height for ``n_clusters`` dashed.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    linkage : ``ward`` | ``complete`` | ``average`` | ``single``
    n_clusters : int or None
    truncate : show the last ``truncate`` merges (leaf counts in brackets: :data:`LEAF_NOTE`).
    """
    from scipy.cluster import hierarchy

    Z = hierarchy.linkage(np.asarray(X, dtype=np.float64), method=linkage)
    fig, axes = new_figure(width=PAGE_WIDTH, height=2.8)
    ax = axes[0, 0]
    hierarchy.dendrogram(Z, ax=ax, truncate_mode="lastp", p=truncate, color_threshold=0,
                         above_threshold_color=LINE, no_labels=False, leaf_font_size=MIN_FONT_SIZE,
                         leaf_rotation=90)
    if n_clusters and 1 < n_clusters <= Z.shape[0]:
        # a cut between the (n-k)-th and the next merge gives k clusters
        heights = Z[:, 2]
        cut = (heights[-n_clusters] + heights[-n_clusters + 1]) / 2
        ax.axhline(cut, color=MARK, linestyle="--", linewidth=1, label=f"cut for k = {n_clusters}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), borderaxespad=0)
    ax.set_ylabel(f"merge distance ({linkage} linkage)")
    ax.set_xlabel(LEAF_NOTE)
    ax.grid(False, axis="x")
    ax.set_title(wrapped(title, PAGE_WIDTH - 1.5))
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
    fig, axes = new_figure(width=COLUMN_WIDTH, height=2.7)
    ax = axes[0, 0]
    ax.hist(u.max(axis=0), bins=np.linspace(0, 1, 41), color=LINE, edgecolor="white", linewidth=0.3)
    line = ax.axvline(1.0 / u.shape[0], color="black", linestyle="--", linewidth=0.8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("largest membership of a file")
    ax.set_ylabel("files")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(wrapped(title, COLUMN_WIDTH - 0.3))
    _legend_below(fig, [line], [f"1/c = {1.0 / u.shape[0]:.2f}: equal membership in all {u.shape[0]} clusters"])
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
    fig, axes = new_figure(width=COLUMN_WIDTH, height=2.6)
    ax = axes[0, 0]
    for color, marker, (col, name) in zip((LINE, MARK), ("o", "s"),
                                          (("train_loss", "training"), ("val_loss", "validation"))):
        if col in metrics.columns and metrics[col].notna().any():
            per_epoch = metrics.dropna(subset=[col]).groupby("epoch")[col].last()
            ax.plot(per_epoch.index + 1, per_epoch.to_numpy(), marker=marker, color=color, label=name)
    ax.set_yscale("log")
    _plain_log_labels(ax.yaxis)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (MSE per pixel)")
    ax.set_title(wrapped(f"Training loss: {title}" if title else "Training loss", COLUMN_WIDTH - 0.3))
    handles, labels = ax.get_legend_handles_labels()
    _legend_below(fig, handles, labels, ncols=2)
    return fig


#: what the rows of a feature's image are (the autoencoder's input: trimmed and resized, so in bins, not Hz)
IMAGE_AXES: dict[str, str] = {"spectrogram": "frequency bin", "mel": "mel band", "chroma": "pitch class",
                              "mfcc": "MFCC coefficient", "mfcc_no_c0": "MFCC coefficient"}


@styled
def reconstruction_grid(rows: dict[str, Any], names: list[str], title: str = "", feature: str = "") -> Figure:
    """Images side by side: one column per example, one row per version (input, reconstructions).

    Parameters
    ----------
    rows : dict name -> array (or tensor) of shape (n_examples, 1, T, F) or (n_examples, T, F)
        Drawn time along x, the feature's bins (bin 0 at the bottom) along y, all on the colour
        range of the first row (one colour bar).
    names : the examples' titles (length n_examples).
    feature : the feature the images show (names the y axis: :data:`IMAGE_AXES`).
    """
    arrays = {name: np.asarray(images, dtype=np.float32).reshape(len(names), *np.shape(images)[-2:])
              for name, images in rows.items()}
    first = next(iter(arrays.values()))
    vmin, vmax = float(first.min()), float(first.max())
    fig, axes = new_figure(len(arrays), len(names), width=PAGE_WIDTH, height=0.95 * len(arrays) + 0.9)
    image = None
    for r, (row_name, images) in enumerate(arrays.items()):
        for c, name in enumerate(names):
            ax = axes[r, c]
            image = ax.imshow(images[c].T, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap=SEQUENTIAL)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if r == 0:
                ax.set_title(wrapped(name, PAGE_WIDTH / len(names), 8))
            if c == 0:
                ax.set_ylabel(row_name)
    fig.supxlabel(f"time → (each image resized to {first.shape[1]} frames)", fontsize=STYLE["axes.labelsize"])
    fig.supylabel(f"{IMAGE_AXES.get(feature, 'bin')} →", fontsize=STYLE["axes.labelsize"])
    fig.colorbar(image, ax=axes, label="scaled input (0–1)", shrink=0.9, aspect=25)
    _suptitle(fig, f"Inputs and reconstructions: {title}" if title else "Inputs and reconstructions")
    return fig


@styled
def dcec_history(history: pd.DataFrame, tol: float, title: str = "", tol_files: int = 0,
                 n_samples: int | None = None) -> Figure:
    """DCEC per target update: share of labels changed (stop threshold dashed), MSE and KL.

    Updates that left a cluster empty (the collapse guard's trigger) are crossed in the first panel.

    Parameters
    ----------
    history : DataFrame with ``iteration, delta_label, n_clusters, loss, recon, kl``
        (:attr:`audioclust.dcec.DCECResult.history`; ``n_clusters`` optional).
    tol : the stop threshold (a share).
    tol_files, n_samples : the stop floor in files and the number of samples; the line is drawn at the floor's
        share when it is above ``tol`` (0 or no ``n_samples``: at ``tol``).
    """
    fig, axes = new_figure(1, 3, width=PAGE_WIDTH, height=2.5, sharex=True)  # the losses start one update later
    x = history["iteration"].to_numpy()
    ax = axes[0, 0]
    delta = 100 * history["delta_label"].to_numpy()
    ax.plot(x, delta, marker="o", color=LINE)
    floor = tol_files / n_samples if tol_files and n_samples else 0.0
    threshold = max(tol, floor)
    handles = [ax.axhline(100 * threshold, color="black", linestyle="--", linewidth=0.8)]
    labels = [f"stop threshold ({100 * tol:g} %)" if floor <= tol else
              f"stop threshold (at most {tol_files} file{'s' if tol_files > 1 else ''}: {100 * floor:.2g} %)"]
    if "n_clusters" in history.columns:
        lost = (history["n_clusters"] < history["n_clusters"].max()).to_numpy()
        if lost.any():
            handles += ax.plot(x[lost], delta[lost], linestyle="none", marker="X", markersize=7, color=MARK,
                               label="a cluster emptied")
            labels.append("an update that emptied a cluster")
    ax.set_ylabel("labels changed (%)")
    ax.set_title("Labels changed")
    # the losses are means over the batches since the previous update
    for ax, (col, name, quantity, color) in zip(axes[0, 1:], (
            ("recon", "Reconstruction loss", "mean MSE per pixel", LINE),
            ("kl", "Clustering loss", "mean KL(P‖Q)", MARK))):
        ax.plot(x, history[col].to_numpy(), marker="o", color=color)
        ax.set_ylabel(quantity)
        ax.set_title(name)
    for ax in axes[0]:
        ax.set_xlabel("iteration (batches)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend_below(fig, handles, labels, ncols=len(handles))
    _suptitle(fig, f"DCEC clustering stage: {title}" if title else "DCEC clustering stage")
    return fig


@styled
def latent_size_curve(results: pd.DataFrame, names: dict[str, str] | None = None, title: str = "") -> Figure:
    """Reconstruction MSE (and NMI when there are labels) against the latent size, per feature and stage.

    Parameters
    ----------
    results : the stage-05 results (``feature, stage, latent_dim, recon_mse, nmi``).
    names : how the legend names each stage (default: :func:`audioclust.report.names.algorithm_name`).
    """
    with_nmi = results["nmi"].notna().any()
    fig, axes = new_figure(1, 2 if with_nmi else 1, width=PAGE_WIDTH if with_nmi else COLUMN_WIDTH, height=2.8)
    dims = sorted(results["latent_dim"].unique())
    panels = [("recon_mse", "Reconstruction error", "MSE per pixel (all files)")]
    if with_nmi:
        panels.append(("nmi", "Agreement with the labels", "NMI"))
    handles, labels = [], []
    for ax, (col, name, quantity) in zip(axes[0], panels):
        for i, ((feature, stage), part) in enumerate(results.groupby(["feature", "stage"], sort=False)):
            part = part.sort_values("latent_dim")
            st = category_style(i)
            line, = ax.plot(part["latent_dim"], part[col], marker=st["marker"], color=st["color"],
                            linestyle=LINESTYLES[i % len(LINESTYLES)],
                            label=f"{naming.feature_name(feature)}, "
                                  f"{(names or {}).get(stage) or naming.algorithm_name(stage)}")
            if ax is axes[0, 0]:
                handles.append(line)
                labels.append(line.get_label())
        ax.set_xscale("log")
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.minorticks_off()
        ax.set_xlabel("latent size")
        ax.set_ylabel(quantity)
        ax.set_title(name)
    _legend_below(fig, handles, labels, ncols=min(3, len(handles)))
    _suptitle(fig, f"Latent size: {title}" if title else "Latent size")
    return fig


def example_indices(labels: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` sample indices: the first file of each label (labels in order of appearance), else spread evenly."""
    first = pd.Series(np.arange(len(labels)))[pd.Series(labels) != ""].groupby(pd.Series(labels)).min()
    chosen = sorted(first.to_numpy())[:n] if len(first) >= 2 else []
    if len(chosen) < n:
        rest = [i for i in np.linspace(0, len(labels) - 1, n).round().astype(int) if i not in chosen]
        chosen = sorted({*chosen, *rest[:n - len(chosen)]})
    return np.asarray(chosen, dtype=int)


# --------------------------------------------------------------------------- features (stage 03)

#: the rows of a 12-bin chromagram, row 0 = C
PITCH_CLASSES: tuple[str, ...] = ("C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B")

#: frequency ticks (Hz) of the spectrogram and mel panels: octaves
FREQUENCY_TICKS: tuple[int, ...] = (0, 500, 1000, 2000, 4000, 8000, 16000)

#: what a feature's values are, under its colour bar
FEATURE_UNITS: dict[str, str] = {"spectrogram": "level (dB)", "mel": "level (dB)",
                                 "chroma": "energy (max 1 per frame)", "mfcc": "coefficient (dB)",
                                 "mfcc_no_c0": "coefficient (dB)"}


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    return np.where(f < 1000.0, 3.0 * f / 200.0, 15.0 + 27.0 * np.log(np.maximum(f, 1000.0) / 1000.0) / np.log(6.4))


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m < 15.0, 200.0 * m / 3.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (np.maximum(m, 15.0) - 15.0)))


def example_arrays(paths: ProjectPaths, table: pd.DataFrame, features: Any, n: int = 4, source: str = "npy"
                   ) -> dict[str, dict[str, np.ndarray]]:
    """The stage-03 features of the first ok file of each of the first ``n`` labels.

    Parameters
    ----------
    paths : the project.
    table : ``features.csv`` (``label, stem``, ``status``).
    features : the ``features`` section of the config (``kinds``, ``png_ranges``).
    source : ``npy`` (the arrays) or ``png`` (the 8-bit images, mapped back with ``features.png_ranges``).

    Returns
    -------
    dict example name (its label, or its file name when unlabelled) -> dict kind -> ndarray of shape
    (n_bins, n_frames), row 0 = lowest bin; a kind whose file is missing is left out.
    """
    from audioclust.dsp.images import from_image, read_png

    ok = table[table["status"] == "ok"] if "status" in table.columns else table
    ok = ok.assign(label=ok["label"].fillna("").astype(str))
    out: dict[str, dict[str, np.ndarray]] = {}
    for _, row in ok.groupby("label", sort=False).head(1).head(n).iterrows():
        arrays = {}
        for kind in features.kinds:
            path = paths.feature_file(kind, label_folder(row["label"]), row["stem"], f".{source}")
            if not path.is_file():
                continue
            arrays[kind] = (np.load(path, allow_pickle=False) if source == "npy"
                            else from_image(read_png(path), vmin=features.png_ranges[kind][0],
                                            vmax=features.png_ranges[kind][1]))
        out[row["label"] or str(row["stem"])] = arrays
    return out


def _feature_axis(ax, kind: str, n_bins: int, features: Any, sr: int, fmax: float) -> np.ndarray:
    """The bin edges of a feature panel's y axis, its scale, ticks and label."""
    if kind in ("spectrogram", "mel"):
        if kind == "spectrogram":
            df = sr / (2 * (n_bins - 1))
            edges = np.clip((np.arange(n_bins + 1) - 0.5) * df, 0.0, sr / 2)
        else:
            edges = _mel_to_hz(np.linspace(_hz_to_mel(features.fmin), _hz_to_mel(fmax), n_bins + 1))
        # a mel-scaled axis with ticks in Hz: low frequencies get room, as the ear gives them
        ax.set_yscale("function", functions=(_hz_to_mel, _mel_to_hz))
        ticks = [f for f in FREQUENCY_TICKS if edges[0] <= f <= edges[-1]]
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.set_yticks(ticks, [f"{f // 1000}k" if f >= 1000 else str(f) for f in ticks])
        ax.yaxis.set_minor_locator(FixedLocator([]))
        ax.set_ylabel("frequency (Hz)")
        return edges
    edges = np.arange(n_bins + 1) - 0.5 + (1 if kind == "mfcc_no_c0" else 0)
    if kind == "chroma" and n_bins == len(PITCH_CLASSES):
        ax.set_yticks(range(0, 12, 2), PITCH_CLASSES[::2])
        ax.set_ylabel("pitch class")
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
        ax.set_ylabel("chroma bin" if kind == "chroma" else "MFCC coefficient")
    return edges


@styled
def feature_examples(arrays: Mapping[str, Mapping[str, np.ndarray]], features: Any, audio: Any,
                     title: str = "Features of one file per label") -> Figure:
    """Stage 03's features of a few files: one row per file, one column per feature, the text width.

    Time in seconds; spectrogram and mel-spectrogram on a mel-scaled frequency axis in Hz,
    chroma by pitch class, MFCC by coefficient. Each column has one colour range (the 1st to
    99th percentile of its values in these files, so the rows compare) and one colour bar
    with its unit.

    Parameters
    ----------
    arrays : dict file name -> dict kind -> ndarray of shape (n_bins, n_frames), row 0 = lowest bin
        (:func:`example_arrays`).
    features : the ``features`` section of the config (``kinds, hop_length, fmin, fmax``).
    audio : the ``audio`` section (``sample_rate``, ``cutoff``: the mel range's top when ``fmax`` is null).
    """
    from audioclust.dsp.features import resolve_fmax

    kinds = [k for k in features.kinds if any(k in a for a in arrays.values())]
    if not arrays or not kinds:
        raise ValueError("no feature arrays to draw: run stage 03 (audioclust extract) first")
    sr, hop = audio.sample_rate, features.hop_length
    fmax = resolve_fmax(features.fmax, sr=sr, cutoff=audio.cutoff)
    fig, axes = new_figure(len(arrays), len(kinds), width=PAGE_WIDTH, height=1.35 * len(arrays) + 1.0)
    for c, kind in enumerate(kinds):
        values = np.concatenate([np.ravel(a[kind]) for a in arrays.values() if kind in a])
        vmin, vmax = np.percentile(values, [1, 99])
        mesh = None
        for r, (name, by_kind) in enumerate(arrays.items()):
            ax = axes[r, c]
            ax.grid(False)
            if r == 0:
                ax.set_title(naming.feature_name(kind))
            arr = by_kind.get(kind)
            if arr is None:
                ax.set_axis_off()
                continue
            y_edges = _feature_axis(ax, kind, arr.shape[0], features, sr, fmax)
            t_edges = np.arange(arr.shape[1] + 1) * hop / sr
            mesh = ax.pcolormesh(t_edges, y_edges, arr, vmin=vmin, vmax=vmax, cmap=SEQUENTIAL, rasterized=True)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=3))
            ax.set_xlabel("time (s)")
            if c == 0:
                ax.set_ylabel(f"{name}\n{ax.get_ylabel()}")
        if mesh is not None:
            bar = fig.colorbar(mesh, ax=axes[:, c], location="bottom", label=FEATURE_UNITS.get(kind, "value"),
                               aspect=12, shrink=0.9)
            bar.locator = MaxNLocator(nbins=3)   # a bar 1 in long holds three labels
    _suptitle(fig, title)
    return fig


__all__ = ["CATEGORICAL", "COLUMN_WIDTH", "DPI", "HEATMAP", "MIN_FONT_SIZE", "OKABE_ITO", "PAGE_WIDTH",
           "SEQUENTIAL", "STYLE", "category_style", "close", "contingency_heatmap", "dcec_history", "dendrogram",
           "example_arrays", "example_indices", "explained_variance", "feature_examples", "k_selection",
           "latent_size_curve", "loss_curves", "matched_contingency", "membership_histogram", "new_figure",
           "reconstruction_grid", "save_figure", "scatter_2d", "style", "styled", "wrapped"]
