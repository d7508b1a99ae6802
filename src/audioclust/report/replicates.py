"""Replicates: one stage's results over several seeds, as mean ± standard deviation.

Stages 04 and 05 repeat their random parts once per seed of ``experiment.seeds`` and write every
seed's rows into one long table (``<stage>/replicates/results.csv``, a ``seed`` column; a run
with one seed is its own long table, ``<stage>/results.csv``). This module reads nothing from
disk: it turns such a table into

* :func:`row_stats`: per result row (``id``), every score's mean and sample standard deviation
  over the seeds where the row ran, and how often the label-free selection chose it;
* :func:`choices`: per seed, each feature's label-free row and the overall pick, with their scores;
* :func:`replicate_summary`: the summary table of the stage with mean ± sd: per feature the label-free
  row (the selection is judged per seed: its scores are those of whatever row it chose in each
  seed) and the best row by mean NMI (uses labels), and the overall pick.

The standard deviation is the sample one (``ddof=1``), NaN for a single seed.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from audioclust.clustering.metrics import EXTERNAL, INTERNAL
from audioclust.clustering.selection import chosen_by
from audioclust.results import STABILITY, true_flags

#: scores averaged over the seeds (those a table has)
SCORES: tuple[str, ...] = (*EXTERNAL, *INTERNAL, *STABILITY, "n_clusters", "recon_mse")

#: columns that name a row, kept from its first seed (those a table has)
IDENTITY: tuple[str, ...] = ("id", "feature", "view", "type", "kind", "source", "algorithm", "architecture",
                             "latent_dim", "stage")

#: the Choice column of :func:`replicate_summary`
PICK = "label-free pick (overall)"
LABEL_FREE = "label-free ({criterion})"
BEST = "best by mean NMI (uses labels)"

SUMMARY_COLUMNS = ["Feature", "Type", "Algorithm", "Chosen in", "Seeds", "NMI", "NMI sd", "ACC", "ACC sd",
                   "Choice"]


def seeds_of(long: pd.DataFrame) -> list[int]:
    """The seeds of a long table in order of appearance (``[0]`` when it has no ``seed`` column)."""
    if "seed" not in long.columns:
        return [0]
    return [int(s) for s in pd.unique(long["seed"])]


def _with_seed(long: pd.DataFrame) -> pd.DataFrame:
    return long if "seed" in long.columns else long.assign(seed=0)


def _ok(long: pd.DataFrame) -> pd.DataFrame:
    return long[long["status"] == "ok"] if "status" in long.columns else long


def row_stats(long: pd.DataFrame) -> pd.DataFrame:
    """Per row ``id`` (in order of appearance): its identity, ``n_seeds`` (seeds where it ran ok), every score's
    ``<score>_mean`` and ``<score>_sd``, and ``times_selected`` / ``times_pick`` / ``times_eligible`` (seeds in
    which the label-free selection chose it for its feature / as the overall pick / could have chosen it).

    Parameters
    ----------
    long : DataFrame
        A stage's results over seeds: ``id``, ``status``, ``selected`` (and ``pick`` for stage 04), the scores,
        and ``seed`` (absent: one seed).
    """
    long = _with_seed(long)
    ok = _ok(long)
    ids = list(pd.unique(long["id"]))
    first = long.drop_duplicates("id").set_index("id")
    identity = [c for c in IDENTITY if c in long.columns and c != "id"]
    out = first.loc[ids, identity].reset_index()
    grouped = ok.groupby("id", sort=False)
    out["n_seeds"] = out["id"].map(grouped["seed"].nunique()).fillna(0).astype(int)
    for score in (s for s in SCORES if s in long.columns):
        values = pd.to_numeric(ok[score], errors="coerce").groupby(ok["id"], sort=False)
        out[f"{score}_mean"] = out["id"].map(values.mean())
        out[f"{score}_sd"] = out["id"].map(values.std(ddof=1))
    for flag, column in (("selected", "times_selected"), ("pick", "times_pick"), ("eligible", "times_eligible")):
        if flag in long.columns:
            chosen = ok[true_flags(ok, flag)]
            out[column] = out["id"].map(chosen.groupby("id", sort=False)["seed"].nunique()).fillna(0).astype(int)
    return out


def choices(long: pd.DataFrame) -> pd.DataFrame:
    """Per seed, the label-free choices: one row per feature's selected row (``choice = "selected"``) and one for
    the overall pick (``choice = "pick"``), with ``seed, choice, feature, id, nmi, acc``."""
    long = _with_seed(long)
    ok = _ok(long)
    frames = []
    for flag in ("selected", "pick"):
        if flag in ok.columns:
            part = ok[true_flags(ok, flag)]
            frames.append(pd.DataFrame({"seed": part["seed"].astype(int), "choice": flag, "feature": part["feature"],
                                        "id": part["id"],
                                        "nmi": pd.to_numeric(part.get("nmi"), errors="coerce"),
                                        "acc": pd.to_numeric(part.get("acc"), errors="coerce")}))
    if not frames:
        return pd.DataFrame(columns=["seed", "choice", "feature", "id", "nmi", "acc"])
    return pd.concat(frames, ignore_index=True)


def best_rows(stats: pd.DataFrame) -> dict[str, str]:
    """Per feature, the id of the row with the best mean NMI among those that ran in every seed and, where the
    table says which rows the selection could choose (``eligible``), could be chosen in every seed (the rows
    :func:`audioclust.report.summary.best_by_nmi` compares); {} without labels.

    Parameters
    ----------
    stats : :func:`row_stats` of the results over seeds.
    """
    if "nmi_mean" not in stats.columns or stats.empty:
        return {}
    n = stats["n_seeds"].max()
    pool = stats[stats["n_seeds"] == n]
    if "times_eligible" in pool.columns and (pool["times_eligible"] == n).any():
        pool = pool[pool["times_eligible"] == n]
    pool = pool[pool["nmi_mean"].notna()]
    return {feature: part.loc[part["nmi_mean"].idxmax(), "id"] for feature, part in pool.groupby("feature", sort=False)}


def spread(values: pd.Series) -> tuple[float, float]:
    """(mean, sample sd) of the numbers among ``values``; sd NaN for one value, both NaN for none."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return np.nan, np.nan
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else np.nan


