"""Registry estimators on tiny synthetic data: recovery, determinism, sklearn API, selection."""

import inspect
from functools import lru_cache

import numpy as np
import pytest
import skfuzzy
from sklearn.base import clone
from sklearn.cluster import kmeans_plusplus
from sklearn.datasets import make_blobs, make_moons
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from audioclust.clustering.estimators.birch import BirchClustering
from audioclust.clustering.estimators.density import KneeDBSCAN, knee_eps
from audioclust.clustering.estimators.fuzzy import (
    FuzzyCMeans,
    fuzzifier_for,
    uniform_memberships,
)
from audioclust.clustering.registry import ESTIMATORS, check_params, make
from audioclust.clustering.tuning import select_params, stability_gain
from audioclust.config import ALGORITHMS, load_config
from audioclust.core.errors import AudioclustError, ConfigError
from audioclust.stages._shared import grid_from_config, params_from_config

CENTERS = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0), (10.0, 10.0)]


@pytest.fixture(autouse=True)
def one_thread():
    """One BLAS/OpenMP thread: on 2 busy shared cores, 2-thread K-Means fits of tiny data run 10-40x slower."""
    with threadpool_limits(limits=1):
        yield


@lru_cache
def blobs(n=120, seed=0):
    """Four well-separated Gaussian blobs (std 0.5, 10 apart), float32."""
    X, y = make_blobs(n_samples=n, centers=CENTERS, cluster_std=0.5, random_state=seed)
    return X.astype(np.float32), y


