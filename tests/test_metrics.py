"""Scores against values worked out by hand on tiny examples."""

import numpy as np
import pytest

from audioclust.clustering.metrics import (
    EXTERNAL,
    acc,
    ari,
    calinski_harabasz,
    completeness,
    contingency,
    davies_bouldin,
    external_scores,
    homogeneity,
    internal_scores,
    nmi,
    partition_coefficient,
    partition_entropy,
    purity,
    silhouette,
    v_measure,
)
from audioclust.clustering.selection import degenerate, gaussian_reference, stability
from audioclust.core.errors import AudioclustError

LN2 = np.log(2.0)


def test_contingency_counts_classes_by_clusters_noise_included():
    table = contingency(["a", "a", "b", "b", "b"], [1, -1, 1, 0, 0])
    assert list(table.index) == ["a", "b"]
    assert list(table.columns) == [-1, 0, 1]
    # a: one noise, none in 0, one in 1;  b: none noise, two in 0, one in 1
    np.testing.assert_array_equal(table.to_numpy(), [[1, 0, 1], [0, 2, 1]])


def test_acc_and_purity_with_more_clusters_than_classes():
    # 6 points, 2 classes, 3 clusters.      cluster:  0  1  2
    #   class 0 (points 0-2):                          2  1  0
    #   class 1 (points 3-5):                          0  1  2
    # Best one-to-one matching: class0->cluster0 (2) + class1->cluster2 (2) = 4;
    # cluster 1 stays unmatched, so its 2 points are errors: ACC = 4/6.
    # Purity: majority per cluster = 2 + 1 + 2 = 5 -> 5/6.
    y_true = [0, 0, 0, 1, 1, 1]
    y_pred = [0, 0, 1, 1, 2, 2]
    assert acc(y_true, y_pred) == pytest.approx(4 / 6)
    assert purity(y_true, y_pred) == pytest.approx(5 / 6)


def test_acc_and_purity_with_fewer_clusters_than_classes():
    # 3 classes, 2 clusters.  cluster:  0  1
    #   class 0:                        2  0
    #   class 1:                        2  0
    #   class 2:                        0  2
    # Matching: one of class 0/1 gets cluster 0 (2), class 2 gets cluster 1 (2) -> 4/6.
    # Purity: 2 (cluster 0's majority, a tie) + 2 = 4/6.
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 0, 1, 1]
    assert acc(y_true, y_pred) == pytest.approx(4 / 6)
    assert purity(y_true, y_pred) == pytest.approx(4 / 6)


def test_acc_is_invariant_to_cluster_names_and_counts_noise_as_a_cluster():
    # permuted names: still a perfect matching
    assert acc(["x", "x", "y", "y", "z"], [7, 7, 3, 3, 5]) == 1.0
    # the noise cluster (-1) is matched like any other cluster: class a <-> -1
    assert acc(["a", "a", "b", "b"], [-1, -1, 0, 0]) == 1.0
    # noise split across two classes: only 1 of the 2 noise points can be matched -> 3/4
    assert acc(["a", "b", "b", "b"], [-1, -1, 0, 0]) == pytest.approx(3 / 4)


def test_entropy_scores_of_a_known_small_case():
    # y = [0,0,1,1], c = [0,0,0,1];  joint p(y,c): (0,0)=1/2, (1,0)=1/4, (1,1)=1/4
    # H(Y) = ln 2 = 0.693147;  H(C) = -(3/4 ln 3/4 + 1/4 ln 1/4) = 0.562335
    # I = 1/2 ln(4/3) + 1/4 ln(2/3) + 1/4 ln 2 = 0.143841 - 0.101366 + 0.173287 = 0.215762
    # NMI (arithmetic) = I / ((H(Y)+H(C))/2) = 0.215762 / 0.627741 = 0.343711
    # homogeneity = I/H(Y) = 0.311278;  completeness = I/H(C) = 0.383689;  V = NMI
    y, c = [0, 0, 1, 1], [0, 0, 0, 1]
    h_y = LN2
    h_c = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    mi = 0.5 * np.log(4 / 3) + 0.25 * np.log(2 / 3) + 0.25 * LN2
    assert mi == pytest.approx(0.215762, abs=1e-6)
    assert nmi(y, c) == pytest.approx(mi / ((h_y + h_c) / 2)) == pytest.approx(0.343711, abs=1e-6)
    assert homogeneity(y, c) == pytest.approx(0.311278, abs=1e-6)
    assert completeness(y, c) == pytest.approx(0.383689, abs=1e-6)
    assert v_measure(y, c) == pytest.approx(0.343711, abs=1e-6)
    # ARI: pairs within cells sum C(2,2)=1; rows C(2,2)+C(2,2)=2; columns C(3,2)+C(1,2)=3;
    # expected 2*3/C(4,2)=1, max (2+3)/2=2.5 -> (1-1)/(2.5-1) = 0
    assert ari(y, c) == pytest.approx(0.0, abs=1e-12)
    # ACC: 0->0 (2) + 1->1 (1) = 3/4; purity: 2 + 1 = 3/4
    assert acc(y, c) == pytest.approx(0.75)
    assert purity(y, c) == pytest.approx(0.75)