def _chosen_row(part: pd.DataFrame, long: pd.DataFrame, n_seeds: int, label: str, feature: str) -> dict:
    """One summary row of a label-free choice over the seeds: its scores per seed, its most frequent row named."""
    counts = Counter(part["id"])
    top, times = counts.most_common(1)[0]
    row = long[long["id"] == top].iloc[0]
    nmi, nmi_sd = spread(part["nmi"])
    acc, acc_sd = spread(part["acc"])
    others = f" (+{len(counts) - 1} other row{'s' if len(counts) > 2 else ''})" if len(counts) > 1 else ""
    return {"Feature": feature, "Type": row.get("type", ""), "Algorithm": row.get("algorithm", ""),
            "Chosen in": f"{times}/{n_seeds}{others}", "Seeds": int(part["seed"].nunique()), "NMI": nmi,
            "NMI sd": nmi_sd, "ACC": acc, "ACC sd": acc_sd, "Choice": label}


def replicate_summary(long: pd.DataFrame, criterion: str) -> pd.DataFrame:
    """The stage's summary over seeds (:data:`SUMMARY_COLUMNS`), features in order of appearance.

    Per feature: the label-free row (each seed contributes the row the selection chose in it;
    *Chosen in* says how often the most frequent one was chosen) and the row with the best mean NMI
    among the rows that ran in every seed (uses labels; left out without labels). Last, the overall
    pick of stage 04 in the same way.
    """
    long = _with_seed(long)
    n_seeds = len(seeds_of(long))
    picked = choices(long)
    stats = row_stats(long)
    best = best_rows(stats)
    stats = stats.set_index("id")
    rows = []
    for feature in pd.unique(_ok(long)["feature"]):
        part = picked[(picked["choice"] == "selected") & (picked["feature"] == feature)]
        if len(part):
            modal = long[long["id"] == Counter(part["id"]).most_common(1)[0][0]].iloc[0]
            rows.append(_chosen_row(part, long, n_seeds, LABEL_FREE.format(criterion=chosen_by(modal, criterion)),
                                    feature))
        if feature in best:
            row = stats.loc[best[feature]]
            rows.append({"Feature": feature, "Type": row.get("type", ""), "Algorithm": row.get("algorithm", ""),
                         "Chosen in": "", "Seeds": int(row["n_seeds"]), "NMI": row["nmi_mean"],
                         "NMI sd": row["nmi_sd"], "ACC": row.get("acc_mean", np.nan),
                         "ACC sd": row.get("acc_sd", np.nan), "Choice": BEST})
    pick = picked[picked["choice"] == "pick"]
    if len(pick):
        row = _chosen_row(pick, long, n_seeds, PICK, "")
        row["Feature"] = long[long["id"] == Counter(pick["id"]).most_common(1)[0][0]]["feature"].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def plus_minus(mean: float, sd: float, digits: int = 3) -> str:
    """``0.612 ± 0.021``; the mean alone when ``sd`` is NaN (one seed); an en dash when the mean is NaN."""
    if mean is None or pd.isna(mean):
        return "–"
    return f"{mean:.{digits}f}" if sd is None or pd.isna(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"
