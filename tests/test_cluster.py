"""Stage 04 end to end on a tiny synthetic features folder (3 clear classes)."""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from test_views import make_features

from audioclust.cli import STAGES
from audioclust.clustering import selection
from audioclust.config import load_config
from audioclust.core.errors import ConfigError, StageInputError
from audioclust.core.paths import ProjectPaths
from audioclust.represent import projection
from audioclust.stages import _cluster_figures, cluster


def test_kmeans_finds_the_three_classes(project):
    cfg, paths = make_features(project, overrides={"cluster.algorithms": ["kmeans", "gmm", "dbscan"],
                                                   "parallel.n_jobs": 2})   # views in worker processes
    results = cluster.run(cfg, paths)
    out = paths.results / "clustering"
    saved = pd.read_csv(out / "results.csv")
    for col in ["feature", "view", "algorithm", "k", "params", "selected", "nmi", "acc", "ari", "homogeneity",
                "completeness", "v_measure", "purity", "silhouette", "calinski_harabasz", "davies_bouldin",
                "runtime_s", "n_noise"]:
        assert col in saved.columns
    assert len(results) == 5 * 3                               # 2 features x 2 kinds + descriptors; 3 algorithms
    km = results.set_index("id").loc["mel.stats.npy.kmeans"]
    assert km["nmi"] == pytest.approx(1.0) and km["acc"] == pytest.approx(1.0) and km["ari"] == pytest.approx(1.0)
    assert km["k"] == 3 and km["k_source"] == "given" and km["status"] == "ok"
    assert json.loads(km["params"])["n_init"] == 10
    db = results.set_index("id").loc["mel.stats.npy.dbscan"]
    assert db["k_source"] == "found" and db["k"] == db["n_clusters"] and db["n_noise"] >= 0
    # labels.csv: one column of cluster labels per ok row, rows in features.csv order
    labels = pd.read_csv(out / "labels.csv", dtype={"label": str})
    assert list(labels["stem"][:2]) == ["low_0", "low_1"] and len(labels) == 24
    assert set(results.loc[results["status"] == "ok", "id"]) <= set(labels.columns)
    assert pd.crosstab(labels["label"], labels["mel.stats.npy.kmeans"]).gt(0).sum(axis=1).eq(1).all()
    # exactly one label-free choice per feature
    assert results.groupby("feature")["selected"].sum().to_dict() == {"descriptors": 1, "mel": 1, "mfcc": 1}
    grids = pd.read_csv(out / "grids.csv")
    assert set(grids["id"]) == set(results.loc[results["status"] == "ok", "id"])
    # two features' selected rows find the three classes, the third's something else: two structures, the
    # pick is the centre of the one two features see
    structures = pd.read_csv(out / "structures.csv")
    assert structures["n_features"].tolist() == [2, 1] and structures["pick"].tolist() == [True, False]
    assert structures.loc[0, "nmi"] == pytest.approx(1.0) and structures.loc[0, "agreement"] == pytest.approx(1.0)
    assert structures.loc[1, "nmi"] < 0.5
    picked = results[results["pick"].astype(bool)]
    assert len(picked) == 1 and picked["selected"].all() and picked["id"].iloc[0] == structures.loc[0, "representative"]
    assert sorted(results.loc[results["selected"], "structure"]) == [1, 1, 2]
    assert results.loc[~results["selected"], "structure"].isna().all()
    assert "## Structures" in (out / "summary.md").read_text() and "tab:structures-" in (out / "summary.tex").read_text()


def test_summary_marks_the_best_by_nmi_row(project):
    cfg, paths = make_features(project, overrides={"cluster.algorithms": ["kmeans"]})
    cluster.run(cfg, paths)
    md = (paths.results / "clustering" / "summary.md").read_text()
    tex = (paths.results / "clustering" / "summary.tex").read_text()
    assert "| Feature | Type | Algorithm | k | NMI | ACC | Choice |" in md
    assert "best by NMI (uses labels)" in md and "label-free (stability)" in md
    assert "| mel | stats (Arrays) | kmeans | 3 | 1.000 | 1.000 |" in md
    assert r"\toprule" in tex and r"mfcc\_no" not in tex and "best by NMI (uses labels)" in tex


