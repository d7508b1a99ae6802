"""Number-of-clusters estimation on blobs, uniform noise and hand-made curves."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from threadpoolctl import threadpool_limits

from audioclust.clustering.kselect import (
    KSelection,
    consensus,
    estimate_k,
    gap_choice,
    knee,
)
from audioclust.config import K_METHODS, load_config
from audioclust.core.errors import AudioclustError, ConfigError

CENTERS = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0), (10.0, 10.0)]
FAST = {"n_init": 3, "n_references": 5}


@pytest.fixture(autouse=True)
def one_thread():
    """One BLAS/OpenMP thread: on 2 busy shared cores, 2-thread K-Means fits of tiny data run 10-40x slower."""
    with threadpool_limits(limits=1):
        yield


def test_knee_of_an_increasing_curve():
    # x scaled: 0, .25, .5, .75, 1;  y = [0,0,0,1,8] scaled: 0, 0, 0, .125, 1
    # chord y = x, distance ~ |x - y|: 0, .25, .5, .625, 0 -> index 3
    assert knee([0, 0, 0, 1, 8]) == 3


def test_elbow_of_a_decreasing_curve():
    # inertia 100, 40, 10, 8, 6 at k = 1..5. Scaled: x = 0, .25, .5, .75, 1;
    # y = (v - 6)/94 = 1, .362, .043, .021, 0. Chord x + y = 1, distance ~ |x + y - 1|:
    # 0, .388, .457, .229, 0 -> max at index 2, i.e. k = 3
    assert knee([100, 40, 10, 8, 6], x=[1, 2, 3, 4, 5]) == 2


def test_knee_without_a_knee():
    assert knee([5, 5, 5, 5]) == 0
    assert knee([1, 2]) == 0
    with pytest.raises(AudioclustError):
        knee([1, 2, 3], x=[1, 2])


def test_consensus_ties_go_to_the_lower_median():
    assert consensus([4, 4, 4, 3, 5]) == 4
    assert consensus([2, 4]) == 2            # tie of two: the smaller
    assert consensus([2, 3, 9]) == 3         # tie of three: the middle
    assert consensus([5, 5, 3, 3, 2]) == 3   # 3 and 5 twice each
    with pytest.raises(AudioclustError):
        consensus([])


def test_consensus_sets_ends_of_the_range_aside_when_a_criterion_chose_inside():
    ks = range(2, 11)
    # 2 three times and 10 once are where monotone curves stop; the one choice inside wins
    assert consensus([6, 2, 2, 2, 10], ks) == 6
    assert consensus([6, 2, 2, 2, 10]) == 2                # without the range: plain majority
    assert consensus([5, 7, 2, 2, 10], ks) == 5            # inside 5 and 7 tie: the smaller
    # an end chosen by all criteria but one is evidence (two clear groups)
    assert consensus([5, 2, 2, 2, 2], ks) == 2
    # nothing inside: the ends decide, ties to the lower median
    assert consensus([2, 2, 10, 10], ks) == 2
    assert consensus([10, 10, 10, 2], ks) == 10
    # k = 1 (only the elbow and the gap can say it) is "no structure", never set aside
    assert consensus([1, 1, 3, 4, 10], range(1, 11)) == 1
    assert consensus([1, 3, 3, 10, 10], range(1, 11)) == 3


def test_gap_rule():
    # k=1: 0.1 >= 0.5 - 0.05? no;  k=2: 0.5 >= 0.82 - 0.05? no;  k=3: 0.82 >= 0.85 - 0.05 = 0.80 -> 3
    # (without the s term 0.82 < 0.85 and the rule would run on to k=4)
    assert gap_choice([1, 2, 3, 4], np.array([0.1, 0.5, 0.82, 0.85]), np.full(4, 0.05)) == 3
    # always increasing by more than s: the largest candidate
    assert gap_choice([1, 2, 3], np.array([0.1, 0.5, 0.9]), np.full(3, 0.05)) == 3


def four_blobs():
    X, _ = make_blobs(n_samples=120, centers=CENTERS, cluster_std=0.7, random_state=0)
    return X.astype(np.float32)


def test_every_criterion_picks_four_blobs():
    sel = estimate_k(four_blobs(), range(1, 9), random_state=0, **FAST)
    assert isinstance(sel, KSelection)
    assert sel.table["k"].tolist() == list(range(1, 9))
    assert set(sel.table.columns) == {"k", "inertia", "silhouette", "davies_bouldin", "calinski_harabasz",
                                      "gap", "gap_s"}
    assert sel.choices == {m: 4 for m in K_METHODS}
    assert sel.consensus == 4
    # the internal criteria are undefined for one cluster
    first = sel.table.iloc[0]
    assert np.isnan(first["silhouette"]) and np.isnan(first["davies_bouldin"])
    assert np.all(np.diff(sel.table["inertia"]) < 0)


def test_samples_for_silhouette_and_gap_are_seeded():
    X = four_blobs()
    a = estimate_k(X, range(2, 7), random_state=1, sample_size=60, **FAST)
    b = estimate_k(X, range(2, 7), random_state=1, sample_size=60, methods=["silhouette", "gap"], **FAST)
    assert a.table[["silhouette", "gap", "gap_s"]].equals(b.table[["silhouette", "gap", "gap_s"]])
    assert a.choices["silhouette"] == a.choices["gap"] == 4
    # inertia/DB/CH always use every sample
    full = estimate_k(X, range(2, 7), random_state=1, methods=["elbow", "davies_bouldin"], n_init=3)
    np.testing.assert_allclose(a.table["inertia"], full.table["inertia"])
    np.testing.assert_allclose(a.table["davies_bouldin"], full.table["davies_bouldin"])


@pytest.mark.parametrize("seed", [0, 1])
def test_uniform_noise(seed):
    # What we found: on uniform noise in the unit square (n=200) the gap statistic says
    # k = 1 (seeds 0-5, both reference boxes), while the elbow still finds a "knee"
    # (k = 3) and silhouette a maximum (3-4): only the gap can say "no structure".
    U = np.random.default_rng(seed).uniform(size=(200, 2))
    sel = estimate_k(U, range(1, 6), random_state=seed, methods=["gap", "elbow"], n_init=2, n_references=8)
    assert sel.choices["gap"] == 1
    assert sel.choices["elbow"] > 1
    assert set(sel.table.columns) == {"k", "inertia", "gap", "gap_s"}


def test_bad_inputs_are_explained():
    X = four_blobs()[:6]
    with pytest.raises(ConfigError, match="allowed: elbow"):
        estimate_k(X, range(2, 4), methods=["bic"])
    with pytest.raises(ConfigError, match="no usable k"):
        estimate_k(X, range(6, 9))
    # ks >= n_samples are dropped, the rest is used
    sel = estimate_k(X, range(2, 10), methods=["silhouette"], n_init=2)
    assert sel.table["k"].tolist() == [2, 3, 4, 5] and sel.dropped == (6, 7, 8, 9)
    with pytest.raises(ConfigError, match="cluster.k_min"):
        load_config(overrides=["cluster.k_min=5", "cluster.k_max=3"])
