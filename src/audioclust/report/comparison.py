"""One table over several runs (datasets × experiments): the seed study's results table, with spread.

Rows are feature × method, columns are runs, each with NMI and ACC as mean ± sd over the run's
seeds. Every run contributes, from its results over seeds (:mod:`audioclust.report.replicates`):

* ``label-free pick``: the overall label-free row of stage 04 (one per seed);
* per feature, the ``label-free choice`` of stage 04 and of stage 05 (the rows the selection chose,
  one per seed);
* per feature, the ``best row by NMI (uses labels)``: the row with the best mean NMI, to show what
  was reachable;
* with ``rows="all"`` also every method: view × algorithm (stage 04), autoencoder × clustering (stage 05).

Cells without a number (a row a run does not have, a run without labels) are NaN, shown as an en
dash. The best mean in each column is shown in bold, among the rows that did not use labels to
choose. This module reads nothing from disk: :mod:`audioclust.stages.compare` gathers the runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from audioclust.report import figures as plots
from audioclust.report import replicates
from audioclust.report.tables import MISSING, escape_latex
from audioclust.results import STAGE_NAMES

PICK = "label-free pick"
CHOICE = "label-free choice"
AE_CHOICE = "autoencoder, label-free choice"
AE_PICK = "autoencoder, label-free pick"
BEST = "best row by NMI (uses labels)"
ALL_FEATURES = "(all)"

#: the numbers of one cell, in the wide CSV after the run's label
STATS = ("NMI mean", "NMI sd", "ACC mean", "ACC sd", "seeds")

ROW_MODES = ("choices", "all")


@dataclass
class RunResults:
    """What one run contributes: its column label and its results over seeds, per stage.

    Attributes
    ----------
    label : the column heading (``dataset`` or ``dataset (experiment)``).
    results : ``{"clustering": long table, "autoencoder": long table}`` (those that exist), each the
        stage's rows of every seed with a ``seed`` column.
    """

    label: str
    results: dict[str, pd.DataFrame] = field(default_factory=dict)


def _cell(feature: str, method: str, uses_labels: bool, nmi: pd.Series, acc: pd.Series, seeds: pd.Series
          ) -> dict:
    nmi_mean, nmi_sd = replicates.spread(nmi)
    acc_mean, acc_sd = replicates.spread(acc)
    return {"Feature": feature, "Method": method, "uses_labels": uses_labels, "NMI mean": nmi_mean,
            "NMI sd": nmi_sd, "ACC mean": acc_mean, "ACC sd": acc_sd, "seeds": int(pd.Series(seeds).nunique())}


def _method(row: pd.Series, source: str) -> str:
    if source == "autoencoder":
        return f"{row['type']} · {STAGE_NAMES.get(row.get('stage'), row.get('algorithm'))}"
    return f"{row['type']} · {row['algorithm']}"


def run_cells(run: RunResults, rows: str = "choices") -> pd.DataFrame:
    """The cells one run contributes: columns ``Feature, Method, uses_labels`` and :data:`STATS`."""
    if rows not in ROW_MODES:
        raise ValueError(f"rows must be one of {ROW_MODES}, not {rows!r}")
    cells = []
    for source, long in run.results.items():
        long = long if "seed" in long.columns else long.assign(seed=0)
        ok = long[long["status"] == "ok"] if "status" in long.columns else long
        chosen = replicates.choices(long)
        pick = chosen[chosen["choice"] == "pick"]
        if len(pick):
            cells.append(_cell(ALL_FEATURES, PICK if source == "clustering" else AE_PICK, False, pick["nmi"],
                               pick["acc"], pick["seed"]))
        best = replicates.best_rows(replicates.row_stats(long)) if source == "clustering" else {}
        for feature in pd.unique(ok["feature"]):
            part = chosen[(chosen["choice"] == "selected") & (chosen["feature"] == feature)]
            if len(part):
                cells.append(_cell(feature, CHOICE if source == "clustering" else AE_CHOICE, False, part["nmi"],
                                   part["acc"], part["seed"]))
            if feature in best:
                part = ok[ok["id"] == best[feature]]
                cells.append(_cell(feature, BEST, True, part["nmi"], part["acc"], part["seed"]))
        if rows == "all":
            for row_id, part in ok.groupby("id", sort=False):
                cells.append(_cell(part["feature"].iloc[0], _method(part.iloc[0], source), False,
                                   part.get("nmi", pd.Series(dtype=float)), part.get("acc", pd.Series(dtype=float)),
                                   part["seed"]))
    return pd.DataFrame(cells, columns=["Feature", "Method", "uses_labels", *STATS])


def _order(frames: list[pd.DataFrame]) -> list[tuple[str, str]]:
    """Row keys in a reader's order: the pick first, then per feature (first seen) its choices, best, methods."""
    rank = {PICK: 0, AE_PICK: 1, CHOICE: 2, AE_CHOICE: 3, BEST: 4}
    keys: list[tuple[str, str]] = []
    for frame in frames:
        keys += [k for k in zip(frame["Feature"], frame["Method"]) if k not in keys]
    features = list(dict.fromkeys(f for f, _ in keys))
    return sorted(keys, key=lambda k: (k[0] != ALL_FEATURES, features.index(k[0]), rank.get(k[1], 9)))