def test_without_labels_everything_runs_and_external_scores_are_nan(project):
    cfg, paths = make_features(project, labelled=False,
                               overrides={"cluster.k": "auto", "cluster.k_max": 5, "cluster.gap_references": 2,
                                          "cluster.criterion": "silhouette",
                                          "cluster.algorithms": ["kmeans", "agglomerative"],
                                          "views.features": ["mel", "descriptors"]})
    results = cluster.run(cfg, paths)
    assert (results["status"] == "ok").all()
    assert results[["nmi", "acc", "ari", "purity"]].isna().all().all()
    assert results["silhouette"].notna().all()
    assert results.groupby("feature")["selected"].sum().to_dict() == {"descriptors": 1, "mel": 1}
    # the selected row has the best silhouette of its feature's rows without a tiny cluster
    balanced = results["min_cluster_size"] >= 0.1 * results["n_samples"] / results["n_clusters"]
    for feature, part in results[balanced].groupby("feature"):
        assert part.loc[part["selected"], "silhouette"].iloc[0] == part["silhouette"].max()
    assert set(results["k_source"]) == {"auto"}
    ks = pd.read_csv(paths.results / "clustering" / "k_selection.csv")
    assert set(ks["view"]) == {"mel.stats.npy", "mel.image.npy", "descriptors"}
    assert ks.groupby("view")["consensus"].sum().eq(1).all()
    md = (paths.results / "clustering" / "summary.md").read_text()
    assert "best by NMI" not in md.split("\n\n")[1]             # the table itself has no best-by-NMI row
    assert "No labels" in md


def test_quadratic_algorithms_are_skipped_above_the_limit(project, caplog):
    cfg, paths = make_features(project, overrides={"cluster.algorithms": ["kmeans", "agglomerative", "spectral"],
                                                   "cluster.max_samples_quadratic": 20,
                                                   "views.features": ["mel"], "views.kinds": ["stats"]})
    results = cluster.run(cfg, paths).set_index("algorithm")
    for name in ("agglomerative", "spectral"):
        assert results.loc[name, "status"] == "skipped"
        assert "max_samples_quadratic = 20" in results.loc[name, "reason"]
        assert np.isnan(results.loc[name, "nmi"])
        assert not results.loc[name, "selected"]
    assert results.loc["kmeans", "status"] == "ok" and results.loc["kmeans", "selected"]
    assert "agglomerative skipped" in caplog.text
    labels = pd.read_csv(paths.results / "clustering" / "labels.csv")
    assert "mel.stats.npy.agglomerative" not in labels.columns


def test_degenerate_views_are_one_counted_warning_per_algorithm(project, caplog):
    # HDBSCAN with a noise share of at most 5 %: on some views every grid point is degenerate
    cfg, paths = make_features(project, overrides={"cluster.algorithms": ["kmeans", "hdbscan"],
                                                   "cluster.max_noise_share": 0.05,
                                                   "cluster.grids": {"hdbscan": {"min_cluster_size": [4, 20]}}})
    caplog.set_level(logging.WARNING)
    results = cluster.run(cfg, paths)
    hdbscan = results[results["algorithm"] == "hdbscan"]
    bad = hdbscan[hdbscan["degenerate"] != ""]
    assert 0 < len(bad) < len(hdbscan) == 5                     # 5 views, some of them degenerate
    assert (results.loc[results["algorithm"] == "kmeans", "degenerate"] == "").all()
    said = [r.getMessage() for r in caplog.records if "degenerate" in r.getMessage()]
    rules = Counter(bad["degenerate"].map(selection.degenerate_rule)).most_common()
    assert said == [f"hdbscan: every grid point degenerate on {len(bad)} of 5 views ("
                    + ", ".join(f"{rule}: {n}" for rule, n in rules)
                    + "); see the degenerate column of results/tiny/clustering/results.csv"]
    # the measured values are left out, so that views with the same problem count together
    assert all(rule in ("fewer than 2 clusters", "noise share > 0.05") for rule, _ in rules)


def test_hdbscan_is_skipped_above_the_slow_limit(project):
    cfg, paths = make_features(project, overrides={"cluster.algorithms": ["kmeans", "hdbscan"],
                                                   "cluster.max_samples_slow": 20,
                                                   "views.features": ["mel"], "views.kinds": ["stats"]})
    results = cluster.run(cfg, paths).set_index("algorithm")
    assert results.loc["hdbscan", "status"] == "skipped"
    assert "24 files > cluster.max_samples_slow = 20" in results.loc["hdbscan", "reason"]
    assert results.loc["kmeans", "status"] == "ok"