def test_external_scores_returns_every_key_and_perfect_partition_scores_one():
    scores = external_scores(["a", "a", "b", "b", "c"], [2, 2, 0, 0, 1])
    assert tuple(scores) == EXTERNAL
    assert all(v == pytest.approx(1.0) for v in scores.values())
    hand = external_scores([0, 0, 1, 1], [0, 0, 0, 1])
    assert hand["nmi"] == pytest.approx(0.343711, abs=1e-6)
    assert hand["acc"] == pytest.approx(0.75)


def test_external_scores_reject_mismatched_lengths():
    with pytest.raises(AudioclustError, match="one cluster label per sample"):
        external_scores([0, 1, 1], [0, 1])


X4 = np.array([[0.0], [1.0], [10.0], [11.0]], dtype=np.float32)
L4 = np.array([0, 0, 1, 1])


def test_internal_scores_by_hand():
    # silhouette: point 0: a=1, b=(10+11)/2=10.5 -> 9.5/10.5;  point 1: a=1, b=(9+10)/2 -> 8.5/9.5
    # points 10 and 11 mirror them -> mean = (9.5/10.5 + 8.5/9.5)/2 = 0.899749
    assert silhouette(X4, L4) == pytest.approx((9.5 / 10.5 + 8.5 / 9.5) / 2)
    # CH: grand mean 5.5, cluster means 0.5, 10.5: B = 2*25 + 2*25 = 100, W = 4 * 0.25 = 1
    #     (B/(k-1)) / (W/(n-k)) = 100 / 0.5 = 200
    assert calinski_harabasz(X4, L4) == pytest.approx(200.0)
    # DB: scatter 0.5 per cluster, centroid distance 10 -> (0.5+0.5)/10 = 0.1
    assert davies_bouldin(X4, L4) == pytest.approx(0.1)
    scores = internal_scores(X4, np.array([0, 0, 1, -1]))
    assert scores["n_clusters"] == 2 and scores["noise_fraction"] == 0.25


@pytest.mark.parametrize("labels", [[3, 3, 3, 3], [0, 1, 2, 3], [-1, -1, -1, -1]])
def test_degenerate_partitions_give_nan_not_errors(labels):
    scores = internal_scores(X4, np.array(labels))
    assert np.isnan(scores["silhouette"])
    assert np.isnan(scores["calinski_harabasz"])
    assert np.isnan(scores["davies_bouldin"])


def test_silhouette_sample_is_seeded_and_smaller_than_n():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (100, 2)), rng.normal(6, 1, (100, 2))].astype(np.float32)
    labels = np.r_[np.zeros(100, int), np.ones(100, int)]
    full = silhouette(X, labels)
    a = silhouette(X, labels, sample_size=50, random_state=3)
    b = silhouette(X, labels, sample_size=50, random_state=3)
    c = silhouette(X, labels, sample_size=50, random_state=4)
    assert a == b
    assert a != c
    assert a == pytest.approx(full, abs=0.1)
    # a sample that holds a single cluster is NaN, not an error: 9 zeros and one 1 (index 9);
    # the documented sample is default_rng(seed).choice(n, size, replace=False)
    labels10 = np.r_[np.zeros(9, int), 1]
    drawn = np.random.default_rng(1).choice(10, size=3, replace=False)
    assert 9 not in drawn
    assert np.isnan(silhouette(X[:10], labels10, sample_size=3, random_state=1))
    assert not np.isnan(silhouette(X[:10], labels10))


def test_partition_coefficient_and_entropy_by_hand():
    # 2 clusters x 3 samples, columns sum to 1
    u = np.array([[1.0, 0.5, 0.8],
                  [0.0, 0.5, 0.2]])
    # PC = (1 + 0 + .25 + .25 + .64 + .04) / 3 = 2.18 / 3
    assert partition_coefficient(u) == pytest.approx(2.18 / 3)
    # PE = -(1/3)(1 ln 1 + 0 ln 0 + 2 * .5 ln .5 + .8 ln .8 + .2 ln .2)
    #    = (0.693147 + 0.178515 + 0.321888) / 3 = 0.397850
    assert partition_entropy(u) == pytest.approx(0.397850, abs=1e-6)
    # bounds: crisp -> PC 1, PE 0; uniform over c=4 -> PC 1/4, PE ln 4
    crisp = np.eye(4)
    assert partition_coefficient(crisp) == 1.0 and partition_entropy(crisp) == 0.0
    flat = np.full((4, 5), 0.25)
    assert partition_coefficient(flat) == pytest.approx(0.25)
    assert partition_entropy(flat) == pytest.approx(np.log(4))


def test_memberships_must_be_2d():
    with pytest.raises(AudioclustError, match="n_clusters, n_samples"):
        partition_coefficient(np.ones(3))