def test_registry_matches_config_names_and_flags():
    assert tuple(ESTIMATORS) == ALGORITHMS
    assert {n for n, s in ESTIMATORS.items() if not s.needs_k} == {"dbscan", "hdbscan", "affinity_propagation"}
    assert {n for n, s in ESTIMATORS.items() if s.quadratic} == {"agglomerative", "spectral", "affinity_propagation"}
    assert {n for n, s in ESTIMATORS.items() if s.large} == {"minibatch_kmeans", "birch"}
    assert {n for n, s in ESTIMATORS.items() if s.slow} == {"hdbscan"}
    assert make("kmeans", 4).n_init >= 10
    for name, spec in ESTIMATORS.items():
        assert spec.grid, name
        check_params(name, {**spec.defaults, **dict.fromkeys(spec.grid)})


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_every_estimator_recovers_well_separated_blobs(name):
    X, y = blobs()
    est = make(name, n_clusters=4, random_state=0)
    labels = est.fit_predict(X)
    assert isinstance(labels, np.ndarray) and labels.shape == (len(y),)
    assert np.issubdtype(labels.dtype, np.integer)
    np.testing.assert_array_equal(labels, est.labels_)
    if name == "dbscan":
        # noise-free Gaussian blobs: the k-distance knee lies in the blobs' tails, so
        # the outermost points become noise (12 of 120 here); the others are exact
        kept = labels != -1
        assert est.n_noise_ == (~kept).sum() <= 0.15 * len(y)
        assert adjusted_rand_score(y[kept], labels[kept]) == pytest.approx(1.0)
        assert est.n_clusters_ == 4
    else:
        assert adjusted_rand_score(y, labels) == pytest.approx(1.0)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_same_seed_same_labels(name):
    X, _ = blobs(n=60, seed=1)
    a = make(name, 4, random_state=3).fit_predict(X)
    b = make(name, 4, random_state=3).fit_predict(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_get_set_params_and_clone(name):
    spec = ESTIMATORS[name]
    est = make(name, 3, random_state=7)
    params = est.get_params()
    if spec.needs_k:
        assert params["n_clusters"] == 3
    if spec.seeded:
        assert params["random_state"] == 7
    else:
        assert "random_state" not in params
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    key, values = next(iter(spec.grid.items()))
    twin.set_params(**{key: values[-1]})
    assert twin.get_params()[key] == values[-1]
    assert est.get_params()[key] == params[key]
    fitted = est.fit(blobs(n=60)[0])
    assert not hasattr(clone(fitted), "labels_")


def test_make_errors_name_what_to_fix():
    with pytest.raises(ConfigError, match="allowed: kmeans"):
        make("kmeens", 3)
    with pytest.raises(ConfigError, match="'linkge'"):
        make("agglomerative", 3, linkge="single")
    with pytest.raises(ConfigError, match="n_clusters and random_state"):
        check_params("kmeans", {"random_state": 1})
    with pytest.raises(ConfigError, match="'n_clusters'"):
        select_params("kmeans", blobs(n=60)[0], 4, params={"n_clusters": 4})
    with pytest.raises(AudioclustError, match="needs n_clusters"):
        make("gmm", None)
    # algorithms without k ignore it
    assert "n_clusters" not in make("dbscan", 4).get_params()


def test_fuzzy_cmeans_memberships_and_validity_indices():
    X, y = blobs()
    state = np.random.get_state()
    fcm = FuzzyCMeans(n_clusters=4, m=2.0, random_state=0).fit(X)
    # skfuzzy's own seed= would reseed the global generator; ours does not touch it
    assert np.array_equal(np.random.get_state()[1], state[1])
    u = fcm.u_
    assert u.shape == (4, len(y))
    np.testing.assert_allclose(u.sum(axis=0), 1.0, atol=1e-12)
    np.testing.assert_array_equal(fcm.labels_, u.argmax(axis=0))
    n = u.shape[1]
    assert fcm.partition_coefficient_ == pytest.approx(np.sum(u ** 2) / n)
    assert fcm.partition_entropy_ == pytest.approx(-np.sum(u * np.log(u)) / n)
    # PC equals skfuzzy's fpc = trace(u u^T) / n
    assert fcm.partition_coefficient_ == pytest.approx(np.trace(u @ u.T) / n)
    # well separated -> nearly crisp
    assert fcm.partition_coefficient_ > 0.9 and fcm.partition_entropy_ < 0.25
    found = sorted(map(tuple, np.round(fcm.cluster_centers_)))
    assert found == sorted(CENTERS)
    # predict: with the centres fixed the memberships are the fit's last ones
    np.testing.assert_allclose(fcm.predict_memberships(X), u, atol=1e-8)
    np.testing.assert_array_equal(fcm.predict(X), fcm.labels_)
    # memberships to fixed centres by hand: u_ij = 1 / sum_l (d_ij / d_lj) ** (2 / (m - 1))
    d = np.linalg.norm(X[None, :, :] - fcm.cluster_centers_[:, None, :], axis=-1)
    by_hand = 1.0 / ((d[:, None, :] / d[None, :, :]) ** 2.0).sum(axis=1)
    np.testing.assert_allclose(fcm.predict_memberships(X), by_hand, atol=1e-10)
    # same memberships as skfuzzy started from the k-means++ centres' memberships
    centres, _ = kmeans_plusplus(X.astype(np.float64), 4, random_state=np.random.RandomState(0))
    d0 = np.fmax(np.linalg.norm(X[None, :, :] - centres[:, None, :], axis=-1), 1e-12)  # a centre is a sample
    init = 1.0 / ((d0[:, None, :] / d0[None, :, :]) ** 2.0).sum(axis=1)
    _, u_ref, *_ = skfuzzy.cluster.cmeans(X.astype(np.float64).T, 4, 2.0, 1e-5, 1000, init=init)
    np.testing.assert_allclose(u, u_ref, atol=1e-8)


def test_fuzzifier_for_the_data_size():
    # Schwaemmle & Jensen (2010) worked out: N = 3000, d = 40:
    # 1 + (1418/3000 + 22.05) / 1600 + (12.33/3000 + 0.243) * 40 ** (-0.0406 ln 3000 - 0.1134)
    assert fuzzifier_for(3000, 40) == pytest.approx(1 + 22.5227 / 1600 + 0.247110 * 40 ** -0.438462, abs=1e-4)
    assert fuzzifier_for(3000, 40) == pytest.approx(1.0631, abs=1e-3)
    assert fuzzifier_for(3000, 76) < fuzzifier_for(3000, 40) < fuzzifier_for(3000, 16) < 1.2
    assert fuzzifier_for(100, 2) == 2.0                           # capped at the textbook value


def test_fuzzy_cmeans_auto_m_finds_groups_where_m_2_gives_uniform_memberships():
    # six groups in 60 dimensions: at m = 1.5 or 2 every membership is ~1/6 and the argmax is noise
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(6), 100)
    X = rng.normal(0, 1.0, (6, 60))[y] + rng.normal(0, 1.0, (600, 60))
    auto = FuzzyCMeans(6, random_state=0).fit(X)
    assert auto.m_ == pytest.approx(fuzzifier_for(600, 60)) and auto.m_ < 1.1
    assert adjusted_rand_score(y, auto.labels_) == 1.0 and auto.partition_coefficient_ > 0.9
    assert uniform_memberships(auto) == ""
    for m in (1.5, 2.0):
        fuzzy = FuzzyCMeans(6, m=m, random_state=0).fit(X)
        assert fuzzy.partition_coefficient_ == pytest.approx(1 / 6, abs=1e-3)
        assert adjusted_rand_score(y, fuzzy.labels_) < 0.5
        assert uniform_memberships(fuzzy).startswith("memberships ~ 1/6")
    # the grid search rules those points out and keeps auto
    _, params, table = select_params("fcm", X, 6)
    assert params["m"] == "auto" and table["degenerate"].iloc[1:].ne("").all()
    with pytest.raises(ConfigError, match="m = 1.0"):
        FuzzyCMeans(6, m=1.0).fit(X)