def test_stability_criterion_selects_and_is_recorded(project):
    cfg, paths = make_features(project, overrides={"cluster.algorithms": ["kmeans", "agglomerative"],
                                                   "cluster.criterion": "stability", "cluster.stability_resamples": 3})
    results = cluster.run(cfg, paths)
    ok = results[results["status"] == "ok"]
    # the grid was searched by the silhouette (tune_criterion); the chosen points got a stability
    assert ok["stability"].notna().all() and (ok["stability_s"] > 0).all()
    np.testing.assert_allclose(ok["stability"], ok["stability_raw"] - ok["stability_null"])
    # three clear classes: K-Means finds them in every half-sample of the mel stats view
    assert results.set_index("id").loc["mel.stats.npy.kmeans", "stability_raw"] == 1.0
    for feature, part in ok.groupby("feature"):
        eligible = part[part["degenerate"].fillna("") == ""]
        assert part.loc[part["selected"], "stability"].iloc[0] == eligible["stability"].max()
    assert "label-free (stability)" in (paths.results / "clustering" / "summary.md").read_text()


def test_k_that_does_not_fit_is_an_error_row(project):
    cfg, paths = make_features(project, n_per_class=2, overrides={"cluster.k": 6, "views.features": ["mel"],
                                                                  "views.kinds": ["stats"]})
    (row,) = cluster.run(cfg, paths).to_dict("records")
    assert row["status"] == "error" and "k = 6" in row["reason"]


def test_figures_are_written_as_png_and_pdf(project, monkeypatch):
    cfg, paths = make_features(project, overrides={"cluster.algorithms": ["kmeans", "agglomerative", "fcm"],
                                                   "cluster.figures": True, "cluster.k": "auto", "cluster.k_max": 4,
                                                   "cluster.k_methods": ["silhouette", "elbow"],
                                                   "cluster.tsne_max_samples": 15, "parallel.n_jobs": 1,
                                                   "views.features": ["mel"], "views.kinds": ["image"]})
    embedded = []
    embed_2d = projection.embed_2d

    def recording_embed_2d(X, method="pca", random_state=0):
        embedded.append((method, X.shape[0]))
        return embed_2d(X, method, random_state)

    monkeypatch.setattr(projection, "embed_2d", recording_embed_2d)      # t-SNE (the shared projection)
    monkeypatch.setattr(_cluster_figures, "embed_2d", recording_embed_2d)  # PCA scatters
    folder = paths.results / "clustering" / "figures"
    folder.mkdir(parents=True)
    earlier = ["contingency_mel_stats_npy_gmm.png", "scatter_pca_mel_stats_npy_gmm.pdf",
               "scatter_pca.mel.stats.npy.gmm.png"]                    # the last: named as by earlier versions
    for name in [*earlier, "my_notes.png"]:
        (folder / name).write_bytes(b"an earlier run's file")
    results = cluster.run(cfg, paths)
    # figures of rows an earlier run drew, and this one does not, are gone; other files stay
    assert not any((folder / name).exists() for name in earlier)
    assert (folder / "my_notes.png").read_bytes() == b"an earlier run's file"
    # 24 files: t-SNE on a seeded sample of 15 (cluster.tsne_max_samples), PCA on all
    assert ("tsne", 15) in embedded and ("pca", 24) in embedded and ("tsne", 24) not in embedded
    stems = {p.stem for p in folder.glob("*.png")} - {"my_notes"}
    assert stems == {p.stem for p in folder.glob("*.pdf")}
    selected = results.loc[results["selected"], "id"].iloc[0]            # e.g. mel.image.npy.kmeans
    row = selected.replace(".", "_")
    for stem in ["explained_variance_mel", "k_selection_mel_image_npy", f"scatter_pca_{row}",
                 f"scatter_tsne_{row}", f"contingency_{row}", "dendrogram_mel_image_npy",
                 "fcm_memberships_mel_image_npy"]:
        assert stem in stems
    assert all("." not in stem for stem in stems)