# --------------------------------------------------------------------------- stability

def two_groups():
    """Ten points at 0 and ten at 100 on a line: any 2-means of any sub-sample splits them the same way."""
    X = np.r_[np.zeros(10), np.full(10, 100.0)][:, None]
    return X, np.r_[np.zeros(10, int), np.ones(10, int)]


def test_stability_of_a_perfectly_separated_set_is_one():
    X, y = two_groups()
    split = lambda Z: (Z[:, 0] > 50).astype(int)            # noqa: E731 (the right partition of any subset)
    assert stability(X, split, n_resamples=7) == 1.0
    assert stability(X, split, labels=y, n_resamples=3, fraction=0.3) == 1.0
    # cluster numbering does not matter (ARI)
    assert stability(X, lambda Z: 5 - 5 * split(Z), labels=y) == 1.0


def test_stability_is_the_mean_ari_over_sub_samples():
    X, y = two_groups()
    calls = []

    def alternate(Z):
        # right, then everything in one cluster (ARI 0 against the two groups), then right ...
        calls.append(len(Z))
        return (Z[:, 0] > 50).astype(int) if len(calls) % 2 else np.zeros(len(Z), int)

    # 4 sub-samples: ARI 1, 0, 1, 0 -> 0.5; each sub-sample holds round(0.5 * 20) = 10 rows
    assert stability(X, alternate, labels=y, n_resamples=4) == 0.5
    assert calls == [10, 10, 10, 10]
    # without labels the first call partitions all of X (right), then 3 sub-samples: 0, 1, 0
    calls.clear()
    assert stability(X, alternate, n_resamples=3) == pytest.approx(1 / 3)
    assert calls == [20, 10, 10, 10]
    with pytest.raises(AudioclustError, match="fraction"):
        stability(X, alternate, labels=y, fraction=1.0)


def test_stability_counts_each_noise_point_apart():
    X, y = two_groups()
    # the same partition every time: 4 points of each group rejected as noise, 6 + 6 grouped
    mostly_noise = np.where(np.arange(20) % 10 < 4, -1, y)
    assert stability(X, lambda Z: np.zeros(len(Z), int), labels=mostly_noise, n_resamples=1) == 0.0
    # all noise twice: nothing is grouped, no pair is together in either -> ARI 1 by convention,
    # but a single group against all-noise agrees on nothing: ARI 0
    all_noise = np.full(20, -1)
    assert stability(X, lambda Z: np.full(len(Z), -1), labels=all_noise, n_resamples=2) == 1.0
    assert stability(X, lambda Z: np.full(len(Z), -1), labels=np.zeros(20, int), n_resamples=2) == 0.0


def test_gaussian_reference_keeps_mean_and_covariance_only():
    # two points (-1, 5) and (1, 5): mean (0, 5), variance 1 along x, none along y
    X = np.array([[-1.0, 5.0], [1.0, 5.0]])
    ref = gaussian_reference(X, random_state=0)
    z = np.random.default_rng(0).standard_normal((2, 2))
    np.testing.assert_allclose(ref[:, 1], 5.0)                # no spread along y
    # eigh sorts the eigenvalues ascending: (0, 1); x = +-1 * sqrt(1) * z[:, 1]
    np.testing.assert_allclose(np.abs(ref[:, 0]), np.abs(z[:, 1]))
    big = gaussian_reference(np.random.default_rng(1).normal(size=(20000, 2)) * [3.0, 0.5] + [1.0, -2.0], 1)
    np.testing.assert_allclose(big.mean(axis=0), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(big.std(axis=0), [3.0, 0.5], rtol=0.02)


@pytest.mark.parametrize("labels, kwargs, reason", [
    ([0] * 50 + [1] * 50, {}, ""),
    ([-1] * 5, {}, "fewer than 2 clusters"),
    ([0] * 5 + [-1] * 5, {}, "fewer than 2 clusters"),        # noise is not a cluster
    ([0, 1, 2], {}, "one cluster per sample"),
    ([-1] * 60 + [0] * 20 + [1] * 20, {"max_noise_share": 0.5}, "noise share 0.60 > 0.5"),
    ([0] * 50 + [1] * 50, {"n_clusters": 3}, "2 of 3 clusters"),
    # 99 + 1: mean size 50, smallest 1 < 0.1 * 50
    ([0] * 99 + [1], {"min_cluster_share": 0.1}, "smallest cluster 1 < 0.1 x mean 50.0"),
    # noise excluded from the mean: (60 - 10) / 2 = 25; 5 >= 0.1 * 25
    ([-1] * 10 + [0] * 45 + [1] * 5, {"min_cluster_share": 0.1, "max_noise_share": 0.5}, ""),
    ([-1] * 10 + [0] * 45 + [1] * 5, {"min_cluster_share": 0.25}, "smallest cluster 5 < 0.25 x mean 25.0"),
])
def test_degenerate_reasons(labels, kwargs, reason):
    assert degenerate(np.array(labels), **kwargs) == reason
