"""Named experiments, replicates over seeds, provenance and the comparison of runs."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pandas as pd
import pytest
from test_views import make_features

from audioclust.cli import main
from audioclust.config import load_config
from audioclust.core import provenance
from audioclust.core.errors import ComparisonError, ConfigError, DatasetError, StageInputError
from audioclust.core.paths import ProjectPaths
from audioclust.core.storage import write_csv
from audioclust.report import comparison, replicates
from audioclust.results import read_results
from audioclust.stages import cluster, compare

# --------------------------------------------------------------------------- layout and config


def test_the_default_experiment_keeps_the_old_paths_and_a_named_one_has_its_own(tmp_path):
    default, named = ProjectPaths(tmp_path, "birds"), ProjectPaths(tmp_path, "birds", "k5")
    assert default.results == tmp_path.resolve() / "results" / "birds"
    assert named.results == tmp_path.resolve() / "results" / "birds" / "experiments" / "k5"
    # what the experiments share: the per-file stages' outputs, checkpoints, memos and projections
    for shared in ("features", "metadata", "wav", "checkpoints", "projections"):
        assert getattr(default, shared) == getattr(named, shared)
    assert default.memo("clustering") == named.memo("clustering")
    assert named.provenance == named.results / "provenance.json"
    with pytest.raises(DatasetError, match="experiment name '../x' is not allowed"):
        ProjectPaths(tmp_path, "birds", "../x")
    assert named.experiments() == []
    (named.results / "clustering").mkdir(parents=True)
    assert named.experiments() == ["k5"]
    (default.results / "clustering").mkdir()
    assert named.experiments() == ["default", "k5"]


def test_an_experiments_config_file_is_merged_after_the_datasets(project):
    (project / "configs" / "birds.yaml").write_text("cluster:\n  k: 4\n  n_init: 3\n")
    (project / "configs" / "experiments").mkdir()
    (project / "configs" / "experiments" / "k7.yaml").write_text("cluster:\n  k: 7\n")
    assert load_config(project, "birds").cluster.k == 4
    cfg = load_config(project, "birds", experiment="k7")
    assert cfg.cluster.k == 7 and cfg.cluster.n_init == 3
    assert load_config(project, "birds", experiment="k7", overrides=["cluster.k=9"]).cluster.k == 9
    with pytest.raises(ConfigError, match="repeats a seed"):
        load_config(project, "birds", overrides=["experiment.seeds=[0, 1, 0]"])


# --------------------------------------------------------------------------- replicates (numbers by hand)

def _long() -> pd.DataFrame:
    """Two rows of one feature over three seeds; the selection chose a, b, a."""
    return pd.DataFrame({
        "id": ["a", "b"] * 3, "feature": "f", "type": ["stats", "image"] * 3, "algorithm": "kmeans",
        "status": "ok", "seed": [0, 0, 1, 1, 2, 2],
        "nmi": [0.5, 0.8, 0.7, 0.8, 0.9, 0.2], "acc": [0.4, 0.9, 0.4, 0.7, 0.4, 0.5],
        "selected": [True, False, False, True, True, False], "pick": [True, False, False, True, True, False],
        "eligible": True})


def test_row_stats_are_means_and_sample_deviations_over_the_seeds():
    stats = replicates.row_stats(_long()).set_index("id")
    assert stats.loc["a", "n_seeds"] == 3
    assert stats.loc["a", "nmi_mean"] == pytest.approx(0.7) and stats.loc["a", "nmi_sd"] == pytest.approx(0.2)
    assert stats.loc["a", "acc_sd"] == pytest.approx(0.0)
    assert stats.loc["b", "nmi_mean"] == pytest.approx(0.6) and stats.loc["b", "nmi_sd"] == pytest.approx(0.12 ** 0.5)
    assert stats.loc["a", "times_selected"] == 2 and stats.loc["b", "times_selected"] == 1
    assert replicates.best_rows(replicates.row_stats(_long())) == {"f": "a"}


def test_the_label_free_choice_is_judged_per_seed():
    summary = replicates.replicate_summary(_long(), "stability")
    choice = summary[summary["Choice"] == "label-free (stability)"].iloc[0]
    # seeds chose a (0.5), b (0.8), a (0.9)
    assert choice["NMI"] == pytest.approx(0.7333333) and choice["NMI sd"] == pytest.approx(0.2081666)
    assert choice["Chosen in"] == "2/3 (+1 other row)" and choice["Type"] == "stats" and choice["Seeds"] == 3
    best = summary[summary["Choice"] == replicates.BEST].iloc[0]
    assert best["NMI"] == pytest.approx(0.7) and best["ACC"] == pytest.approx(0.4)
    assert summary["Choice"].tolist()[-1] == replicates.PICK
    assert replicates.plus_minus(0.73333, 0.20817, 2) == "0.73 ± 0.21"
    # stage 05: a spectral row is selected by its stability, whatever the criterion that compares K-Means and DCEC
    ae = _long().assign(stage=["ae_spectral", "dcec"] * 3)
    assert replicates.replicate_summary(ae, "silhouette")["Choice"].iloc[0] == "label-free (stability)"
    ae = _long().assign(stage=["dcec", "ae_spectral"] * 3)
    assert replicates.replicate_summary(ae, "silhouette")["Choice"].iloc[0] == "label-free (silhouette)"
    assert replicates.plus_minus(0.6, math.nan) == "0.600"


# --------------------------------------------------------------------------- the comparison table

def _runs() -> list[comparison.RunResults]:
    one_seed = pd.DataFrame({"id": ["a", "b"], "feature": "f", "type": ["stats", "image"], "algorithm": "kmeans",
                             "status": "ok", "seed": 0, "nmi": [0.3, 0.6], "acc": [0.2, 0.5],
                             "selected": [False, True], "pick": [False, True], "eligible": True})
    return [comparison.RunResults("X", {"clustering": _long()}), comparison.RunResults("Y", {"clustering": one_seed})]


def test_the_comparison_has_a_row_per_choice_and_a_column_pair_per_run():
    table = comparison.comparison_table(_runs())
    assert list(zip(table["Feature"], table["Method"])) == [
        ("(all)", comparison.PICK), ("f", comparison.CHOICE), ("f", comparison.BEST)]
    assert table["uses_labels"].tolist() == [False, False, True]
    assert table["X NMI mean"].tolist() == pytest.approx([0.7333333, 0.7333333, 0.7])
    assert table["X NMI sd"].tolist() == pytest.approx([0.2081666, 0.2081666, 0.2])
    assert table["X seeds"].tolist() == [3, 3, 3]
    assert table["Y NMI mean"].tolist() == pytest.approx([0.6, 0.6, 0.6]) and table["Y NMI sd"].isna().all()
    every = comparison.comparison_table(_runs(), rows="all")
    methods = every.set_index(["Feature", "Method"])
    assert methods.loc[("f", "stats · kmeans"), "X NMI mean"] == pytest.approx(0.7)
    assert methods.loc[("f", "image · kmeans"), "Y NMI mean"] == pytest.approx(0.6)


def test_the_best_of_each_column_is_bold_among_rows_that_did_not_use_labels():
    runs = _runs()
    table = comparison.comparison_table(runs, rows="all")
    labels = [r.label for r in runs]
    md = comparison.markdown(table, labels)
    pick_line = next(line for line in md.splitlines() if "label-free pick" in line)
    assert "**0.73 ± 0.21**" in pick_line and "**0.60**" in pick_line
    best_line = next(line for line in md.splitlines() if "uses labels" in line)
    assert "**" not in best_line           # the rows chosen with labels never compete
    # Y's ACC: pick 0.5, image·kmeans 0.5 are bold, stats·kmeans 0.2 is not
    stats_line = next(line for line in md.splitlines() if "stats · kmeans" in line)
    assert stats_line.endswith("| 0.20 |")
    tex = comparison.latex(table, labels, caption="NMI ± sd", label="tab:x")
    assert r"\multicolumn{2}{c}{X}" in tex and r"\cmidrule(lr){3-4}\cmidrule(lr){5-6}" in tex
    assert r"\textbf{0.73 $\pm$ 0.21}" in tex and r"\caption{NMI $\pm$ sd}" in tex and r"\toprule" in tex


def test_runs_with_nothing_in_common_cannot_be_compared():
    other = pd.DataFrame({"id": ["c"], "feature": "g", "type": "stats", "algorithm": "kmeans", "status": "ok",
                          "seed": 0, "nmi": [0.1], "acc": [0.1], "selected": [False], "pick": [False]})
    with pytest.raises(ValueError, match="no row in common"):
        comparison.comparison_table([_runs()[0], comparison.RunResults("Z", {"clustering": other})])


# --------------------------------------------------------------------------- compare: runs on disk

def _write_run(project, dataset, long, experiment="default", **settings):
    paths = ProjectPaths(project, dataset, experiment)
    cfg = load_config(project, dataset, overrides=settings)
    with provenance.record_stage(paths.provenance, "cluster", cfg.to_dict(), [0], dataset, experiment):
        write_csv(paths.results / "clustering" / "results.csv", long)
    return paths


def test_compare_writes_one_table_of_two_experiments_and_a_second_dataset(project):
    runs = _runs()
    _write_run(project, "birds", runs[0].results["clustering"])
    _write_run(project, "birds", runs[1].results["clustering"], experiment="k3", **{"cluster.k": 3})
    _write_run(project, "frogs", runs[1].results["clustering"])
    with pytest.raises(ComparisonError, match=r"cluster\.k: birds = auto; birds \(k3\) = 3") as refused:
        compare.run(project, ["birds", "birds:k3", "frogs"])
    assert "--allow cluster.k" in str(refused.value)
    assert not (project / "comparisons").exists()      # a refusal writes nothing
    result = compare.run(project, ["birds", "birds:k3", "frogs"], allow=["cluster.k"], name="thesis")
    assert result.labels == ["birds", "birds (k3)", "frogs"] and result.folder == project / "comparisons" / "thesis"
    saved = pd.read_csv(result.folder / "comparison.csv")
    assert saved["birds NMI mean"].tolist() == pytest.approx([0.7333333, 0.7333333, 0.7])
    assert saved["frogs NMI mean"].tolist() == pytest.approx([0.6, 0.6, 0.6])
    md = (result.folder / "comparison.md").read_text()
    assert "cluster.k: birds = auto; birds (k3) = 3; frogs = auto" in md
    assert "- birds: results/birds, 3 seed(s) (0, 1, 2)" in md
    assert "- birds (k3): results/birds/experiments/k3, 1 seed(s) (0)" in md
    for name in ("comparison.tex", "nmi.png", "nmi.pdf", "acc.png", "acc.pdf", "runs.json"):
        assert (result.folder / name).is_file()
    facts = json.loads((result.folder / "runs.json").read_text())
    assert facts["allowed_differences"]["cluster.k"]["birds (k3)"] == 3
    assert facts["runs"]["birds"]["seeds"] == [0, 1, 2]
    assert set(facts["runs"]["frogs"]["stages"]["clustering"]) >= {"config_hash", "git", "machine", "audioclust"}


def test_compare_names_what_is_missing(project):
    _write_run(project, "birds", _runs()[0].results["clustering"])
    with pytest.raises(StageInputError, match=r"results/birds/experiments/k9 does not exist; experiments of birds: "
                                              r"default"):
        compare.run(project, ["birds:k9"])
    with pytest.raises(StageInputError, match="dataset frogs has no results"):
        compare.run(project, ["birds", "frogs"])
    (project / "results" / "toads" / "clustering").mkdir(parents=True)
    with pytest.raises(StageInputError, match=r"no results.csv in results/toads"):
        compare.run(project, ["toads"])
    write_csv(project / "results" / "toads" / "clustering" / "results.csv", _long())
    with pytest.raises(StageInputError, match="does not record the settings of stage cluster"):
        compare.run(project, ["toads"])
    assert main(["compare", "birds:k9", "--root", str(project)]) == 2
    assert not (project / "comparisons").exists()
    # the report of an experiment that never ran says which ones did
    with pytest.raises(StageInputError, match=r"run `audioclust cluster --dataset birds --experiment k9` first; "
                                              r"experiments of birds with results: default"):
        read_results(ProjectPaths(project, "birds", "k9"))


# --------------------------------------------------------------------------- provenance

def test_a_stage_run_records_settings_code_machine_and_time(project, caplog):
    paths = ProjectPaths(project, "birds", "e1")
    cfg = load_config(project, "birds")
    with provenance.record_stage(paths.provenance, "cluster", cfg.to_dict(), [0], "birds", "e1"):
        pass
    record = json.loads(paths.provenance.read_text())
    entry = record["stages"]["cluster"]
    assert record["experiment"] == "e1" and entry["config"]["cluster"]["k"] == "auto"
    assert entry["config_hash"] == provenance.config_hash(cfg.to_dict()) and entry["seeds"] == [0]
    assert entry["libraries"]["numpy"] == np.__version__ and entry["machine"]["cores"] >= 1
    assert entry["wall_s"] >= 0 and entry["started"] <= entry["finished"]
    git = provenance.git_state()
    assert entry["git"] == git and (git is None or len(git["commit"]) == 40)
    assert (paths.results / "config.yaml").read_text().count("cluster:") == 1
    # a later stage with other settings is warned that the experiment's earlier results keep theirs
    changed = load_config(project, "birds", overrides=["cluster.k=5"])
    with caplog.at_level(logging.WARNING), provenance.record_stage(paths.provenance, "report", changed.to_dict(),
                                                                   [0], "birds", "e1"):
        pass
    assert "cluster.k (cluster: auto, report: 5)" in caplog.text
    assert set(json.loads(paths.provenance.read_text())["stages"]) == {"cluster", "report"}


def test_a_failed_stage_records_nothing(project):
    paths = ProjectPaths(project, "birds")
    with pytest.raises(RuntimeError), provenance.record_stage(paths.provenance, "cluster", {}, [0], "birds",
                                                              "default"):
        raise RuntimeError("boom")
    assert not paths.provenance.exists()


# --------------------------------------------------------------------------- stage 04 over seeds

def test_stage_04_over_seeds_shares_the_views_and_the_memo_with_other_experiments(project, caplog):
    cfg, paths = make_features(project, overrides={"cluster.algorithms": ["kmeans", "fcm"], "cluster.k": "auto",
                                                   "cluster.k_max": 4, "cluster.k_methods": ["silhouette"],
                                                   "parallel.n_jobs": 1})
    one = cluster.run(cfg, paths)
    assert (one["seed"] == 0).all() and not (paths.results / "clustering" / "replicates").exists()

    seeds = ProjectPaths(project, paths.dataset, "seeds3")
    cfg.experiment.seeds = [0, 1, 2]
    with caplog.at_level(logging.INFO):
        primary = cluster.run(cfg, seeds)
    n = len(one)
    assert f"cluster: {3 * n} rows, {2 * n} computed, {n} reused" in caplog.text   # seed 0 from the memo
    out = seeds.results / "clustering"
    pd.testing.assert_frame_equal(primary, one)      # the primary seed's tables are the one-seed run's
    long = pd.read_csv(out / "replicates" / "results.csv")
    assert len(long) == 3 * n and sorted(long["seed"].unique()) == [0, 1, 2]
    rows = pd.read_csv(out / "replicates" / "rows.csv").set_index("id")
    assert (rows["n_seeds"] == 3).all()
    km = long[long["id"] == "mel.stats.npy.kmeans"]
    assert rows.loc["mel.stats.npy.kmeans", "nmi_mean"] == pytest.approx(km["nmi"].mean())
    assert rows.loc["mel.stats.npy.kmeans", "times_selected"] == int(km["selected"].sum())
    summary = pd.read_csv(out / "replicates" / "summary.csv")
    assert set(summary["Seeds"]) == {3} and "± " in (out / "replicates" / "summary.md").read_text()
    record = json.loads(seeds.provenance.read_text())["stages"]["cluster"]
    assert record["seeds"] == [0, 1, 2] and record["config"]["experiment"]["seeds"] == [0, 1, 2]
    assert not (paths.results / "replicates").exists() and not (paths.results / "clustering" / "replicates").exists()

    cfg.experiment.seeds = []
    cluster.run(cfg, seeds)                          # one seed again: the earlier seeds' tables are gone
    assert not (out / "replicates").exists()


def test_a_row_memoised_under_an_estimated_k_says_who_chose_k_when_reused(project, caplog):
    cfg, paths = make_features(project, overrides={"cluster.algorithms": ["kmeans", "dbscan"], "cluster.k": "auto",
                                                   "cluster.k_min": 3, "cluster.k_max": 3,
                                                   "cluster.k_methods": ["silhouette"], "parallel.n_jobs": 1})
    estimated = cluster.run(cfg, paths)
    assert set(estimated.loc[estimated["algorithm"] == "kmeans", "k_source"]) == {"auto"}
    cfg.cluster.k = 3
    with caplog.at_level(logging.INFO):
        given = cluster.run(cfg, ProjectPaths(project, paths.dataset, "k3"))
    assert f"{len(given)} rows, 0 computed" in caplog.text      # the same k: the same rows
    assert set(given.loc[given["algorithm"] == "kmeans", "k_source"]) == {"given"}
    assert set(given.loc[given["algorithm"] == "dbscan", "k_source"]) == {"found"}


def test_the_autoencoders_pick_has_its_own_row_after_stage_04s():
    ae = pd.DataFrame({"id": ["mel.z10.dcec", "spec.z32.dcec"], "feature": ["mel", "spec"], "type": "dcec",
                       "stage": "dcec", "algorithm": "dcec", "status": "ok", "seed": 0, "nmi": [0.45, 0.78],
                       "acc": [0.4, 0.7], "selected": True, "pick": [False, True], "eligible": True})
    runs = [comparison.RunResults(r.label, {**r.results, "autoencoder": ae}) for r in _runs()]
    table = comparison.comparison_table(runs)
    keys = list(zip(table["Feature"], table["Method"]))
    assert keys[:2] == [("(all)", comparison.PICK), ("(all)", comparison.AE_PICK)]
    assert table.set_index(["Feature", "Method"]).loc[("(all)", comparison.AE_PICK), "Y NMI mean"] == pytest.approx(0.78)
