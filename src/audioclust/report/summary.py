"""The summary tables of stages 04 and 05 (CSV, Markdown, LaTeX): the label-free pick per
feature, and the best-by-NMI rows marked as using labels.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from audioclust.clustering.selection import autoencoder_criterion, chosen_by
from audioclust.core.paths import ProjectPaths
from audioclust import __version__
from audioclust.core import provenance
from audioclust.core.storage import write_csv, write_text
from audioclust.report import replicates
from audioclust.report.tables import latex_table, markdown_table, write_table
from audioclust.results import REPLICATES, STAGE_NAMES, true_flags

log = logging.getLogger(__name__)


SELECTED = "label-free ({criterion})"
#: added to the Choice of a stage-05 selected row: its model's stability gain, which ranks the models for the pick
GAIN = ", stability gain {gain:.3f}"
#: added to the Choice of the selected row that is also the stage's one label-free answer (``pick``)
PICKED = ", pick"

EMBEDDING_COLUMNS = ["Feature", "Embedding", "NMI", "ACC"]

BEST = "best by NMI (uses labels)"

#: how stage 05 chose its selected rows, in the notes of its summary and of the rows added to stage 04's
AUTOENCODER_CHOICE = (
    "*label-free ({criterion})*: per feature, of the latent size whose pre-trained embedding clusters most stably "
    "(`latent_chosen`), the row of K-Means or of DCEC, whichever has the better {criterion}; *label-free "
    "(stability)*: the spectral clustering row instead (`autoencoder.algorithms`), where spectral clustering "
    "partitions that embedding more stably than K-Means by over 0.02. Labels were not used to choose either.")


# --------------------------------------------------------------------------- summaries

SUMMARY_COLUMNS = ["Feature", "Type", "Algorithm", "k", "NMI", "ACC", "Choice"]


def summary_table(results: pd.DataFrame, criterion: str = "silhouette") -> pd.DataFrame:
    """Per feature: the label-free selected row and the best row by NMI (marked as using labels).

    Parameters
    ----------
    results : DataFrame
        A ``results.csv`` of stage 04/05: columns ``feature, type, algorithm, k, nmi, acc,
        selected`` (and ``status``: only ``ok`` rows count).
    criterion : the internal criterion that made ``selected`` (named in the Choice column).

    Returns
    -------
    DataFrame with :data:`SUMMARY_COLUMNS`, features in their order of appearance; the
    best-by-NMI row (:func:`best_by_nmi`) is left out when no row has an NMI (no labels). A stage-05
    selected row's Choice names its model's stability gain (``latent_stability``), so the pick's lead over
    the other features' rows shows in the table.
    """
    ok = results[results["status"] == "ok"] if "status" in results.columns else results
    rows = []
    for feature in pd.unique(ok["feature"]):
        part = ok[ok["feature"] == feature]
        chosen = part[part["selected"].astype(bool)]
        if len(chosen):
            row, picked = chosen.iloc[0], true_flags(chosen, "pick").iloc[0]
            gain = pd.to_numeric(row.get("latent_stability"), errors="coerce")   # stage 05 only; NaN elsewhere
            rows.append(_summary_row(row, SELECTED.format(criterion=chosen_by(row, criterion))
                                     + (GAIN.format(gain=gain) if pd.notna(gain) else "") + (PICKED if picked else "")))
        best = best_by_nmi(part)
        if best is not None:
            rows.append(_summary_row(best, BEST))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def best_by_nmi(results: pd.DataFrame) -> pd.Series | None:
    """The row with the highest NMI among the ``eligible`` ones (all, without that column); None without labels.

    Eligible rows are those the label-free selection could choose (:func:`audioclust.clustering.selection.mark_selected`):
    with ``cluster.k`` given, a partition into many more groups (NMI rewards them) is no answer to compare.
    """
    if "eligible" in results.columns:
        results = results[true_flags(results, "eligible")]
    nmi = pd.to_numeric(results["nmi"], errors="coerce")
    return results.loc[nmi.idxmax()] if nmi.notna().any() else None


def _summary_row(row: pd.Series, choice: str) -> dict[str, Any]:
    return {"Feature": row["feature"], "Type": row["type"], "Algorithm": row["algorithm"],
            "k": int(row["k"]) if pd.notna(row["k"]) else None,
            "NMI": float(row["nmi"]) if pd.notna(row["nmi"]) else math.nan,
            "ACC": float(row["acc"]) if pd.notna(row["acc"]) else math.nan, "Choice": choice}


def write_summary(results: pd.DataFrame, folder: str | Path, criterion: str = "silhouette",
                  dataset: str = "", stage: str = "clustering") -> list[Path]:
    """``summary.csv``, ``summary.md`` and ``summary.tex`` of one stage's results in ``folder``.

    Parameters
    ----------
    results : the stage's results table.
    folder : e.g. ``results/<name>/clustering``.
    criterion : the internal criterion of the selection.
    dataset, stage : named in the heading and caption.

    Returns
    -------
    [csv, md, tex] paths
    """
    table = summary_table(results, criterion)
    n_ok = int((results["status"] == "ok").sum()) if "status" in results.columns else len(results)
    labelled = "nmi" in results and bool(pd.to_numeric(results["nmi"], errors="coerce").notna().any())
    notes = ((AUTOENCODER_CHOICE.format(criterion=criterion) if stage == "autoencoder" else
              f"*label-free ({criterion})*: per feature, the row with the best {criterion} over every view and "
              "algorithm whose partition is not degenerate (see the `degenerate` column of results.csv); labels were "
              "not used to choose it.") + "  \n"
             f"*pick*: the one row of all a user without labels gets (stage 04: the structure most features "
             "see; stage 05: the most stable model, by the stability gain its Choice names, or at `k: auto` the "
             "structure most models see).  \n"
             f"*{BEST}*: among the rows the selection could choose, the one whose clusters match the labels best; "
             "it exists only to show what was reachable.  \n"
             f"{n_ok} results in results.csv."
             + ("" if labelled else "  \nNo labels: NMI and ACC are not defined (–).") + "  \n" + _made_by(results, folder))
    caption = (f"{stage.capitalize()} of {dataset}: label-free selection ({criterion}) per feature, "
               f"and the best result by NMI (uses labels).")
    return write_table(table, Path(folder) / "summary", caption=caption, label=f"tab:{stage}-{dataset}",
                       title=f"{stage.capitalize()} summary: {dataset}", notes=notes)


def _made_by(results: pd.DataFrame, folder: str | Path) -> str:
    """Where the numbers came from: the seed, the replicates when there are, the code that wrote the table."""
    seeds = sorted({int(s) for s in pd.to_numeric(results.get("seed", pd.Series(dtype=float)), errors="coerce").dropna()})
    replicated = (Path(folder) / REPLICATES / "summary.md").is_file()
    seed = (f"Seed {', '.join(map(str, seeds))}" if seeds else "One seed") + (
        " (mean ± sd over every seed: replicates/summary.md)" if replicated else "")
    return (f"{seed}; written by {provenance.describe_code(provenance.git_state(), __version__)}. The settings, "
            "code, libraries and machine of each stage run: provenance.json of this experiment.")


# --------------------------------------------------------------------------- summary tables

def embedding_table(results: pd.DataFrame) -> pd.DataFrame:
    """The original study's table: one row per autoencoder result.

    Returns
    -------
    DataFrame with :data:`EMBEDDING_COLUMNS` (*Feature | Embedding | NMI | ACC*), e.g.
    ``mel | dcec autoencoder z=10 (Arrays) + DCEC | 0.61 | 0.55``.
    """
    ok = results[results["status"] == "ok"]
    return pd.DataFrame([{"Feature": r["feature"], "Embedding": f"{r['type']} + {STAGE_NAMES[r['stage']]}",
                          "NMI": float(r["nmi"]), "ACC": float(r["acc"])} for _, r in ok.iterrows()],
                        columns=EMBEDDING_COLUMNS)


def write_summaries(paths: ProjectPaths, criterion: str, tune_criterion: str) -> list[Path]:
    """Both stages' ``summary.csv|md|tex``, from the ``results.csv`` files that exist.

    ``results/<name>/clustering/summary.*`` is :func:`write_summary` of stage 04's results;
    when stage 05 has run too, its summary rows are added to that table (CSV, Markdown and
    LaTeX) and its *Feature | Embedding | NMI | ACC* section appended.
    ``results/<name>/autoencoder/summary.*`` is stage 05's own summary and section. Every
    file is rewritten from the results each time, so a re-run of either stage neither drops
    the other's rows nor adds its own twice.

    Parameters
    ----------
    paths : the project's paths (``results/<name>/``).
    criterion, tune_criterion : ``cluster.criterion`` (made stage 04's ``selected`` rows) and
        ``cluster.tune_criterion`` (see :func:`autoencoder_criterion`).

    Returns
    -------
    the summary paths written (csv, md, tex of each folder).
    """
    dataset = paths.dataset
    classical_csv, ae_csv = (paths.results / stage / "results.csv" for stage in ("clustering", "autoencoder"))
    classical = pd.read_csv(classical_csv) if classical_csv.is_file() else None
    ae = pd.read_csv(ae_csv) if ae_csv.is_file() else None
    ae_criterion = autoencoder_criterion(criterion, tune_criterion)
    written: list[Path] = []
    if ae is not None:
        written += write_summary(ae, ae_csv.parent, criterion=ae_criterion, dataset=dataset, stage="autoencoder")
        _append_section(ae_csv.parent, ae, dataset)
        _append_structures(ae_csv.parent, ae_csv.parent, dataset, "autoencoder")
    if classical is not None:
        written += write_summary(classical, classical_csv.parent, criterion=criterion, dataset=dataset)
        _append_structures(classical_csv.parent, classical_csv.parent, dataset, "clustering")
        if ae is not None:
            _insert_rows(classical_csv.parent, summary_table(classical, criterion), summary_table(ae, ae_criterion))
            _append_section(classical_csv.parent, ae, dataset, ae_criterion)
            _append_structures(classical_csv.parent, ae_csv.parent, dataset, "autoencoder")
    return written


def _insert_rows(folder: Path, base: pd.DataFrame, extra: pd.DataFrame) -> None:
    """Add ``extra`` rows to the table of ``summary.csv|md|tex`` that :func:`write_summary` wrote from ``base``."""
    combined = pd.concat([base, extra], ignore_index=True) if len(base) else extra
    write_csv(folder / "summary.csv", combined)
    for suffix, render in ((".md", markdown_table), (".tex", latex_table)):
        path = folder / f"summary{suffix}"
        text, old = path.read_text(encoding="utf-8"), render(base)
        if old in text:
            text = text.replace(old, render(combined), 1)
        else:  # the writer's layout changed: keep its file and add the rows as a table of their own
            log.warning("the table of %s was not found; the autoencoder's rows follow as a separate table",
                        path.name)
            text += "\n" + render(extra)
        write_text(path, text)


def _append_section(folder: Path, results: pd.DataFrame, dataset: str, criterion: str | None = None) -> None:
    """Append the *Feature | Embedding | NMI | ACC* table to ``summary.md`` and ``summary.tex``; with ``criterion``
    (stage 04's summary, whose notes explain only its own Choice), its notes say how stage 05 chose its rows."""
    table = embedding_table(results)
    md = folder / "summary.md"
    notes = (f"Rows of type *… autoencoder z=…* come from stage 05 (results/{dataset}/autoencoder/results.csv): "
             "K-Means of the pre-trained embedding and the other clusterers of `autoencoder.algorithms` (spectral "
             "clustering by default), and DCEC's clustering stage started from the K-Means centres."
             + ("" if criterion is None else " Their label-free rows are chosen among the autoencoder rows: "
                + AUTOENCODER_CHOICE.format(criterion=criterion)))
    write_text(md, md.read_text(encoding="utf-8") + "\n## Autoencoder embeddings\n\n" + markdown_table(table)
               + f"\n{notes}\n")
    tex = folder / "summary.tex"
    write_text(tex, tex.read_text(encoding="utf-8") + "\n" + latex_table(
        table, caption=f"Autoencoder embeddings of {dataset}: K-Means, spectral and DCEC clustering.",
        label=f"tab:autoencoder-embeddings-{dataset}"))


# --------------------------------------------------------------------------- replicates


def write_replicates(folder: Path, results: list[pd.DataFrame], structures: list[pd.DataFrame] | None,
                     criterion: str) -> pd.DataFrame | None:
    """A stage's results over several seeds in ``<folder>/replicates/`` (nothing, and an earlier such folder
    removed, for one seed).

    It writes ``results.csv`` (every seed's rows), ``structures.csv``, ``rows.csv``
    (:func:`audioclust.report.replicates.row_stats`) and ``summary.csv|md|tex``
    (:func:`audioclust.report.replicates.replicate_summary`, mean ± sd).

    Parameters
    ----------
    folder : the stage's folder (``results/<name>/clustering`` or ``.../autoencoder``).
    results : one results table per seed (each with its ``seed`` column), the primary seed first.
    structures : stage 04's ``structures.csv`` per seed, or None.
    criterion : the criterion of the label-free selection (named in the summary).

    Returns
    -------
    The summary's numbers (those of ``summary.csv``), or None for one seed.
    """
    out = Path(folder) / REPLICATES
    if len(results) < 2:
        shutil.rmtree(out, ignore_errors=True)   # an earlier run's seeds are not this run's
        return None
    long = pd.concat(results, ignore_index=True)
    write_csv(out / "results.csv", long)
    write_csv(out / "rows.csv", replicates.row_stats(long))
    if structures is not None:
        write_csv(out / "structures.csv", pd.concat(structures, ignore_index=True))
    summary = replicates.replicate_summary(long, criterion)
    shown = summary.drop(columns=["NMI sd", "ACC sd"]).assign(
        NMI=[replicates.plus_minus(m, s) for m, s in zip(summary["NMI"], summary["NMI sd"])],
        ACC=[replicates.plus_minus(m, s) for m, s in zip(summary["ACC"], summary["ACC sd"])])
    seeds = replicates.seeds_of(long)
    stage = Path(folder).name
    notes = (f"Mean ± sample standard deviation over {len(seeds)} seeds ({', '.join(map(str, seeds))}). "
             f"*{replicates.LABEL_FREE.format(criterion=criterion)}*: the selection is judged per seed: each seed "
             "contributes the scores of the row it chose there; *Chosen in* says how often the most frequent row was "
             f"chosen. *{replicates.BEST}*: among the rows that ran in every seed, the one with the best mean NMI. "
             "Every seed's rows are in results.csv, each row's mean and sd in rows.csv.")
    write_table(shown, out / "summary", caption=f"{stage.capitalize()}: mean ± sd over {len(seeds)} "
                "seeds of the label-free choices and of the best rows (uses labels).",
                label=f"tab:{stage}-replicates", title=f"{stage.capitalize()} over {len(seeds)} seeds", notes=notes)
    write_csv(out / "summary.csv", summary)   # numbers, not the text of the Markdown and LaTeX
    return summary


STRUCTURE_TABLE_COLUMNS = ["Structure", "Features that agree", "They describe", "Representative", "k",
                           "Agreement (AMI)", "NMI", "ACC"]


def structure_table(structures: pd.DataFrame) -> pd.DataFrame:
    """``structures.csv`` in words: one row per structure, the pick first (see
    :mod:`audioclust.clustering.structures`)."""
    rows = [{"Structure": f"{int(r['structure'])}" + (" (pick)" if str(r["pick"]).lower() == "true" else ""),
             "Features that agree": r["features"], "They describe": r["describes"],
             "Representative": f"{r['view']}, {r['algorithm']}",
             "k": int(r["n_clusters"]) if pd.notna(r["n_clusters"]) else None,
             "Agreement (AMI)": float(r["agreement"]), "NMI": float(r["nmi"]), "ACC": float(r["acc"])}
            for _, r in structures.iterrows()]
    table = pd.DataFrame(rows, columns=STRUCTURE_TABLE_COLUMNS)
    follows = followed_traits(structures)
    if (follows != "").any():
        table[FOLLOWS] = follows.replace("", "–").to_numpy()
    return table


#: the column of :func:`structure_table` that names the recording traits a structure follows (only when one does)
FOLLOWS = "Follows (AMI)"

#: what that column means, for the notes under the table
FOLLOWS_NOTE = ("Follows: the recording traits of stage 01's metadata (band stored, file format, channels) that the "
                "representative's clusters agree with as two features' rows agree; such a structure may set the "
                "sources apart rather than the sounds.")


def followed_traits(structures: pd.DataFrame) -> pd.Series:
    """The ``follows`` column of a ``structures.csv`` as text ("" where none, or where the file predates it)."""
    if "follows" not in structures:
        return pd.Series("", index=structures.index)
    return structures["follows"].astype(object).fillna("").astype(str)


def focus_of(structures: pd.DataFrame) -> str:
    """The features of ``cluster.focus`` a ``structures.csv`` was formed among, in words; "" when every feature took
    part (or the file predates the column)."""
    if "focus" not in structures or structures.empty:
        return ""
    value = structures["focus"].iloc[0]
    return "" if pd.isna(value) else str(value)


#: how each stage's structures are named: what their members are and which row is the pick (the summaries and the
#: report's Structures section)
STRUCTURE_WORDS: dict[str, dict[str, str]] = {
    "clustering": {"member": "feature", "pick": "the most central row of the structure most features see"},
    "autoencoder": {"member": "autoencoder model",
                    "pick": "the row of the most stable model (with k estimated per model: the most central row of "
                            "the structure most models see)"},
}


def _append_structures(folder: Path, source: Path, dataset: str, stage: str) -> None:
    """Append the table of ``<source>/structures.csv`` to ``<folder>/summary.md`` and ``summary.tex`` (nothing
    without structures). ``stage``: the stage that wrote it, ``clustering`` or ``autoencoder`` (whose structures
    follow its own rows in both stages' summaries)."""
    path = source / "structures.csv"
    structures = pd.read_csv(path) if path.is_file() else None
    if structures is None or structures.empty:
        return
    table = structure_table(structures)
    words = STRUCTURE_WORDS[stage]
    focus = focus_of(structures)
    notes = (f"Each {words['member']}'s label-free row captures one structure of the collection; rows whose "
             "partitions agree (adjusted mutual information >= cluster.structure_agreement) form one. The pick "
             f"(report, sound map) is {words['pick']}; the others are alternatives a user may have meant. "
             + (f"Only the rows of cluster.focus ({focus}) took part, the user's prior. " if focus else "")
             + (f"{FOLLOWS_NOTE} " if FOLLOWS in table else "")
             + "Labels were not used; NMI and ACC use them (evaluation only).")
    stage04 = stage == "clustering"
    md = folder / "summary.md"
    heading = "Structures" if stage04 else "Autoencoder structures"
    write_text(md, md.read_text(encoding="utf-8") + f"\n## {heading}\n\n" + markdown_table(table) + f"\n{notes}\n")
    tex = folder / "summary.tex"
    write_text(tex, tex.read_text(encoding="utf-8") + "\n" + latex_table(
        table, caption=f"Distinct structures of {dataset}{'' if stage04 else ' in the autoencoder embeddings'} "
                       "found without labels (NMI and ACC use the labels).",
        label=f"tab:{'' if stage04 else 'autoencoder-'}structures-{dataset}"))
