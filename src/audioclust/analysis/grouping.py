"""Compare the audio clusters with an external grouping of the same items.

A researcher often knows relations between recordings that are not in the audio:
playlists that contain songs, sessions that contain recordings, albums, speakers. Given as
a CSV of ``group,item`` pairs (one row per membership), they become a graph whose
communities can be set against the audio clusters:

1. :func:`read_pairs` reads and cleans the pairs;
2. :func:`cooccurrence_graph`: items are nodes, two items are joined by an edge whose
   ``weight`` is the number of groups they share;
3. :func:`largest_component`: only the largest connected component is kept (items in
   other components share no group, directly or through others, with the rest: no
   community can relate them); the dropped items are counted and logged;
4. :func:`communities`: modularity-based communities, Louvain (seeded) by default, or greedy
   modularity merging stopped at the requested number of communities;
5. :func:`compare`: NMI and ARI (:mod:`audioclust.clustering.metrics`) between communities and clusters
   on the items that have both, the counts and the contingency table;
6. :func:`compare_grouping` does it all and writes tables and a heat-map.

Matching items to audio files
-----------------------------
The CSV's ``item`` column names the audio files, by **file name** (``song1.mp3``) or by
**stem** (``song1``); a path (``music/song1.mp3``) is reduced to its file name. An item is
looked up, in this order, as written, as its file name and as its file name without the
extension, among each audio file's keys: its ``stem`` and, when the cluster table has them,
its ``name`` and the file names and stems of ``path`` / ``source_path``. A key shared by two
audio files (the same stem under two labels) is ambiguous: items that only match such keys
are left out and counted (rename the items to the unique file names).
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import sparse

from audioclust.clustering.metrics import ari, contingency, nmi
from audioclust.core.errors import ConfigError, DatasetError
from audioclust.core.storage import write_csv
from audioclust.report import figures as plots
from audioclust.report.tables import write_table

log = logging.getLogger(__name__)


GROUP, ITEM = "group", "item"

#: columns of a cluster table that identify the audio file rather than hold clusters
KEY_COLUMNS = ("stem", "label", "name", "path", "source_path")


# --------------------------------------------------------------------------- pairs and graph

def read_pairs(csv: str | Path | pd.DataFrame) -> pd.DataFrame:
    """The ``group,item`` pairs of an external grouping.

    Cells are read as text and stripped; rows with an empty group or item and repeated
    pairs are dropped (counted in the log). Other columns are ignored.

    Parameters
    ----------
    csv : a CSV file with (at least) the columns ``group`` and ``item``, or such a DataFrame.

    Returns
    -------
    DataFrame of shape (n_pairs, 2), columns ``group, item`` (str), in file order.

    Raises
    ------
    DatasetError
        The file is missing, or lacks one of the two columns.
    """
    if isinstance(csv, pd.DataFrame):
        frame, origin = csv.fillna("").astype(str), "the pairs table"
    else:
        path = Path(csv)
        if not path.is_file():
            raise DatasetError(f"grouping file {path} not found: give a CSV of group,item pairs "
                               "(one row per item in a group, e.g. playlist,song)")
        frame, origin = pd.read_csv(path, dtype=str, keep_default_na=False), str(path)
    missing = [c for c in (GROUP, ITEM) if c not in frame.columns]
    if missing:
        raise DatasetError(f"{origin} lacks the column(s) {', '.join(missing)}; it has: "
                           f"{', '.join(map(str, frame.columns)) or 'none'}. It needs a header 'group,item' "
                           "and one row per item in a group (e.g. playlist,song)")
    pairs = frame[[GROUP, ITEM]].apply(lambda col: col.str.strip())
    empty = (pairs[GROUP] == "") | (pairs[ITEM] == "")
    pairs = pairs[~empty]
    duplicated = pairs.duplicated()
    pairs = pairs[~duplicated].reset_index(drop=True)
    if empty.any() or duplicated.any():
        log.info("grouping pairs: dropped %d rows with an empty cell and %d repeated pairs",
                 int(empty.sum()), int(duplicated.sum()))
    return pairs


def cooccurrence_graph(pairs: pd.DataFrame) -> nx.Graph:
    """Items as nodes, an edge between two items that share a group.

    Parameters
    ----------
    pairs : DataFrame with columns ``group, item`` (:func:`read_pairs`).

    Returns
    -------
    networkx.Graph
        One node per item (attribute ``groups``: how many groups hold it; an item alone in
        its groups is an isolated node); edge attribute ``weight``: number of groups the two
        items share.
    """
    items, item_idx = np.unique(pairs[ITEM].to_numpy(dtype=str), return_inverse=True)
    _, group_idx = np.unique(pairs[GROUP].to_numpy(dtype=str), return_inverse=True)
    # incidence matrix B (items x groups); B @ B.T counts the groups each pair of items shares
    incidence = sparse.csr_matrix((np.ones(len(pairs), dtype=np.int64), (item_idx, group_idx)),
                                  shape=(len(items), int(group_idx.max()) + 1 if len(pairs) else 0))
    shared = sparse.triu(incidence @ incidence.T, k=1).tocoo()
    graph = nx.Graph()
    memberships = np.asarray(incidence.sum(axis=1)).ravel()
    graph.add_nodes_from((str(item), {"groups": int(n)}) for item, n in zip(items, memberships))
    graph.add_weighted_edges_from((str(items[i]), str(items[j]), int(w))
                                  for i, j, w in zip(shared.row, shared.col, shared.data))
    return graph


def largest_component(graph: nx.Graph) -> tuple[nx.Graph, list[str]]:
    """The largest connected component and the items left out.

    Ties between components of the same size go to the one holding the smallest item
    name, so the choice is reproducible.

    Returns
    -------
    component : networkx.Graph (a copy)
    dropped : list of str, the items of every other component, sorted.
    """
    if graph.number_of_nodes() == 0:
        return graph.copy(), []
    parts = sorted((sorted(c) for c in nx.connected_components(graph)), key=lambda c: (-len(c), c[0]))
    dropped = sorted(item for part in parts[1:] for item in part)
    if dropped:
        log.info("grouping graph: kept the largest component (%d items); dropped %d items in %d other "
                 "components", len(parts[0]), len(dropped), len(parts) - 1)
    return graph.subgraph(parts[0]).copy(), dropped


def communities(graph: nx.Graph, n_communities: int | None = None, seed: int = 0) -> dict[str, int]:
    """Modularity-based communities of a (weighted) graph.

    Parameters
    ----------
    graph : networkx.Graph with edge attribute ``weight``.
    n_communities : None: Louvain (``louvain_communities``, seeded) finds the number itself;
        a number: greedy modularity merging (``greedy_modularity_communities`` with
        ``cutoff = best_n = n_communities``) stops at exactly that many (a connected graph
        with at least that many items).
    seed : Louvain's seed.

    Returns
    -------
    dict item -> community number; communities are numbered by size (largest 0), ties by
    their smallest item.

    Raises
    ------
    ConfigError
        ``n_communities`` is below 1 or above the number of items.
    """
    n_items = graph.number_of_nodes()
    if n_items == 0:
        return {}
    if n_communities is None:
        found = nx.community.louvain_communities(graph, weight="weight", seed=seed)
    else:
        if not 1 <= n_communities <= n_items:
            raise ConfigError(f"n_communities = {n_communities} must be between 1 and the number of items in "
                              f"the graph ({n_items}); use null to let Louvain choose")
        found = nx.community.greedy_modularity_communities(graph, weight="weight", cutoff=n_communities,
                                                           best_n=n_communities)
    ordered = sorted((sorted(c) for c in found), key=lambda c: (-len(c), c[0]))
    return {item: number for number, members in enumerate(ordered) for item in members}


# --------------------------------------------------------------------------- matching and comparison

def _keys(row: pd.Series) -> set[str]:
    keys = {str(row["stem"])} if "stem" in row.index else set()
    for column in ("name", "path", "source_path"):
        value = row.get(column)
        if isinstance(value, str) and value:
            name = PurePosixPath(value.replace("\\", "/")).name
            keys |= {name, PurePosixPath(name).stem}
    return keys - {""}


def cluster_column_of(clusters: pd.DataFrame, column: str | None = None) -> str:
    """The column of a cluster table that holds the clusters.

    ``column`` when given; else ``cluster`` when present; else the only column that is not
    one of :data:`KEY_COLUMNS` (a ``labels.csv`` of stage 04 has one column per result id:
    name the one to compare).

    Raises
    ------
    DatasetError
        The column is missing or the choice is ambiguous.
    """
    if column is not None:
        if column not in clusters.columns:
            raise DatasetError(f"the cluster table has no column {column!r}; "
                               f"it has: {', '.join(map(str, clusters.columns))}")
        return column
    if "cluster" in clusters.columns:
        return "cluster"
    candidates = [str(c) for c in clusters.columns if c not in KEY_COLUMNS]
    if len(candidates) != 1:
        raise DatasetError("the cluster table has " + (f"several cluster columns ({', '.join(candidates)})"
                           if candidates else "no cluster column") + ": name the one to compare "
                           "(cluster_column, e.g. a result id of results.csv)")
    return candidates[0]


def match_items(items: list[str], clusters: pd.DataFrame, cluster_column: str | None = None
                ) -> tuple[dict[str, Any], dict[str, int]]:
    """The audio cluster of each item of the grouping (see the module notes on matching).

    Parameters
    ----------
    items : the grouping's item names.
    clusters : DataFrame with ``stem`` (and/or ``name``, ``path``, ``source_path``) and a
        cluster column; rows whose cluster is missing (NaN or empty) are ignored.
    cluster_column : see :func:`cluster_column_of`.

    Returns
    -------
    assigned : dict item -> cluster, for the items matched to exactly one audio file.
    counts : ``matched``, ``unmatched`` (no audio file) and ``ambiguous`` (several files).
    """
    column = cluster_column_of(clusters, cluster_column)
    if not any(c in clusters.columns for c in ("stem", "name", "path", "source_path")):
        raise DatasetError("the cluster table needs a 'stem' (or 'name' / 'path') column to match the "
                           f"grouping's items to audio files; it has: {', '.join(map(str, clusters.columns))}")
    table = clusters[clusters[column].notna() & (clusters[column].astype(str) != "")]
    owners: dict[str, set[int]] = {}
    for position, (_, row) in enumerate(table.iterrows()):
        for key in _keys(row):
            owners.setdefault(key, set()).add(position)
    values = table[column]
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():  # a CSV read as text: numeric clusters become numbers again
        values = numeric
    if pd.api.types.is_float_dtype(values) and (values == values.round()).all():
        values = values.astype(np.int64)
    values = values.tolist()
    assigned: dict[str, Any] = {}
    counts = {"matched": 0, "unmatched": 0, "ambiguous": 0}
    for item in items:
        name = PurePosixPath(item.replace("\\", "/")).name
        hits = [owners[k] for k in dict.fromkeys((item, name, PurePosixPath(name).stem)) if k in owners]
        unique = next((h for h in hits if len(h) == 1), None)
        if unique is not None:
            assigned[item] = values[next(iter(unique))]
            counts["matched"] += 1
        else:
            counts["ambiguous" if hits else "unmatched"] += 1
    if counts["unmatched"] or counts["ambiguous"]:
        log.info("grouping items: %d matched to an audio file, %d unmatched, %d ambiguous",
                 counts["matched"], counts["unmatched"], counts["ambiguous"])
    return assigned, counts


def compare(communities: dict[str, Any], clusters: dict[str, Any]) -> dict[str, Any]:
    """Communities against audio clusters on the items that have both.

    Parameters
    ----------
    communities : dict item -> community.
    clusters : dict item -> audio cluster (``-1``, noise, is one more cluster).

    Returns
    -------
    dict with ``n_items_communities``, ``n_items_clusters``, ``n_common`` (items in both),
    ``n_communities`` and ``n_clusters`` (among the common items), ``nmi`` and ``ari``
    (:mod:`audioclust.clustering.metrics`, communities as the reference), ``contingency`` (DataFrame of
    counts, index ``community``, columns ``cluster``) and ``items`` (DataFrame ``item,
    community, cluster`` of the common items, sorted by item).

    Raises
    ------
    DatasetError
        No item is in both.
    """
    common = sorted(set(communities) & set(clusters))
    if not common:
        raise DatasetError(f"none of the {len(communities)} grouped items has an audio cluster: the item column "
                           "must hold the audio files' names (song1.mp3) or stems (song1)")
    comm = np.array([communities[i] for i in common])
    clus = np.array([clusters[i] for i in common])
    table = contingency(comm, clus).rename_axis(index="community", columns="cluster")
    return {
        "n_items_communities": len(communities),
        "n_items_clusters": len(clusters),
        "n_common": len(common),
        "n_communities": int(np.unique(comm).size),
        "n_clusters": int(np.unique(clus).size),
        "nmi": nmi(comm, clus),
        "ari": ari(comm, clus),
        "contingency": table,
        "items": pd.DataFrame({"item": common, "community": comm, "cluster": clus}),
    }


# --------------------------------------------------------------------------- figure and runner

@plots.styled
def contingency_figure(items: pd.DataFrame, title: str = "") -> Figure:
    """Heat-map of communities (rows) × audio clusters (columns, matched order), counts in the cells.

    Parameters
    ----------
    items : DataFrame with ``community`` and ``cluster`` (``compare(...)["items"]``).
    """
    table = plots.matched_contingency(items["community"].to_numpy(), items["cluster"].to_numpy())
    n_rows, n_cols = table.shape
    fig, axes = plots.new_figure(width=min(plots.PAGE_WIDTH, max(plots.COLUMN_WIDTH, 0.3 * n_cols + 2.2)),
                                 height=min(9.0, max(2.4, 0.22 * n_rows + 1.3)))
    ax = axes[0, 0]
    values = table.to_numpy()
    image = ax.imshow(values, cmap=plots.HEATMAP, aspect="auto")
    ax.grid(False)
    ax.set_xticks(range(n_cols), [("noise" if str(c) == "-1" else str(c)) for c in table.columns])
    ax.set_yticks(range(n_rows), [str(i) for i in table.index])
    ax.set_xlabel("audio cluster (matched order)")
    ax.set_ylabel("community of the grouping")
    if values.size <= 400:
        threshold = values.max() / 2
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=plots.MIN_FONT_SIZE,
                    color="black" if v >= threshold else "white")
    fig.colorbar(image, ax=ax, label="items")
    ax.set_title(title)
    return fig


def compare_grouping(pairs_csv: str | Path | pd.DataFrame, clusters_csv_or_frame: str | Path | pd.DataFrame,
                     out_dir: str | Path, n_communities: int | None = None, seed: int = 0,
                     cluster_column: str | None = None) -> dict[str, Any]:
    """Compare an external grouping with audio clusters and write the results.

    Parameters
    ----------
    pairs_csv : CSV (or DataFrame) of ``group,item`` pairs (:func:`read_pairs`).
    clusters_csv_or_frame : cluster table: ``stem`` (and/or ``name``, ``path``) and a cluster
        column, e.g. stage 04's ``labels.csv`` with ``cluster_column`` naming a result id.
    out_dir : folder for the outputs.
    n_communities : see :func:`communities`.
    seed : Louvain's seed.
    cluster_column : see :func:`cluster_column_of`.

    Returns
    -------
    dict: ``summary`` (one-row DataFrame: ``method, n_pairs, n_groups, n_items, n_dropped``
    (outside the largest component), ``n_matched, n_unmatched, n_ambiguous, n_common,
    n_communities, n_clusters, nmi, ari``), ``contingency``, ``items`` (item, community, cluster),
    ``dropped`` (items outside the largest component) and ``files`` (paths written into
    ``out_dir``: ``grouping_comparison.csv|md|tex``, ``grouping_contingency.csv``,
    ``grouping_items.csv``, ``grouping_contingency.png|pdf``).
    """
    pairs = read_pairs(pairs_csv)
    graph = cooccurrence_graph(pairs)
    component, dropped = largest_component(graph)
    found = communities(component, n_communities=n_communities, seed=seed)
    clusters = (clusters_csv_or_frame if isinstance(clusters_csv_or_frame, pd.DataFrame)
                else pd.read_csv(clusters_csv_or_frame, dtype=str, keep_default_na=False))
    assigned, counts = match_items(sorted(found), clusters, cluster_column)
    result = compare(found, assigned)
    summary = pd.DataFrame([{
        "method": "louvain" if n_communities is None else f"greedy modularity (n = {n_communities})",
        "n_pairs": len(pairs), "n_groups": int(pairs[GROUP].nunique()), "n_items": graph.number_of_nodes(),
        "n_dropped": len(dropped), "n_matched": counts["matched"], "n_unmatched": counts["unmatched"],
        "n_ambiguous": counts["ambiguous"], "n_common": result["n_common"],
        "n_communities": result["n_communities"], "n_clusters": result["n_clusters"],
        "nmi": result["nmi"], "ari": result["ari"],
    }])
    out = Path(out_dir)
    notes = (f"{len(dropped)} of {graph.number_of_nodes()} items lie outside the largest connected component "
             "and were left out. NMI and ARI over the items with both a community and an audio cluster.")
    files = write_table(summary, out / "grouping_comparison", caption="Audio clusters against the external grouping",
                        label="tab:grouping", title="Audio clusters against the external grouping", notes=notes)
    write_csv(out / "grouping_contingency.csv", result["contingency"].reset_index())
    write_csv(out / "grouping_items.csv", result["items"])
    files += [out / "grouping_contingency.csv", out / "grouping_items.csv"]
    title = f"NMI {result['nmi']:.2f} · ARI {result['ari']:.2f} ({result['n_common']} items)"
    files += plots.save_figure(contingency_figure(result["items"], title=title), out / "grouping_contingency")
    log.info("grouping: %d communities vs %d clusters on %d items: NMI %.3f, ARI %.3f", result["n_communities"],
             result["n_clusters"], result["n_common"], result["nmi"], result["ari"])
    return {"summary": summary, "contingency": result["contingency"], "items": result["items"],
            "dropped": dropped, "files": files}
