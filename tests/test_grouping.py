"""Comparison with an external grouping: a small generated playlist example with known answers."""

import math

import numpy as np
import pandas as pd
import pytest

from audioclust.analysis import grouping
from audioclust.core.errors import ConfigError, DatasetError

# three planted communities of six songs each
PLANTED = {f"{c}{i}": n for n, c in enumerate("abc") for i in range(6)}


def playlists() -> pd.DataFrame:
    """Dense playlists inside each community, two cross-links, and an isolated pair (x0, x1)."""
    rows = []
    for c in "abc":
        songs = [f"{c}{i}" for i in range(6)]
        for p, members in enumerate([songs[:4], songs[2:], songs[::2] + [songs[1]], songs[1::2]]):
            rows += [(f"{c}-list{p}", s) for s in members]
    rows += [("mix1", "a0"), ("mix1", "b0"), ("mix2", "b5"), ("mix2", "c5")]
    rows += [("duo", "x0"), ("duo", "x1")]
    return pd.DataFrame(rows, columns=["group", "item"])


def test_read_pairs_cleans_and_checks_columns(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("group,item,extra\np1, s1 ,z\np1,s1,z\np1,,z\np2,s2,z\n")
    pairs = grouping.read_pairs(path)
    assert pairs.values.tolist() == [["p1", "s1"], ["p2", "s2"]]  # stripped, duplicate and empty dropped

    bad = tmp_path / "bad.csv"
    bad.write_text("playlist,song\np1,s1\n")
    with pytest.raises(DatasetError, match=r"lacks the column\(s\) group, item; it has: playlist, song"):
        grouping.read_pairs(bad)
    with pytest.raises(DatasetError, match="not found"):
        grouping.read_pairs(tmp_path / "missing.csv")


def test_cooccurrence_weights_count_shared_groups():
    pairs = pd.DataFrame({"group": ["g1", "g1", "g1", "g2", "g2", "g3"], "item": ["a", "b", "c", "a", "b", "d"]})
    graph = grouping.cooccurrence_graph(pairs)
    assert sorted(graph.nodes) == ["a", "b", "c", "d"]
    assert graph["a"]["b"]["weight"] == 2          # g1 and g2
    assert graph["a"]["c"]["weight"] == 1 and graph["b"]["c"]["weight"] == 1
    assert graph.degree("d") == 0 and graph.nodes["d"]["groups"] == 1
    assert graph.nodes["a"]["groups"] == 2
    assert graph.number_of_edges() == 3


def test_largest_component_drops_and_counts_the_isolated_pair():
    graph = grouping.cooccurrence_graph(playlists())
    component, dropped = grouping.largest_component(graph)
    assert dropped == ["x0", "x1"]
    assert component.number_of_nodes() == 18 and graph.number_of_nodes() == 20


@pytest.mark.parametrize("n_communities", [None, 3])
def test_communities_recover_the_planted_ones(n_communities):
    component, _ = grouping.largest_component(grouping.cooccurrence_graph(playlists()))
    found = grouping.communities(component, n_communities=n_communities, seed=0)
    assert sorted(found) == sorted(PLANTED)
    result = grouping.compare(found, PLANTED)
    assert result["nmi"] == pytest.approx(1.0) and result["ari"] == pytest.approx(1.0)
    assert result["n_communities"] == 3


def test_requested_number_of_communities_is_met():
    component, _ = grouping.largest_component(grouping.cooccurrence_graph(playlists()))
    assert len(set(grouping.communities(component, n_communities=2).values())) == 2
    with pytest.raises(ConfigError, match="between 1 and the number of items"):
        grouping.communities(component, n_communities=19)


def test_compare_matches_hand_computed_scores_when_clusters_split_a_community():
    # audio clusters: a -> 0, b -> 1, c split into c0-c2 -> 2 and c3-c5 -> 3
    clusters = {f"a{i}": 0 for i in range(6)} | {f"b{i}": 1 for i in range(6)}
    clusters |= {f"c{i}": 2 if i < 3 else 3 for i in range(6)}
    clusters["lonely"] = 0                             # an audio file no playlist holds
    communities = dict(PLANTED, extra=1)               # an item with no audio file
    result = grouping.compare(communities, clusters)
    assert (result["n_common"], result["n_items_communities"], result["n_items_clusters"]) == (18, 19, 19)
    # NMI = I / mean(H(Y), H(C)); every cluster is pure, so I = H(Y) = ln 3
    h_y = math.log(3)
    h_c = 2 / 3 * math.log(3) + 1 / 3 * math.log(6)
    assert result["nmi"] == pytest.approx(2 * h_y / (h_y + h_c), abs=1e-12)  # 0.904851
    # ARI from pair counts: cells 15+15+3+3 = 36, rows 3*15 = 45, columns 36, all pairs 153
    expected = 45 * 36 / 153
    assert result["ari"] == pytest.approx((36 - expected) / ((45 + 36) / 2 - expected), abs=1e-12)  # 0.849558
    table = result["contingency"]
    assert table.to_numpy().tolist() == [[6, 0, 0, 0], [0, 6, 0, 0], [0, 0, 3, 3]]
    assert (result["n_communities"], result["n_clusters"]) == (3, 4)


def test_compare_without_common_items_says_how_to_match():
    with pytest.raises(DatasetError, match="names .* or stems"):
        grouping.compare({"a": 0}, {"b": 0})


def test_items_match_by_file_name_or_stem_and_ambiguous_stems_are_left_out():
    clusters = pd.DataFrame({"stem": ["a0", "a1", "dup", "dup"], "label": ["x", "x", "x", "y"],
                             "name": ["a0.mp3", "a1.flac", "dup.wav", "dup.wav"], "cluster": [3, 4, 5, 6]})
    assigned, counts = grouping.match_items(["a0.mp3", "music/a1.flac", "a1", "a0.ogg", "dup", "zz"], clusters)
    # a0.ogg matches the stem a0 once the extension is dropped
    assert assigned == {"a0.mp3": 3, "music/a1.flac": 4, "a1": 4, "a0.ogg": 3}
    assert counts == {"matched": 4, "unmatched": 1, "ambiguous": 1}


def test_cluster_column_must_be_named_when_ambiguous():
    frame = pd.DataFrame({"stem": ["a"], "label": [""], "3": [0], "7": [1]})
    with pytest.raises(DatasetError, match="several cluster columns \\(3, 7\\)"):
        grouping.cluster_column_of(frame)
    assert grouping.cluster_column_of(frame, "7") == "7"
    assert grouping.cluster_column_of(frame[["stem", "label", "3"]]) == "3"


def test_compare_grouping_writes_tables_and_heatmap(tmp_path):
    pairs = tmp_path / "playlists.csv"
    frame = playlists()
    frame["item"] = frame["item"] + ".mp3"             # the researcher's CSV lists file names
    frame.to_csv(pairs, index=False)
    # a stage-04 labels.csv: stem, label, one column per result id; c split into two clusters
    stems = sorted(PLANTED)
    split = [PLANTED[s] if not s.startswith("c") else 2 + (int(s[1]) >= 3) for s in stems]
    labels = pd.DataFrame({"stem": stems, "label": "", "12": split, "13": 0})
    labels_csv = tmp_path / "labels.csv"
    labels.to_csv(labels_csv, index=False)

    out = grouping.compare_grouping(pairs, labels_csv, tmp_path / "out", seed=0, cluster_column="12")
    row = out["summary"].iloc[0]
    assert (row["n_items"], row["n_dropped"], row["n_common"], row["n_unmatched"]) == (20, 2, 18, 0)
    assert row["nmi"] == pytest.approx(0.904851, abs=1e-6) and row["ari"] == pytest.approx(0.849558, abs=1e-6)
    assert out["dropped"] == ["x0.mp3", "x1.mp3"]
    names = sorted(p.name for p in out["files"])
    assert names == sorted(["grouping_comparison.csv", "grouping_comparison.md", "grouping_comparison.tex",
                            "grouping_contingency.csv", "grouping_items.csv", "grouping_contingency.png",
                            "grouping_contingency.pdf"])
    assert all(p.is_file() and p.stat().st_size > 0 for p in out["files"])
    written = pd.read_csv(tmp_path / "out" / "grouping_comparison.csv")
    assert written["nmi"].iloc[0] == pytest.approx(row["nmi"])
    items = pd.read_csv(tmp_path / "out" / "grouping_items.csv")
    assert len(items) == 18 and set(items["cluster"]) == {0, 1, 2, 3}
    assert np.array_equal(out["contingency"].sum(axis=1).to_numpy(), [6, 6, 6])
