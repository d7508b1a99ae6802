"""Distinct structures among the features' label-free rows, and the overall pick.

A collection often holds several reproducible structures at once: notes group by instrument
and by pitch class, spoken words by word and by voice. Each feature's ``selected`` row
(:func:`audioclust.clustering.selection.mark_selected`) captures whichever its view makes most
stable, and the most stable row overall is not necessarily the structure most views see: on
FSDD the most stable row grouped speakers while the MFCC images grouped digits, on multi-voice
speech a level-dominated MFCC row grouped neither words nor voices.

So the rows are compared with each other instead. Two partitions belong to one structure when
their adjusted mutual information (AMI, chance-corrected, so the threshold means the same at
any number of files and clusters) is at least ``threshold``; groups are cut from an
average-linkage tree of ``1 - AMI``. A structure's representative is its medoid: the member
that agrees most with the other members (ties: the better criterion), so one feature's
idiosyncrasy does not decide. Structures are ranked by how many features see them, then by
their members' summed criterion; the first one's representative is the overall pick, the
others are alternatives a user may have meant. Labels never enter here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.metrics import adjusted_mutual_info_score

from audioclust.clustering.metrics import oriented
from audioclust.clustering.selection import (
    STABILITY_TIE,
    chosen_latents,
    mark_selected,
    noise_apart,
    selectable_clusterings,
)
from audioclust.core.vocab import FEATURE_MEANINGS

#: columns of ``structures.csv`` (NMI and ACC use the labels: evaluation only; ``focus``: the features of
#: ``cluster.focus`` the structures were formed among, empty when every feature took part; ``follows``: the recording
#: traits the representative's clusters agree with, :func:`audioclust.clustering.traits.mark_followed_traits`)
STRUCTURE_COLUMNS: list[str] = ["structure", "pick", "n_features", "features", "describes", "agreement",
                                "representative", "view", "algorithm", "n_clusters", "nmi", "acc", "focus", "follows"]


#: Adjusted mutual information from which two partitions count as one structure (``cluster.structure_agreement``'s
#: default; the functions below take it when no threshold is given).
STRUCTURE_AGREEMENT = 0.3


@dataclass(frozen=True)
class Structure:
    """One group of rows whose partitions agree.

    Attributes
    ----------
    rank : 1 = the structure most features see.
    members : the rows' ids, in the order given.
    representative : the member that agrees most with the others.
    agreement : mean AMI between the members (NaN for a single member).
    """

    rank: int
    members: tuple[str, ...]
    representative: str
    agreement: float


#: files the agreement is computed on at most (a seeded sample above): with noise points as singletons
#: AMI's expected-value term grows as the square of the files (2 s per pair at 20,000 files)
AGREEMENT_MAX_SAMPLES = 5000


def agreement_rows(n_samples: int, max_samples: int = AGREEMENT_MAX_SAMPLES, random_state: int = 0) -> np.ndarray:
    """The files partitions are compared on: all of them, or above ``max_samples`` a seeded sample, sorted."""
    if n_samples <= max_samples:
        return np.arange(n_samples)
    return np.sort(np.random.default_rng(random_state).choice(n_samples, size=max_samples, replace=False))


def agreement_matrix(partitions: list[np.ndarray], max_samples: int = AGREEMENT_MAX_SAMPLES,
                     random_state: int = 0) -> np.ndarray:
    """Pairwise adjusted mutual information of the partitions (noise points as singletons).

    Parameters
    ----------
    partitions : each an array of shape (n_samples,) of cluster labels, ``-1`` = noise.
    max_samples : above this many samples, the same seeded sample of them for every pair.
    random_state : seed of that sample.

    Returns
    -------
    ndarray of shape (n, n), symmetric, 1 on the diagonal.
    """
    rows = agreement_rows(len(partitions[0]) if partitions else 0, max_samples, random_state)
    codes = [noise_apart(np.asarray(p)[rows]) for p in partitions]
    n = len(codes)
    out = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = adjusted_mutual_info_score(codes[i], codes[j])
    return out


def find_structures(ids: list[str], partitions: list[np.ndarray], scores: list[float],
                    threshold: float = STRUCTURE_AGREEMENT) -> list[Structure]:
    """Group the rows by agreement and rank the groups (see the module's text).

    Parameters
    ----------
    ids : row ids, one per partition (each feature's selected row).
    partitions : the rows' cluster labels on the same files.
    scores : each row's criterion, higher = better (breaks ties).
    threshold : AMI from which two partitions count as one structure, in [0, 1].

    Returns
    -------
    list of Structure, rank 1 first; empty for no rows.
    """
    if not ids:
        return []
    similarity = agreement_matrix(partitions)
    if len(ids) == 1:
        groups = np.array([1])
    else:
        tree = linkage(squareform(1.0 - similarity, checks=False), method="average")
        groups = fcluster(tree, t=1.0 - threshold, criterion="distance")
    score = np.asarray(scores, dtype=float)
    found = []
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        within = similarity[np.ix_(members, members)]
        centrality = (within.sum(axis=1) - 1.0) / max(len(members) - 1, 1)
        tie_break = np.nan_to_num(score[members], nan=-np.inf)  # a row without a criterion never wins a tie
        medoid = members[np.lexsort((tie_break, centrality))[-1]]
        pairs = within[np.triu_indices(len(members), k=1)]
        found.append((len(members), float(np.nansum(score[members])), tuple(ids[i] for i in members), ids[medoid],
                      float(pairs.mean()) if pairs.size else np.nan))
    found.sort(key=lambda s: (-s[0], -s[1]))
    return [Structure(rank=r, members=m, representative=rep, agreement=a)
            for r, (_, _, m, rep, a) in enumerate(found, start=1)]


def mark_structures(results: pd.DataFrame, partitions: dict[str, np.ndarray], criterion: str,
                    threshold: float = STRUCTURE_AGREEMENT, pick: str = "structures",
                    focus: list[str] | tuple = ()) -> pd.DataFrame:
    """Find the structures among the ``selected`` rows; mark ``structure`` and ``pick`` in ``results``.

    Parameters
    ----------
    results : a stage-04 results table after :func:`~audioclust.clustering.selection.mark_selected`.
    partitions : cluster labels by row id (at least the selected rows).
    criterion : the column that made ``selected`` (ties, and ``pick: criterion``).
    threshold : see :func:`find_structures`.
    pick : ``structures`` (the representative of structure 1) | ``criterion`` (the selected row
        with the best criterion); either way the structures are reported.
    focus : features whose selected rows take part (the user's prior, ``cluster.focus``); empty: all.

    Returns
    -------
    DataFrame with :data:`STRUCTURE_COLUMNS`, one row per structure (also sets
    ``results["structure"]``: the rank of a selected row's structure, and ``results["pick"]``:
    True on the overall label-free row).
    """
    among, focus = _focus_mask(results, focus)
    structures = selected_structures(results, partitions, criterion, threshold, among)
    chosen_id = None
    if structures and pick == "criterion":
        taking = results["id"].isin([m for s in structures for m in s.members])
        chosen_id = results.loc[oriented(results.loc[taking, criterion], criterion).idxmax(), "id"]
    elif structures:
        chosen_id = structures[0].representative
    results["pick"] = results["id"] == chosen_id
    return structure_table(results, structures, chosen_id, focus)


def _focus_mask(results: pd.DataFrame, focus: list[str] | tuple) -> tuple[pd.Series | None, list[str]]:
    """The rows of the features in ``focus`` and those features, in its order; (None, []) when it names none of the
    rows' features (every row takes part)."""
    named = [f for f in focus if f in set(results["feature"])]
    return (results["feature"].isin(named), named) if named else (None, [])


def selected_structures(results: pd.DataFrame, partitions: dict[str, np.ndarray], criterion: str,
                        threshold: float = STRUCTURE_AGREEMENT, among: pd.Series | None = None) -> list[Structure]:
    """:func:`find_structures` of the ``selected`` rows that have a partition (and are in ``among``, a mask), their
    ``criterion`` breaking ties."""
    taking = results["selected"].astype(bool) & results["id"].isin(partitions)
    if among is not None:
        taking &= among
    selected = results[taking]
    ids = selected["id"].tolist()
    return find_structures(ids, [partitions[i] for i in ids],
                           oriented(selected[criterion], criterion).tolist(), threshold)


def structure_table(results: pd.DataFrame, structures: list[Structure], pick: str | None = None,
                    focus: list[str] | tuple = ()) -> pd.DataFrame:
    """The :data:`STRUCTURE_COLUMNS` table of ``structures``; sets ``results["structure"]``, the rank of each member
    row's structure (NA elsewhere). The structure holding the row ``pick`` (an id) is marked ``pick`` and
    represented by that row, the row a user gets; the others by their medoid. ``focus``: the features they were
    formed among (``cluster.focus``), recorded on every row."""
    results["structure"] = pd.array([pd.NA] * len(results), dtype="Int64")
    by_id = results.set_index("id")
    rows = []
    for s in structures:
        results.loc[results["id"].isin(s.members), "structure"] = s.rank
        picked = pick in s.members
        representative = pick if picked else s.representative
        rep = by_id.loc[representative]
        features = [by_id.loc[m, "feature"] for m in s.members]
        rows.append({"structure": s.rank, "pick": picked, "n_features": len(features), "features": ", ".join(features),
                     "describes": "; ".join(dict.fromkeys(describe(f) for f in features)), "agreement": s.agreement,
                     "representative": representative, "view": rep["view"], "algorithm": rep["algorithm"],
                     "n_clusters": rep["n_clusters"], "nmi": rep["nmi"], "acc": rep["acc"], "focus": ", ".join(focus),
                     "follows": ""})
    return pd.DataFrame(rows, columns=STRUCTURE_COLUMNS)


def picked_model(results: pd.DataFrame, criterion: str, partitions: dict[str, np.ndarray] | None = None,
                 tie: float = STABILITY_TIE, among: pd.Series | None = None) -> pd.Series:
    """Stage 05's label-free pick across features: a mask with the one ``selected`` row whose model's pre-trained
    embedding its most stable clusterer partitions most stably (``latent_stability``). Among selected rows within
    ``tie`` (:data:`~audioclust.clustering.selection.STABILITY_TIE`) of the most stable, the one whose partition
    agrees most with the other features' selected rows (mean AMI, as a structure's representative is chosen), then
    the best ``criterion``, then the first in table order.

    The stability gain compares models of any input and size, as it compares stage 04's views: each model's
    stability is measured against a Gaussian of its own embedding's shape. Silhouette compares distances measured
    in each embedding's own geometry, and DCEC tightens its embedding the longer it runs, so between equally
    stable models it would favour the longer DCEC run; agreement compares partitions only. All False when no
    selected row has a finite stability gain (:func:`audioclust.results.choose_result` then falls back on the
    criterion).

    Parameters
    ----------
    results : stage 05's rows after :func:`~audioclust.clustering.selection.mark_selected` (``id``, ``selected``,
        ``latent_stability``, ``criterion``).
    criterion : the internal criterion that marked ``selected``.
    partitions : cluster labels by row id, at least of the selected rows; None (or a row missing): the tie goes
        to the criterion.
    among : a mask of the rows that may be picked and whose agreement counts (``cluster.focus``); None: all.
    """
    picked = pd.Series(False, index=results.index)
    selected = results["selected"].astype(bool)
    if among is not None:
        selected &= among
    gain = pd.to_numeric(results["latent_stability"], errors="coerce").where(selected)
    if not np.isfinite(gain).any():
        return picked
    near = gain.index[gain >= gain.max() - tie]
    agreement = pd.Series(np.nan, index=near)
    rows = results.index[selected]
    if len(near) > 1 and partitions is not None and results.loc[rows, "id"].isin(partitions).all():
        similarity = agreement_matrix([partitions[i] for i in results.loc[rows, "id"]])
        agreement = pd.Series((similarity.sum(axis=1) - 1.0) / (len(rows) - 1), index=rows)[near]
    keys = pd.DataFrame({"agreement": agreement, "score": oriented(results[criterion], criterion)[near],
                         "gain": gain[near]}).fillna(-np.inf)
    picked[keys.sort_values(["agreement", "score", "gain"], ascending=False, kind="stable").index[0]] = True
    return picked


def mark_autoencoder_choices(results: pd.DataFrame, criterion: str, k: int | None,
                             partitions: dict[str, np.ndarray] | None,
                             threshold: float = STRUCTURE_AGREEMENT, focus: list[str] | tuple = ()) -> pd.DataFrame:
    """Stage 05's label-free choices on its rows, in place: ``latent_chosen`` (:func:`chosen_latents`), ``eligible``
    and ``selected`` (:func:`mark_selected` among the chosen size's :func:`selectable_clusterings`), ``structure``
    (the structures the selected rows form, as in stage 04: :func:`selected_structures` at ``threshold``,
    ``cluster.structure_agreement``) and ``pick``: with ``k`` given, the most stable model
    (:func:`picked_model`); with k estimated per model (``k`` None), the representative of the structure most
    models see, since stability gains at different k are not on one scale (a split in two is often a model's most
    stable partition). ``partitions``: cluster labels by row id; None: no structures, and the most stable model.
    ``focus``: the models (stage-03 features or embedding models) whose selected rows form the structures and the
    pick, as in stage 04 (``cluster.focus``); empty, or naming none of the rows' features: all.

    Returns
    -------
    The structures' table (:data:`STRUCTURE_COLUMNS`, ``pick`` on the picked row's structure); empty without
    partitions.
    """
    results["latent_chosen"] = chosen_latents(results)
    mark_selected(results, criterion, k, among=results["latent_chosen"] & selectable_clusterings(results))
    among, focus = _focus_mask(results, focus)
    structures = [] if partitions is None else selected_structures(results, partitions, criterion, threshold, among)
    if k is None and structures:
        results["pick"] = results["id"] == structures[0].representative
    else:
        results["pick"] = picked_model(results, criterion, partitions, among=among)
    chosen = results.loc[results["pick"], "id"]
    return structure_table(results, structures, chosen.iloc[0] if len(chosen) else None, focus)


def describe(feature: str) -> str:
    """What a feature mainly encodes, in words (a model the user brought: its name)."""
    return FEATURE_MEANINGS.get(feature, f"{feature} (pretrained model)")