def comparison_table(runs: list[RunResults], rows: str = "choices") -> pd.DataFrame:
    """The comparison as numbers: one row per feature × method, per run the columns ``<label> NMI mean`` … (:data:`STATS`).

    Only rows present in every run are kept (a method one run lacks would compare nothing);
    ``uses_labels`` marks the rows chosen with labels.

    Raises
    ------
    ValueError
        Two runs share a label, or the runs have no row in common.
    """
    labels = [run.label for run in runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"two runs have the same label: {labels}")
    frames = [run_cells(run, rows) for run in runs]
    keys = _order(frames)
    common = set(keys)
    for frame in frames:
        common &= set(zip(frame["Feature"], frame["Method"]))
    keys = [k for k in keys if k in common]
    if not keys:
        raise ValueError("the runs have no row in common")
    out = pd.DataFrame(keys, columns=["Feature", "Method"])
    uses = {}
    for run, frame in zip(runs, frames):
        indexed = frame.set_index(["Feature", "Method"])
        for stat in STATS:
            out[f"{run.label} {stat}"] = [indexed.at[k, stat] for k in keys]
        uses.update({k: bool(v) for k, v in indexed["uses_labels"].items()})
    out.insert(2, "uses_labels", [uses[k] for k in keys])
    return out


def best_mask(table: pd.DataFrame, labels: list[str]) -> dict[str, pd.Series]:
    """Per ``<label> NMI`` / ``<label> ACC`` column: True on the row(s) with its best mean among the rows that
    did not use labels."""
    eligible = ~table["uses_labels"].astype(bool)
    out = {}
    for label in labels:
        for score in ("NMI", "ACC"):
            values = pd.to_numeric(table[f"{label} {score} mean"], errors="coerce").where(eligible)
            best = values.max()
            out[f"{label} {score}"] = values.notna() & np.isclose(values, best, rtol=0, atol=5e-4) if pd.notna(best) \
                else pd.Series(False, index=table.index)
    return out


def display_table(table: pd.DataFrame, labels: list[str], digits: int = 2) -> pd.DataFrame:
    """Text cells: ``Feature | Method | <label> NMI | <label> ACC | ...`` with ``mean ± sd``."""
    out = table[["Feature", "Method"]].copy()
    for label in labels:
        for score in ("NMI", "ACC"):
            out[f"{label} {score}"] = [replicates.plus_minus(m, s, digits) for m, s in
                                       zip(table[f"{label} {score} mean"], table[f"{label} {score} sd"])]
    return out


def markdown(table: pd.DataFrame, labels: list[str], digits: int = 2) -> str:
    """A Markdown table of :func:`display_table`, the best cell of each column in bold."""
    shown, bold = display_table(table, labels, digits), best_mask(table, labels)
    head = list(shown.columns)
    lines = ["| " + " | ".join(head) + " |", "|:---|:---|" + "|".join("---:" for _ in head[2:]) + "|"]
    for i in range(len(shown)):
        cells = [str(shown.iloc[i][c]).replace("|", r"\|") for c in head]
        cells = [f"**{v}**" if c in bold and bold[c].iloc[i] and v != MISSING else v for c, v in zip(head, cells)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def latex(table: pd.DataFrame, labels: list[str], caption: str, label: str, digits: int = 2) -> str:
    """A booktabs table: a column pair NMI | ACC under each run's name, the best of each column in bold,
    ``mean $\\pm$ sd`` cells (needs ``\\usepackage{booktabs}``)."""
    shown, bold = display_table(table, labels, digits), best_mask(table, labels)
    n = len(labels)
    caption = escape_latex(caption).replace("±", r"$\pm$")
    lines = [r"\begin{table}[htbp]", r"\centering", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
             r"\begin{tabular}{ll" + "rr" * n + "}", r"\toprule",
             " & " + "".join(rf" & \multicolumn{{2}}{{c}}{{{escape_latex(x)}}}" for x in labels) + r" \\",
             "".join(rf"\cmidrule(lr){{{3 + 2 * i}-{4 + 2 * i}}}" for i in range(n)),
             "Feature & Method" + " & NMI & ACC" * n + r" \\", r"\midrule"]
    for i in range(len(shown)):
        cells = []
        for column in shown.columns:
            text = escape_latex(shown.iloc[i][column]).replace("±", r"$\pm$").replace("·", r"$\cdot$")
            text = text.replace(MISSING, "--")
            if column in bold and bold[column].iloc[i] and text != "--":
                text = rf"\textbf{{{text}}}"
            cells.append(text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def heatmap(table: pd.DataFrame, labels: list[str], score: str = "NMI", title: str = "") -> Figure:
    """The mean ``score`` of every row (feature × method) in every run as a heat-map, each cell annotated
    ``mean ± sd`` (the rows chosen with labels say so in their name)."""
    values = np.array([[table.iloc[i][f"{x} {score} mean"] for x in labels] for i in range(len(table))], dtype=float)
    sds = np.array([[table.iloc[i][f"{x} {score} sd"] for x in labels] for i in range(len(table))], dtype=float)
    names = [f"{f} · {m}" for f, m in zip(table["Feature"], table["Method"])]
    height = 0.9 + 0.2 * len(names)
    width = max(plots.COLUMN_WIDTH, 2.6 + 1.0 * len(labels))
    fig, axes = plots.new_figure(width=width, height=height)
    ax = axes[0, 0]
    with plots.style():
        image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if np.isfinite(values[i, j]):
                    text = f"{values[i, j]:.2f}" + (f"±{sds[i, j]:.2f}" if np.isfinite(sds[i, j]) else "")
                    ax.text(j, i, text, ha="center", va="center", fontsize=plots.MIN_FONT_SIZE,
                            color="black" if values[i, j] > 0.6 else "white")
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.grid(False)
        fig.colorbar(image, ax=ax, label=f"{score} (mean over seeds)", fraction=0.04)
        if title:
            ax.set_title(title)
    return fig