def test_a_rerun_fits_only_the_rows_whose_settings_changed(project, monkeypatch):
    cfg, paths = make_features(project, overrides={"cluster.algorithms": ["kmeans", "agglomerative", "fcm"],
                                                   "cluster.k": "auto", "cluster.k_max": 4,
                                                   "cluster.k_methods": ["silhouette", "elbow"],
                                                   "cluster.figures": True, "cluster.tsne": False,
                                                   "parallel.n_jobs": 1})
    fits, kselections = Counter(), []
    select_params, choose_k = cluster.tuning.select_params, cluster.choose_k

    def counting_select_params(name, *args, **kwargs):
        fits[name] += 1
        return select_params(name, *args, **kwargs)

    def counting_choose_k(cfg, X):
        kselections.append(X.shape)
        return choose_k(cfg, X)

    monkeypatch.setattr(cluster.tuning, "select_params", counting_select_params)
    monkeypatch.setattr(cluster, "choose_k", counting_choose_k)
    out = paths.results / "clustering"
    first = cluster.run(cfg, paths)
    n_views = first["view"].nunique()
    assert n_views == 5 and dict(fits) == {"kmeans": 5, "agglomerative": 5, "fcm": 5} and len(kselections) == 5
    figures = {p: p.stat().st_mtime_ns for p in (out / "figures").glob("*.p*")}
    assert figures

    fits.clear(), kselections.clear()
    again = cluster.run(cfg, paths)     # nothing changed: nothing fitted, the same tables, no figure redrawn
    assert not fits and not kselections
    pd.testing.assert_frame_equal(again, first)
    assert {p: p.stat().st_mtime_ns for p in (out / "figures").glob("*.p*")} == figures

    changed = copy.deepcopy(cfg)
    changed.cluster.fcm_maxiter = 500
    fits.clear()
    result = cluster.run(changed, paths)  # one algorithm's setting: its rows alone, k reused
    assert dict(fits) == {"fcm": 5} and not kselections
    others = result["algorithm"] != "fcm"
    pd.testing.assert_frame_equal(result[others], first[others])

    fits.clear()
    cluster.run(changed, paths, recompute=True)
    assert dict(fits) == {"kmeans": 5, "agglomerative": 5, "fcm": 5} and len(kselections) == 5
    assert any(p.stat().st_mtime_ns != t for p, t in figures.items() if p.exists())


def test_missing_features_csv_tells_to_run_extract(project):
    with pytest.raises(StageInputError, match="audioclust extract"):
        cluster.run(load_config(project, "nothing"), ProjectPaths(project, "nothing"))


def test_focus_on_an_unknown_feature_fails_before_work(project):
    cfg, paths = make_features(project, overrides={"cluster.algorithms": ["kmeans"], "cluster.focus": ["chroma"]})
    with pytest.raises(ConfigError, match="cluster.focus.*chroma"):
        cluster.run(cfg, paths)
    assert not (paths.results / "clustering" / "results.csv").exists()


def test_unknown_grid_parameter_fails_before_work(project):
    cfg, paths = make_features(project, overrides={"cluster.grids": {"kmeans": {"colour": [1]}}})
    with pytest.raises(ConfigError, match="colour"):
        cluster.run(cfg, paths)
    assert not (paths.results / "clustering").exists()


def test_cluster_is_a_cli_stage():
    assert "cluster" in [n for n, _, _ in STAGES]


def test_embed_2d_shapes_and_seed():
    X = np.random.default_rng(0).normal(size=(30, 5))
    assert projection.embed_2d(X, "pca").shape == (30, 2)
    a, b = projection.embed_2d(X, "tsne", 3), projection.embed_2d(X, "tsne", 3)
    np.testing.assert_array_equal(a, b)


def test_selection_skips_degenerate_rows_and_follows_the_criterion():
    results = pd.DataFrame({
        "feature": ["f", "f", "f", "g", "g", "g"],
        "status": ["ok", "ok", "ok", "ok", "skipped", "ok"],
        "degenerate": ["smallest cluster 1 < 0.1 x mean 50.0", "", "", "", "", "2 of 4 clusters"],
        "silhouette": [0.9, 0.3, 0.4, 0.2, np.nan, 0.8], "davies_bouldin": [0.1, 0.8, 0.5, 2.0, np.nan, 0.1],
        "stability": [1.0, 0.5, 0.6, np.nan, np.nan, 0.9], "n_clusters": [4, 3, 4, 4, 0, 2]})
    selection.mark_selected(results, "silhouette")
    assert results["selected"].tolist() == [False, False, True, True, False, False]
    selection.mark_selected(results, "silhouette", k=3)      # k given: only rows with 3 clusters compete
    assert results["selected"].tolist() == [False, True, False, False, False, False]
    selection.mark_selected(results, "davies_bouldin")      # lower is better
    assert results["selected"].tolist() == [False, False, True, True, False, False]
    results.loc[2, "davies_bouldin"] = 0.9
    selection.mark_selected(results, "davies_bouldin")
    assert results["selected"].tolist() == [False, True, False, True, False, False]
    selection.mark_selected(results, "stability")            # g: no eligible row with a finite stability
    assert results["selected"].tolist() == [False, False, True, False, False, False]
