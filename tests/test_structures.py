"""Distinct structures among the features' selected rows, and the overall label-free pick."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_mutual_info_score as ami

from audioclust.clustering.structures import STRUCTURE_COLUMNS, agreement_matrix, find_structures, mark_structures

A = np.repeat([0, 1, 2, 3], 3)               # 4 groups of 3
A2 = A.copy()
A2[3] = 0                                     # one file moved
B = np.tile([0, 1, 2], 4)                     # 3 groups across A's: independent of it
B_RELABELLED = (B + 1) % 3                    # the same partition under other names


def test_agreement_is_ami_with_noise_points_as_singletons():
    noisy = np.array([0, 0, 1, 1, -1, -1])
    plain = np.array([0, 0, 1, 1, 2, 2])
    m = agreement_matrix([noisy, plain, plain])
    assert m[0, 1] == pytest.approx(ami([0, 0, 1, 1, 2, 3], plain)) and m[0, 1] < 1
    assert m[1, 2] == pytest.approx(1.0) and np.allclose(m, m.T) and np.allclose(np.diag(m), 1)


def test_agreement_on_many_files_uses_one_seeded_sample():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, 3000)
    b = np.where(rng.random(3000) < 0.8, a, rng.integers(0, 4, 3000))       # a, with a fifth of the files moved
    rows = np.sort(np.random.default_rng(0).choice(3000, size=500, replace=False))
    sampled = agreement_matrix([a, b], max_samples=500)
    assert sampled[0, 1] == pytest.approx(ami(a[rows], b[rows]))
    assert sampled[0, 1] != pytest.approx(ami(a, b)) and abs(sampled[0, 1] - ami(a, b)) < 0.05
    assert agreement_matrix([a, b])[0, 1] == pytest.approx(ami(a, b))      # below the limit: every file


def test_structures_group_agreeing_rows_and_rank_by_support():
    ids = ["a1", "a2", "a3", "b1", "b2"]
    found = find_structures(ids, [A, A2, A, B, B_RELABELLED], [0.5, 0.9, 0.1, 0.95, 0.2], threshold=0.3)
    assert [s.members for s in found] == [("a1", "a2", "a3"), ("b1", "b2")]
    # a1 and a3 are equally central (identical); the criterion breaks the tie. a2, the most stable, is off-centre
    assert [s.representative for s in found] == ["a1", "b1"]
    assert found[0].agreement == pytest.approx((1 + 2 * ami(A, A2)) / 3)
    assert found[1].agreement == pytest.approx(1.0)
    # at agreement 1 only identical partitions group; equal support is ranked by the summed criterion
    strict = find_structures(ids, [A, A2, A, B, B_RELABELLED], [0.5, 0.9, 0.1, 0.95, 0.2], threshold=1.0)
    assert [s.members for s in strict] == [("b1", "b2"), ("a1", "a3"), ("a2",)]
    assert np.isnan(strict[2].agreement)
    assert find_structures([], [], []) == []
    assert find_structures(["x"], [A], [np.nan])[0].representative == "x"


def _results() -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    rows = [("mel.a", "mel", True, 0.5), ("mfcc.a", "mfcc", True, 0.4), ("descriptors", "descriptors", True, 0.3),
            ("chroma.a", "chroma", True, 0.9), ("chroma.b", "chroma", False, 0.95), ("mel.b", "mel", False, 0.1)]
    results = pd.DataFrame(rows, columns=["id", "feature", "selected", "stability"])
    results["view"] = results["id"]
    results["algorithm"] = "kmeans"
    results["n_clusters"] = [4, 4, 4, 3, 3, 3]
    results["nmi"], results["acc"] = np.nan, np.nan
    partitions = {"mel.a": A, "mfcc.a": A2, "descriptors": A, "chroma.a": B, "chroma.b": B, "mel.b": B}
    return results, partitions


def test_mark_structures_picks_the_centre_of_the_structure_most_features_see():
    results, partitions = _results()
    table = mark_structures(results, partitions, "stability")
    assert list(table.columns) == STRUCTURE_COLUMNS and (table["focus"] == "").all()
    assert table["structure"].tolist() == [1, 2] and table["pick"].tolist() == [True, False]
    assert table["features"].tolist() == ["mel, mfcc, descriptors", "chroma"]
    assert table.loc[1, "describes"] == "pitch class" and table.loc[1, "n_features"] == 1
    assert table["representative"].tolist() == ["mel.a", "chroma.a"]
    assert results.loc[results["pick"], "id"].tolist() == ["mel.a"]
    assert results["structure"].tolist() == [1, 1, 1, 2, pd.NA, pd.NA]


def test_pick_by_criterion_and_focus():
    results, partitions = _results()
    table = mark_structures(results, partitions, "stability", pick="criterion")
    # the most stable selected row wins, in structure 2; the structures are reported all the same
    assert results.loc[results["pick"], "id"].tolist() == ["chroma.a"]
    assert table["pick"].tolist() == [False, True]
    table = mark_structures(results, partitions, "stability", focus=["chroma", "mfcc"])
    # one feature each: ranked by the criterion, chroma's 0.9 before mfcc's 0.4
    assert table["features"].tolist() == ["chroma", "mfcc"]
    assert results.loc[results["pick"], "id"].tolist() == ["chroma.a"]
    assert table["focus"].tolist() == ["chroma, mfcc"] * 2            # recorded, so the summaries can say it