def test_fuzzy_cmeans_larger_m_is_fuzzier():
    X, _ = blobs()
    pcs = [FuzzyCMeans(4, m=m, random_state=0).fit(X).partition_coefficient_ for m in (1.5, 2.0, 3.0)]
    assert pcs[0] > pcs[1] > pcs[2]
    with pytest.raises(ConfigError, match="must be a number > 1"):
        FuzzyCMeans(4, m=1.0).fit(X)


def test_gmm_probabilities():
    X, _ = blobs()
    gmm = make("gmm", 4, 0).fit(X)
    proba = gmm.predict_proba(X)
    assert proba.shape == (len(X), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(gmm.predict(X), gmm.labels_)
    assert np.isfinite(gmm.bic_)


def line_clusters():
    """1-D: 0..9 and 100..109 (spacing 1) plus outliers 50 and 160."""
    return np.r_[np.arange(10), np.arange(100, 110), 50, 160].astype(np.float32)[:, None]


def test_dbscan_eps_from_the_k_distance_knee():
    # min_samples = 3: k-distance = distance to the 2nd other neighbour.
    #   16 inner grid points: 1;  4 grid ends (0, 9, 100, 109): 2
    #   50: neighbours 9 (41), 8 (42) -> 42;  160: 109 (51), 108 (52) -> 52
    # sorted: 1 x16, 2 x4, 42, 52 (n = 22). Scaled: x = i/21, y = (d - 1)/51; the chord
    # is y = x, distance ~ |x - y|: last 1 (i=15): 0.714; last 2 (i=19): 0.905 - 0.020 = 0.885;
    # 42 (i=20): 0.952 - 0.804 = 0.148 -> knee at i = 19, eps = 2.
    X = line_clusters()
    assert knee_eps(X, min_samples=3) == pytest.approx(2.0)
    db = KneeDBSCAN(min_samples=3).fit(X)
    assert db.eps_ == pytest.approx(2.0)
    # eps 2: every grid point has >= 3 points (itself included) within 2 -> core;
    # the outliers have none -> noise
    expected = np.r_[np.zeros(10), np.ones(10), -1, -1]
    assert adjusted_rand_score(expected, db.labels_) == 1.0
    assert db.labels_[-2:].tolist() == [-1, -1]
    assert db.n_noise_ == 2 and db.n_clusters_ == 2
    # a given eps is used as is: 0.5 < spacing 1, so every point is noise
    fixed = KneeDBSCAN(eps=0.5, min_samples=3).fit(X)
    assert fixed.eps_ == 0.5 and fixed.n_noise_ == len(X)


def test_dbscan_flags_outliers_around_blobs():
    X, y = blobs()
    angle = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ring = np.c_[5 + 12 * np.cos(angle), 5 + 12 * np.sin(angle)].astype(np.float32)
    db = make("dbscan").fit(np.r_[X, ring])
    # with outliers the curve's steep end is theirs: the knee covers the blob tails
    assert db.labels_[-8:].tolist() == [-1] * 8
    assert adjusted_rand_score(np.r_[y, [-1] * 8], db.labels_) == pytest.approx(1.0)


def big_blob_and_small_group():
    """200 points uniform in a disc of radius 3 and 3 points 8 away: single linkage is right, ward is not."""
    rng = np.random.default_rng(0)
    r, t = 3 * np.sqrt(rng.uniform(size=200)), rng.uniform(0, 2 * np.pi, 200)
    small = np.c_[8 + 0.2 * rng.standard_normal(3), 0.2 * rng.standard_normal(3)]
    X = np.r_[np.c_[r * np.cos(t), r * np.sin(t)], small].astype(np.float32)
    return X, np.r_[np.zeros(200, int), np.ones(3, int)]


def test_select_params_takes_no_labels():
    names = set(inspect.signature(select_params).parameters)
    assert names == {"name", "X", "n_clusters", "random_state", "criterion", "params", "grid", "sample_size",
                     "min_cluster_share", "max_noise_share", "n_resamples", "stability_max_samples"}


def test_select_params_prefers_a_linkage_that_separates_the_small_group():
    X, y = big_blob_and_small_group()
    best, params, table = select_params("agglomerative", X, n_clusters=2, random_state=0)
    assert list(table["linkage"]) == ["ward", "complete", "average", "single"]
    # ward halves the disc (ARI ~0.04, silhouette 0.36); single/average/complete find the
    # group (silhouette 0.64, identical labels: the tie goes to the first in grid order)
    assert table.set_index("linkage").loc["ward", "rank"] == 4
    assert table.set_index("linkage").loc["single", "silhouette"] == pytest.approx(table["silhouette"].max())
    assert params["linkage"] != "ward"
    assert adjusted_rand_score(y, best.labels_) == 1.0
    assert table["selected"].sum() == 1


def test_silhouette_cannot_see_two_moons():
    # Known limitation, kept visible: single linkage recovers the moons exactly, yet every
    # centroid-based internal criterion prefers a compact (wrong) split.
    X, y = make_moons(200, noise=0.05, random_state=0)
    _, params, table = select_params("agglomerative", X.astype(np.float32), n_clusters=2)
    single = make("agglomerative", 2, linkage="single").fit(X)
    assert adjusted_rand_score(y, single.labels_) == 1.0
    assert params["linkage"] != "single"
    assert table.set_index("linkage").loc["single", "rank"] > 1


def test_select_params_criterion_direction():
    X, _ = big_blob_and_small_group()
    _, params, table = select_params("agglomerative", X, 2, criterion="davies_bouldin")
    assert params["linkage"] == table.loc[table["davies_bouldin"].idxmin(), "linkage"]
    _, params, table = select_params("agglomerative", X, 2, criterion="calinski_harabasz")
    assert params["linkage"] == table.loc[table["calinski_harabasz"].idxmax(), "linkage"]
    with pytest.raises(ConfigError, match="allowed: silhouette"):
        select_params("agglomerative", X, 2, criterion="accuracy")


def test_degenerate_and_failed_points_rank_last():
    X, y = blobs()
    # eps 0.001: all noise; eps 100: one cluster; None: the knee
    best, params, table = select_params("dbscan", X, grid={"eps": [0.001, 100.0, None]})
    assert table["degenerate"].tolist() == ["fewer than 2 clusters", "fewer than 2 clusters", ""]
    assert table["n_clusters"].tolist()[:2] == [0, 1]
    assert table["rank"].tolist()[2] == 1 and params["eps"] is None
    assert best.n_clusters_ == 4
    # n_neighbors > n_samples fails to fit: recorded, ranked last
    best, params, table = select_params("spectral", X, 4, grid={"n_neighbors": [500, 10]})
    assert table["error"][0].startswith("ValueError") and table["rank"].tolist() == [2, 1]
    assert params["n_neighbors"] == 10 and adjusted_rand_score(y, best.labels_) == 1.0
    with pytest.raises(AudioclustError, match="every grid point failed"):
        select_params("spectral", X, 4, grid={"n_neighbors": [500]})


def test_fixed_params_and_empty_grid():
    X, _ = blobs(n=60)
    best, params, table = select_params("fcm", X, 4, params={"m": 1.7, "maxiter": 50}, grid={})
    assert len(table) == 1 and params == {"m": 1.7, "maxiter": 50} and best.m == 1.7
    _, params, table = select_params("fcm", X, 4, params={"m": 1.7}, grid={"m": [2.5]})
    assert params["m"] == 2.5


def test_params_and_grids_from_config():
    cfg = load_config(overrides=["cluster.fcm_m=1.8", "cluster.dbscan_min_samples=4",
                                 "cluster.grids={dbscan: {min_samples: [4, 8]}}"])
    params = params_from_config(cfg.cluster)
    assert params["fcm"]["m"] == 1.8 and params["dbscan"] == {"eps": None, "min_samples": 4}
    assert params["kmeans"]["n_init"] == cfg.cluster.n_init
    for name, p in params.items():
        check_params(name, p)
    assert grid_from_config(cfg.cluster, "dbscan") == {"min_samples": [4, 8]}
    assert grid_from_config(cfg.cluster, "gmm") == ESTIMATORS["gmm"].grid
    assert grid_from_config(load_config(overrides=["cluster.tune=false"]).cluster, "gmm") == {}
    with pytest.raises(ConfigError, match="'min_sample'"):
        grid_from_config(load_config(overrides=["cluster.grids={dbscan: {min_sample: [4]}}"]).cluster, "dbscan")
    with pytest.raises(ConfigError, match="cluster.grids"):
        load_config(overrides=["cluster.grids={dbscn: {min_samples: [4]}}"])


def test_birch_threshold_is_relative_and_the_global_step_stays_linear():
    X, y = blobs()
    # default radius 0.25 x spread 7.1: one subcluster per blob (4 = k, no global step needed)
    assert BirchClustering(n_clusters=4).fit(X).global_step_ == "none"
    est = BirchClustering(n_clusters=4, threshold=0.05).fit(X)
    assert est.global_step_ == "agglomerative" and est.subcluster_centers_.shape[0] > 4
    assert adjusted_rand_score(y, est.labels_) == 1.0
    # the same data 1000 times larger: the same subclusters and labels, a 1000 times larger radius
    big = BirchClustering(n_clusters=4, threshold=0.05).fit(X * 1000)
    np.testing.assert_array_equal(big.labels_, est.labels_)
    assert big.threshold_ == pytest.approx(1000 * est.threshold_, rel=1e-4)
    # a tiny radius: every sample its own subcluster (120 > 50) -> K-Means groups the subclusters
    fine = BirchClustering(n_clusters=4, threshold=1e-4, max_subclusters=50, random_state=0).fit(X)
    assert fine.subcluster_centers_.shape[0] == 120 and fine.global_step_ == "kmeans"
    assert adjusted_rand_score(y, fine.labels_) == 1.0
    # a radius wider than the data: one subcluster, fewer clusters than asked (degenerate for the selection)
    coarse = BirchClustering(n_clusters=4, threshold=5.0).fit(X)
    assert coarse.global_step_ == "none" and np.unique(coarse.labels_).size < 4


def test_stability_gain_of_separated_blobs_and_of_one_gaussian():
    X, y = blobs()
    gain = stability_gain("kmeans", X, 4, random_state=0, params={"n_init": 3})
    # the four blobs: every half-sample finds them (S = 1); on the Gaussian of the same
    # shape K-Means is less reproducible, and gain = S - S_null exactly
    assert gain["stability_raw"] == 1.0
    assert 0.0 < gain["stability_null"] < 1.0
    assert gain["stability"] == gain["stability_raw"] - gain["stability_null"]
    # scale-free: the same view 1000 times larger scores the same
    assert stability_gain("kmeans", X * 1000, 4, params={"n_init": 3})["stability"] == pytest.approx(gain["stability"])
    # no groups at all: no more stable than the reference
    noise = np.random.default_rng(0).normal(size=(120, 2)).astype(np.float32)
    assert abs(stability_gain("kmeans", noise, 4, params={"n_init": 3})["stability"]) < 0.2
    # above max_samples both stabilities use a seeded sample (same seed, same numbers)
    a = stability_gain("kmeans", X, 4, params={"n_init": 3}, max_samples=60)
    assert a == stability_gain("kmeans", X, 4, params={"n_init": 3}, max_samples=60)
    assert a["stability_raw"] == 1.0


def test_select_params_by_stability_and_the_degenerate_guard():
    X, y = big_blob_and_small_group()
    # min_cluster_share 0.1: the 3-point group is below 0.1 x the mean size 101.5, so the
    # linkages that find it are degenerate and ward (halving the disc) is the only eligible point
    _, params, table = select_params("agglomerative", X, 2, min_cluster_share=0.1)
    assert params["linkage"] == "ward"
    reasons = table.set_index("linkage")["degenerate"]
    assert reasons["ward"] == "" and reasons["single"] == "smallest cluster 3 < 0.1 x mean 101.5"
    X, y = blobs()
    best, params, table = select_params("kmeans", X, 4, criterion="stability", n_resamples=3)
    assert {"stability", "stability_raw", "stability_null"} <= set(table.columns)
    assert table["stability_raw"].tolist() == [1.0, 1.0] and adjusted_rand_score(y, best.labels_) == 1.0
