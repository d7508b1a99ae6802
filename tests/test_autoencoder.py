"""Stage 05 end to end on a tiny demo project (7 sound families × 6 files), plus its small helpers."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from audioclust import results as ac_results
from audioclust.cli import STAGES, run_stage
from audioclust.clustering import registry, selection, structures, tuning
from audioclust.clustering.kselect import estimate_k
from audioclust.config import load_config
from audioclust.core.errors import ConfigError, StageInputError
from audioclust.core.paths import ProjectPaths
from audioclust.deep import train
from audioclust.deep.data import FeaturesDataset
from audioclust.deep.reconstruction import AutoencoderModule
from audioclust.deep.schedule import dcec_batches
from audioclust.report import figure_jobs
from audioclust.report import figures as ac_report_figures
from audioclust.report import summary as ac_report_summary
from audioclust.represent.views import stored_ae_images
from audioclust.results import read_table
from audioclust.stages import _autoencoder_inputs as inputs
from audioclust.stages import autoencoder
from audioclust.stages._shared import views_settings
from audioclust.stages.prepare import generate_demo

REPO = Path(__file__).resolve().parents[1]
N_FILES = 7 * 6
# small images, few epochs and DCEC iterations, one thread: seconds per run on a shared machine
SMALL = {"autoencoder.features": ["mel"], "autoencoder.input_size": [32, 16], "autoencoder.latent_dims": [4],
         "autoencoder.max_epochs": 3, "autoencoder.batch_size": 8, "autoencoder.num_threads": 1,
         "autoencoder.update_interval": 4, "autoencoder.max_iter": 12, "cluster.k": 7, "cluster.figures": False, "cluster.tsne": False,
         "parallel.n_jobs": 1,
         # fewer than the default's 50, and other than stage 04's 5, so the counts below tell which key is used
         "autoencoder.stability_resamples": 8,
         # K-Means and DCEC alone, so the counts of K-Means fits below are theirs (spectral clustering runs K-Means
         # on its graph's eigenvectors): spectral's rows have a test of their own
         "autoencoder.algorithms": ["kmeans"]}


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    """Stages 01–03 (mel only) on the demo set, run once for the module."""
    root = tmp_path_factory.mktemp("demo_project")
    (root / "configs").mkdir()
    shutil.copy(REPO / "configs" / "default.yaml", root / "configs" / "default.yaml")
    paths = ProjectPaths(root, "demo")
    generate_demo(paths.raw, n_per_class=6, seconds=0.5)
    cfg = load_config(root, "demo", overrides={"features.kinds": ["mel"], "parallel.n_jobs": 1})
    for stage in ("metadata", "transform", "extract"):
        run_stage(stage, cfg, paths)
    return root


@pytest.fixture
def demo(demo_root, tmp_path) -> ProjectPaths:
    """A fresh copy of the demo project (features, no results) for one test."""
    shutil.copytree(demo_root, tmp_path / "project", symlinks=True)
    return ProjectPaths(tmp_path / "project", "demo")


def config(paths: ProjectPaths, **overrides):
    return load_config(paths.root, paths.dataset, overrides={**SMALL, **overrides})


def hungarian_acc(truth, pred) -> float:
    table = pd.crosstab(pd.Series(truth), pd.Series(pred)).to_numpy()
    rows, cols = linear_sum_assignment(-table)
    return table[rows, cols].sum() / table.sum()


# --------------------------------------------------------------------------- end to end

def test_stage_writes_both_stages_reuses_its_checkpoint_and_extends_the_summary(demo):
    assert "autoencoder" in [n for n, _, _ in STAGES]
    assert [n for n, _, _ in STAGES].index("autoencoder") == [n for n, _, _ in STAGES].index("cluster") + 1
    cfg = config(demo, **{"cluster.figures": True})
    first = autoencoder.run(cfg, demo)
    out = demo.results / "autoencoder"

    saved = pd.read_csv(out / "results.csv")
    for col in ["architecture", "feature", "latent_dim", "stage", "k", "nmi", "acc", "ari", "silhouette", "epochs",
                "train_s", "reused", "recon_mse", "dcec_iterations", "stopped_by", "selected", "status", "type"]:
        assert col in saved.columns
    assert list(saved["stage"]) == ["ae_kmeans", "dcec"] and list(saved["id"]) == list(first["id"])
    assert (saved["architecture"] == "dcec").all() and (saved["latent_dim"] == 4).all()
    assert (saved["k"] == 7).all() and (saved["k_source"] == "given").all() and (saved["epochs"] == 3).all()
    assert not saved["reused"].any() and (saved["train_s"] > 0).all() and (saved["status"] == "ok").all()
    dcec_row = saved.set_index("stage").loc["dcec"]
    # a target update every 4 batches; the collapse guard may go back to an earlier update (3 epochs of
    # pre-training on 42 files give a weak embedding), so DCEC keeps its 7 clusters whatever the stop
    assert dcec_row["stopped_by"] in {"tol", "max_iter", "collapse"}
    assert dcec_row["dcec_iterations"] % 4 == 0 and 0 <= dcec_row["dcec_iterations"] <= 12
    assert dcec_row["stopped_by"] == "collapse" or dcec_row["dcec_iterations"] >= 4
    assert saved["n_clusters"].tolist() == [7, 7]
    assert saved.loc[saved["stage"] == "ae_kmeans", "dcec_iterations"].isna().all()
    assert saved["selected"].sum() == 1
    # one model: one structure, the pick's, represented by the picked row, in the stage's summary once
    assert pd.read_csv(out / "structures.csv")[["structure", "pick", "n_features", "representative"]].values.tolist() \
        == [[1, True, 1, saved.loc[saved["pick"], "id"].iloc[0]]]
    assert saved.loc[saved["selected"], "structure"].tolist() == [1]
    # the demo's files were all stored alike: no recording trait to follow
    assert pd.read_csv(out / "structures.csv", keep_default_na=False)["follows"].tolist() == [""]
    assert saved.loc[~saved["selected"], "structure"].isna().all()
    assert (out / "summary.md").read_text().count("## Autoencoder structures") == 1
    assert "tab:autoencoder-structures-demo" in (out / "summary.tex").read_text()

    # every ok file is labelled, in features.csv order; the scores are those of these labels
    features = pd.read_csv(demo.features_csv, dtype={"stem": str, "label": str})
    labels = pd.read_csv(out / "labels.csv", dtype={"stem": str, "label": str})
    assert len(labels) == N_FILES == int((features["status"] == "ok").sum())
    assert list(labels["stem"]) == list(features.loc[features["status"] == "ok", "stem"])
    assert list(labels.columns) == ["stem", "label", *saved["id"]]
    for _, row in saved.iterrows():
        pred = labels[row["id"]]
        assert row["nmi"] == pytest.approx(normalized_mutual_info_score(labels["label"], pred), abs=1e-12)
        assert row["acc"] == pytest.approx(hungarian_acc(labels["label"], pred), abs=1e-12)
        assert row["n_clusters"] == pred.nunique()

    # the saved embedding is what K-Means clustered; DCEC's labels are the argmax of its soft assignments
    folder = out / "embeddings" / "mel.dcec_z4.npy"
    z = np.load(folder / "pretrained.npy")
    assert z.shape == (N_FILES, 4) and z.dtype == np.float32
    km = KMeans(n_clusters=7, n_init=cfg.autoencoder.kmeans_n_init, random_state=cfg.seed).fit(z)
    assert np.array_equal(km.labels_, labels["mel.dcec_z4.npy.ae_kmeans"])
    q = np.load(folder / "dcec_q.npy")
    assert q.shape == (N_FILES, 7) and np.allclose(q.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(q.argmax(axis=1), labels["mel.dcec_z4.npy.dcec"])
    assert np.load(folder / "dcec.npy").shape == (N_FILES, 4)

    # recon_mse: the checkpoint's reconstruction error over every file, computed here independently
    ckpt = demo.abs(saved["checkpoint"].iloc[0])
    module = AutoencoderModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).eval()
    files = inputs.feature_files(demo, features[features["status"] == "ok"], "mel", "npy")
    # the stage's input: mel trimmed on itself, in dB re its peak
    images = FeaturesDataset(files, size=[32, 16], trim_db=cfg.images.trim_db, per_file=cfg.images.per_file["mel"]).images
    with torch.no_grad():
        mse = F.mse_loss(module.model(images)[0], images).item()
    assert saved["recon_mse"].iloc[0] == pytest.approx(mse, rel=1e-4)

    figures = {p.name for p in (out / "figures").iterdir()}
    for stem in ["loss_mel_dcec_z4_npy", "reconstructions_mel_dcec_z4_npy", "dcec_history_mel_dcec_z4_npy",
                 "scatter_pca_mel_dcec_z4_npy_ae_kmeans", "scatter_pca_mel_dcec_z4_npy_dcec",
                 "contingency_mel_dcec_z4_npy_dcec"]:
        assert {f"{stem}.png", f"{stem}.pdf"} <= figures
    assert "latent_size.png" not in figures                       # one latent size only

    # stage 04 runs, then stage 05 again: checkpoint reused (nothing retrained), same labels, summary extended
    cluster_cfg = load_config(demo.root, "demo", overrides={
        "views.features": ["mel"], "views.kinds": ["stats"], "views.sources": ["npy"], "cluster.algorithms": ["kmeans"],
        "cluster.k": 7, "cluster.figures": False, "parallel.n_jobs": 1})
    run_stage("cluster", cluster_cfg, demo)
    mtime = ckpt.stat().st_mtime_ns
    for _ in range(2):                                             # twice: the summary must not grow twice
        again = autoencoder.run(config(demo), demo)
    assert again["reused"].all() and ckpt.stat().st_mtime_ns == mtime
    assert list(again["train_s"]) == list(saved["train_s"]) and list(again["epochs"]) == [3, 3]
    assert pd.read_csv(out / "labels.csv", dtype={"stem": str, "label": str}).equals(labels)
    _check_summary_with_autoencoder_rows(demo, saved)
    # stage 04 again, after stage 05: the summary keeps stage 05's rows
    run_stage("cluster", cluster_cfg, demo)
    _check_summary_with_autoencoder_rows(demo, saved)
    assert (out / "summary.md").read_text().count("## Autoencoder embeddings") == 1
    assert (out / "summary.md").read_text().count("## Autoencoder structures") == 1


def test_report_of_stage_05_shows_its_structures_and_alternatives(demo):
    # cluster.focus names the one model: recorded in structures.csv, said in the summary and the report
    cfg = config(demo, **{"report.source": "autoencoder", "report.projection": "pca", "cluster.focus": ["mel"]})
    autoencoder.run(cfg, demo)
    out = demo.results / "autoencoder"
    assert "Only the rows of cluster.focus (mel) took part" in (out / "summary.md").read_text()
    rows = pd.read_csv(out / "results.csv")
    picked, other = rows.loc[rows["pick"], "id"].iloc[0], rows.loc[~rows["pick"], "id"].iloc[0]
    # a second structure, represented by the model's other row (the demo's one feature finds one)
    table = pd.read_csv(out / "structures.csv")
    second = table.iloc[0].copy()
    second.update({"structure": 2, "pick": False, "representative": other})
    pd.concat([table, second.to_frame().T]).to_csv(out / "structures.csv", index=False)
    run_stage("report", cfg, demo)
    page = (demo.results / "report" / "index.html").read_text(encoding="utf-8")
    assert "autoencoder/structures.csv" in page and "The files group in 2 distinct ways" in page
    assert "each autoencoder model's label-free row captures one" in page and "the most stable model" in page
    assert "Only the rows of <code>cluster.focus</code> (mel) took part" in page
    data = json.loads(page.split('<script type="application/json" id="map-data">')[1].split("</script>")[0])
    (alt,) = data["alternatives"]
    labels = pd.read_csv(out / "labels.csv", dtype={"stem": str, "label": str})
    assert alt["key"] == "structure-2" and alt["cluster"] == labels[other].astype(int).tolist()
    assert data["cluster"] == labels[picked].astype(int).tolist()


def _check_summary_with_autoencoder_rows(demo: ProjectPaths, saved: pd.DataFrame) -> None:
    summary = demo.results / "clustering"
    md = (summary / "summary.md").read_text()
    table = md.split("\n\n")[1]                                   # the main table, after the heading
    assert "| mel | stats (Arrays) | kmeans | 7 |" in table
    ae_best = saved.loc[saved["nmi"].idxmax()]
    assert f"| mel | dcec autoencoder z=4 (Arrays) | {ae_best['algorithm']} | 7 | {ae_best['nmi']:.3f} |" in table
    assert md.count("## Autoencoder embeddings") == 1
    assert md.count("## Structures") == md.count("## Autoencoder structures") == 1   # stage 04's, then stage 05's
    assert "| Feature | Embedding | NMI | ACC |" in md
    for _, row in saved.iterrows():
        name = "K-Means" if row["stage"] == "ae_kmeans" else "DCEC"
        assert f"| mel | dcec autoencoder z=4 (Arrays) + {name} | {row['nmi']:.3f} | {row['acc']:.3f} |" in md
    csv = pd.read_csv(summary / "summary.csv")
    assert list(csv["Type"]) == ["stats (Arrays)"] * 2 + ["dcec autoencoder z=4 (Arrays)"] * 2
    tex = (summary / "summary.tex").read_text()
    # the main table, stage 04's structures, the autoencoder's own section and its structures
    assert tex.count(r"\begin{table}") == 4 and "dcec autoencoder z=4 (Arrays) + DCEC" in tex
    assert "tab:structures-" in tex and "tab:autoencoder-structures-" in tex
    assert tex.count("dcec autoencoder z=4 (Arrays) & ") == 2      # the two rows added to the main table


def test_unchanged_rerun_reuses_everything_and_recompute_retrains(demo, monkeypatch, caplog):
    fits, kmeans, saved = [], [], []
    fit, km_fit, save = pl.Trainer.fit, KMeans.fit, ac_report_figures.save_figure
    monkeypatch.setattr(pl.Trainer, "fit", lambda self, module, *a, **k: (
        fits.append(type(module).__name__), fit(self, module, *a, **k))[1])
    monkeypatch.setattr(KMeans, "fit", lambda self, *a, **k: (kmeans.append(1), km_fit(self, *a, **k))[1])
    counted_save = lambda *a, **k: (saved.append(1), save(*a, **k))[1]  # noqa: E731
    monkeypatch.setattr(ac_report_figures, "save_figure", counted_save)
    monkeypatch.setattr(figure_jobs, "save_figure", counted_save)   # the model's figures (drawn in this process)

    def counts():
        found = (list(fits), len(kmeans), len(saved))
        fits.clear(), kmeans.clear(), saved.clear()
        return found

    cfg = config(demo, **{"cluster.figures": True})
    first = autoencoder.run(cfg, demo)
    made = counts()
    # K-Means on the embedding, then its stability gain: a K-Means per half-sample of the embedding and of its
    # Gaussian reference, and one on the whole reference
    b = cfg.autoencoder.stability_resamples
    assert made[:2] == (["AutoencoderModule", "DCECModule"], 1 + b + 1 + b) and made[2] > 0
    out = demo.results / "autoencoder"
    labels = pd.read_csv(out / "labels.csv")
    # the memo keeps K-Means' labels and the k selection once, with the pre-trained embedding's clusters
    memo = json.loads((out / "embeddings" / "mel.dcec_z4.npy" / "memo.json").read_text())
    assert set(memo) == {"key", "figures", "figure_files", "rows", "dcec_labels", "pretrained"}
    assert memo["pretrained"]["labels"] == labels["mel.dcec_z4.npy.ae_kmeans"].tolist()
    files = [p for p in out.rglob("*") if p.is_file() and p.suffix in {".npy", ".png", ".pdf"}]
    stamps = {p: p.stat().st_mtime_ns for p in files}

    same = ["id", "k", "n_clusters", "nmi", "acc", "ari", "silhouette", "recon_mse", "val_loss", "epochs",
            "dcec_iterations", "stopped_by", "checkpoint", "latent_stability", "selected"]
    again = autoencoder.run(cfg, demo)                                # nothing changed: nothing made again
    assert counts() == ([], 0, 0)
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    assert again["reused"].all()
    pd.testing.assert_frame_equal(again.drop(columns="reused"), first.drop(columns="reused"))
    assert pd.read_csv(out / "labels.csv").equals(labels)
    # cluster.focus only chooses among the rows: nothing is made again. One naming none of this stage's models (a
    # stage-04 view) leaves every model in, and says so
    with caplog.at_level(logging.WARNING, logger="audioclust.stages.autoencoder"):
        focused = autoencoder.run(config(demo, **{"cluster.figures": True, "cluster.focus": ["chroma"]}), demo)
    assert counts() == ([], 0, 0) and "cluster.focus (chroma) names none of this stage's models (mel)" in caplog.text
    pd.testing.assert_frame_equal(focused.drop(columns="reused"), first.drop(columns="reused"))
    assert pd.read_csv(out / "structures.csv")["focus"].isna().all()
    assert "cluster.focus" not in (out / "summary.md").read_text()

    # a DCEC key: the checkpoint, the embedding's K-Means and its stability are reused; DCEC and its figures are
    # made again
    gamma = autoencoder.run(config(demo, **{"cluster.figures": True, "autoencoder.gamma": 0.2}), demo)
    made = counts()
    assert made[:2] == (["DCECModule"], 0) and made[2] > 0
    kept = gamma["stage"] == "ae_kmeans"
    pd.testing.assert_frame_equal(gamma.loc[kept, same].reset_index(drop=True),
                                  first.loc[first["stage"] == "ae_kmeans", same].reset_index(drop=True))
    columns = first.loc[first["stage"] == "ae_kmeans", "id"].tolist()
    assert pd.read_csv(out / "labels.csv")[columns].equals(labels[columns])
    # K-Means' restarts are part of where DCEC starts: they are fitted again
    autoencoder.run(config(demo, **{"autoencoder.kmeans_n_init": 3}), demo)
    assert counts()[:2] == (["DCECModule"], 1 + b + 1 + b)
    # max_iter null: the rows (and the memo's key) name the batch limit of the training device's profile for N_FILES
    profiled = autoencoder.run(config(demo, **{"autoencoder.max_iter": None, "autoencoder.tol": 1.0,
                                               "autoencoder.kmeans_n_init": 3}), demo)
    limit = dcec_batches(profile="auto", device=train.training_device(), n_samples=N_FILES, batch_size=8)
    assert [json.loads(p)["max_iter"] for p in profiled.loc[profiled["stage"] == "dcec", "params"]] == [limit]
    assert counts()[:2] == (["DCECModule"], 0)
    # the stability gain's half-samples: the checkpoint is reused, K-Means and its gain are made again (3
    # half-samples of the embedding and 3 of its reference), and DCEC after them
    resampled = autoencoder.run(config(demo, **{"autoencoder.max_iter": None, "autoencoder.tol": 1.0,
                                                "autoencoder.kmeans_n_init": 3,
                                                "autoencoder.stability_resamples": 3}), demo)
    assert counts()[:2] == (["DCECModule"], 1 + 3 + 1 + 3)
    assert resampled["latent_stability"].iloc[0] != profiled["latent_stability"].iloc[0]

    # recompute: everything again, to the same results (deterministic training, same device)
    redone = autoencoder.run(cfg, demo, recompute=True)
    made = counts()
    assert made[:2] == (["AutoencoderModule", "DCECModule"], 1 + b + 1 + b) and made[2] > 0
    assert not redone["reused"].any()
    pd.testing.assert_frame_equal(redone[same], first[same])
    assert pd.read_csv(out / "labels.csv").equals(labels)


def test_changed_parameter_retrains_and_k_comes_from_the_embedding_alone(demo):
    first = autoencoder.run(config(demo), demo)
    other = autoencoder.run(config(demo, **{"autoencoder.latent_dims": [3], "cluster.k": "auto", "cluster.k_max": 6,
                                            "cluster.gap_references": 2}), demo)
    assert not other["reused"].any() and (other["latent_dim"] == 3).all()
    assert other["checkpoint"].iloc[0] != first["checkpoint"].iloc[0]
    assert demo.abs(first["checkpoint"].iloc[0]).is_file()           # the other model's checkpoint is kept
    # k: the k-selection consensus on the saved embedding, recomputed here without the labels
    out = demo.results / "autoencoder"
    z = np.load(out / "embeddings" / "mel.dcec_z3.npy" / "pretrained.npy")
    c = config(demo, **{"cluster.k": "auto", "cluster.k_max": 6, "cluster.gap_references": 2}).cluster
    expected = estimate_k(z, range(c.k_min, c.k_max + 1), random_state=0, methods=c.k_methods,
                          sample_size=c.silhouette_sample_size, n_init=c.n_init, n_references=c.gap_references)
    assert (other["k"] == max(expected.consensus, 2)).all() and (other["k_source"] == "auto").all()
    ks = pd.read_csv(out / "k_selection.csv")
    assert ks.loc[ks["consensus"], "k"].tolist() == [expected.consensus]
    labels = pd.read_csv(out / "labels.csv")
    assert list(labels.columns[2:]) == ["mel.dcec_z3.npy.ae_kmeans", "mel.dcec_z3.npy.dcec"]
    assert labels["mel.dcec_z3.npy.ae_kmeans"].nunique() == other["k"].iloc[0]


def test_spectral_rows_their_stability_and_when_they_are_selected(demo):
    cfg = config(demo, **{"autoencoder.algorithms": ["kmeans", "spectral"]})
    results = autoencoder.run(cfg, demo)
    assert results["stage"].tolist() == ["ae_kmeans", "ae_spectral", "dcec"]
    out = demo.results / "autoencoder"
    z = np.load(out / "embeddings" / "mel.dcec_z4.npy" / "pretrained.npy")
    labels = pd.read_csv(out / "labels.csv")
    # stage 04's spectral clustering of the pre-trained embedding, seeded, at the given k
    spectral = registry.make("spectral", 7, cfg.seed).fit_predict(z)
    assert np.array_equal(labels["mel.dcec_z4.npy.ae_spectral"], spectral)
    row = results.set_index("stage").loc["ae_spectral"]
    assert row["algorithm"] == "spectral" and json.loads(row["params"])["affinity"] == "nearest_neighbors"
    assert row["nmi"] == pytest.approx(normalized_mutual_info_score(labels["label"], spectral), abs=1e-12)
    # each ae_ row's stability is its own clusterer's gain; the model's is the larger of the two; DCEC has none
    gains = {name: tuning.stability_gain(name, z, n_clusters=7, random_state=cfg.seed,
                                         labels=labels[f"mel.dcec_z4.npy.ae_{name}"],
                                         n_resamples=cfg.autoencoder.stability_resamples,
                                         max_samples=cfg.cluster.stability_max_samples)["stability"]
             for name in ("kmeans", "spectral")}
    stability = results.set_index("stage")["stability"]
    assert stability[["ae_kmeans", "ae_spectral"]].tolist() == pytest.approx([gains["kmeans"], gains["spectral"]])
    assert np.isnan(stability["dcec"])
    assert results["latent_stability"].tolist() == pytest.approx([max(gains.values())] * 3)
    selected = results.loc[results["selected"], "stage"].tolist()
    if gains["spectral"] > gains["kmeans"] + selection.STABILITY_TIE:
        assert selected == ["ae_spectral"]
    else:
        assert selected in (["ae_kmeans"], ["dcec"])
    # the memo keeps spectral's partition: an unchanged re-run gives the same rows and labels
    again = autoencoder.run(cfg, demo)
    assert again["reused"].all()
    pd.testing.assert_frame_equal(again.drop(columns="reused"), results.drop(columns="reused"))
    assert pd.read_csv(out / "labels.csv").equals(labels)
    # K-Means is required: DCEC starts from its centres
    with pytest.raises(ConfigError, match="must list kmeans"):
        config(demo, **{"autoencoder.algorithms": ["spectral"]})


def test_spectral_is_selected_only_when_clearly_more_stable_than_kmeans():
    def model(view, kmeans, spectral):
        return [{"view": view, "feature": view, "stage": stage, "status": "ok", "n_clusters": 3, "stability": gain,
                 "silhouette": silhouette, "id": f"{view}.{stage}"}
                for stage, gain, silhouette in (("ae_kmeans", kmeans, 0.3), ("ae_spectral", spectral, 0.1),
                                                ("dcec", float("nan"), 0.6))]
    frame = pd.DataFrame(model("a", 0.30, 0.35) + model("b", 0.30, 0.31) + model("c", float("nan"), 0.2)
                         + model("d", 0.3, float("nan")))
    mask = selection.selectable_clusterings(frame)
    # a: spectral leads by 0.05 > STABILITY_TIE, alone; b: within the tie, K-Means and the DCEC that refines it;
    # c: K-Means without a gain, spectral with one; d: spectral without a gain
    assert frame.loc[mask, "id"].tolist() == ["a.ae_spectral", "b.ae_kmeans", "b.dcec", "c.ae_spectral",
                                              "d.ae_kmeans", "d.dcec"]
    selection.mark_selected(frame, "silhouette", among=mask)
    assert frame.loc[frame["selected"], "id"].tolist() == ["a.ae_spectral", "b.dcec", "c.ae_spectral", "d.dcec"]
    # the summary says what chose each: stability for a spectral row, the criterion for K-Means' or DCEC's
    shown = ac_report_summary.summary_table(frame.assign(type="npy", algorithm=frame["stage"], k=3, nmi=0.5, acc=0.5),
                                            "silhouette")
    selected_rows = shown[shown["Choice"] != ac_report_summary.BEST]
    assert dict(zip(selected_rows["Feature"], selected_rows["Choice"])) == {
        "a": "label-free (stability)", "b": "label-free (silhouette)", "c": "label-free (stability)",
        "d": "label-free (silhouette)"}


def test_disabled_stage_returns_an_empty_table(demo):
    result = autoencoder.run(config(demo, **{"autoencoder.enabled": False}), demo)
    assert result.empty and list(result.columns) == ac_results.AUTOENCODER_COLUMNS
    assert not (demo.results / "autoencoder").exists() and not demo.checkpoints.exists()


def test_missing_features_say_what_to_run(demo, tmp_path):
    with pytest.raises(StageInputError, match="audioclust extract --dataset demo"):
        autoencoder.run(config(demo, **{"autoencoder.features": ["chroma"]}), demo)   # mel only was extracted
    with pytest.raises(StageInputError, match="run `audioclust extract"):
        autoencoder.run(config(demo), ProjectPaths(demo.root, "nothing"))
    assert not demo.checkpoints.exists()


# --------------------------------------------------------------------------- helpers

def test_example_indices_take_the_first_file_of_each_label():
    labels = np.array(["b", "b", "a", "c", "a", "c"])
    assert ac_report_figures.example_indices(labels, 2).tolist() == [0, 2]
    assert ac_report_figures.example_indices(labels, 4).tolist() == [0, 2, 3, 5]      # 3 labels, then spread evenly
    assert ac_report_figures.example_indices(np.array([""] * 9), 3).tolist() == [0, 4, 8]


def test_mark_selected_and_embedding_table():
    results = pd.DataFrame({
        "feature": ["mel", "mel", "mel", "mfcc"], "status": ["ok"] * 4, "n_clusters": [3, 1, 3, 2],
        "silhouette": [0.2, 0.9, 0.4, np.nan], "stage": ["ae_kmeans", "dcec", "dcec", "ae_kmeans"],
        "type": ["t1", "t1", "t2", "t3"], "nmi": [0.1, 0.2, 0.3, 0.4], "acc": [0.5, 0.6, 0.7, 0.8]})
    selection.mark_selected(results, "silhouette")
    assert results["selected"].tolist() == [False, False, True, False]   # one cluster and NaN are not eligible
    assert results["eligible"].tolist() == [True, False, True, False]
    selection.mark_selected(results, "silhouette", k=2)                  # a given k: no row of mel has 2 clusters
    assert not results["selected"].any() and not results["eligible"].any()
    table = ac_report_summary.embedding_table(results)
    assert list(table.columns) == ["Feature", "Embedding", "NMI", "ACC"]
    assert table["Embedding"].tolist() == ["t1 + K-Means", "t1 + DCEC", "t2 + DCEC", "t3 + K-Means"]


def test_reconstruction_mse_by_hand():
    class Half(torch.nn.Module):                                # reconstructs x / 2: error (x/2)² per pixel
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return x / 2, None

    dataset = FeaturesDataset([np.full((4, 6), 2.0, np.float32), np.full((4, 6), 4.0, np.float32)], size=[6, 4],
                              scale="none")
    assert train.reconstruction_mse(Half(), dataset, batch_size=1) == pytest.approx((1.0 + 4.0) / 2)


def test_input_from_the_store_equals_the_input_from_the_files(demo):
    # the settings stage 03 ran with (the fixture): the store holds the images at the default 96×48
    cfg = load_config(demo.root, demo.dataset, overrides={"features.kinds": ["mel"], "parallel.n_jobs": 1})
    table = read_table(demo)
    stored = stored_ae_images(views_settings(cfg), demo, table, "mel")
    assert stored is not None and stored.shape == (N_FILES, 96, 48)
    from_store = inputs.input_dataset(cfg, demo, table, "mel", stored)
    from_files = inputs.input_dataset(cfg, demo, table, "mel")
    np.testing.assert_allclose(from_store.images.numpy(), from_files.images.numpy(), atol=1e-6)
    assert from_store.fingerprint() == from_files.fingerprint()          # one checkpoint, whichever was read


def test_png_levels_are_mapped_back_to_decibels(demo):
    cfg = config(demo, **{"autoencoder.source": "png"})
    table = read_table(demo)
    assert inputs.level_arrays(cfg, demo, table, "mel") is None      # mel decides its own region
    png = inputs.level_arrays(config(demo, **{"autoencoder.source": "png", "features.kinds": ["mel", "mfcc"]}),
                                   demo, table, "mfcc")
    npy = inputs.level_arrays(config(demo, **{"features.kinds": ["mel", "mfcc"]}), demo, table, "mfcc")
    vmin, vmax = cfg.features.png_ranges["mel"]
    # 8-bit grey levels over [vmin, vmax]: within half a step of the clipped dB values
    assert max(np.abs(p - np.clip(a, vmin, vmax)).max() for p, a in zip(png, npy)) <= (vmax - vmin) / 510 + 1e-4


# --------------------------------------------------------------------------- the latent size, without labels

def _models(specs) -> pd.DataFrame:
    """Two rows (K-Means, DCEC) per (feature, latent size, stability gain, validation loss, NMI)."""
    return pd.DataFrame([
        {"id": f"{f}.dcec_z{z}.npy.{stage}", "feature": f, "latent_dim": z, "stage": stage, "status": "ok",
         "latent_stability": s, "val_loss": v, "nmi": nmi, "acc": nmi, "silhouette": 0.1 * z + (stage == "dcec"),
         "n_clusters": 3, "view": f"{f}.dcec_z{z}.npy", "algorithm": stage.removeprefix("ae_")}
        for f, z, s, v, nmi in specs for stage in ("ae_kmeans", "dcec")])


def test_latent_size_is_the_most_stable_then_the_lower_validation_loss_never_the_labels():
    nan = float("nan")
    frame = _models([
        ("mel", 10, 0.58, 0.020, 0.60), ("mel", 32, 0.49, 0.010, 0.70), ("mel", 128, 0.47, 0.002, 0.50),
        # 10 and 32 are equally stable (within STABILITY_TIE): the lower validation loss
        ("mfcc", 10, 0.50, 0.020, 0.70), ("mfcc", 32, 0.51, 0.010, 0.60), ("mfcc", 128, 0.30, 0.001, 0.90),
        ("chroma", 10, nan, 0.100, 0.10), ("chroma", 32, nan, 0.050, 0.20),            # no gain: the smallest
        ("spectrogram", 128, 0.40, nan, 0.30), ("spectrogram", 32, 0.40, nan, 0.40),   # no validation: smallest
    ])
    chosen = selection.chosen_latents(frame)
    picked = frame[chosen].groupby("feature")["latent_dim"].unique().map(list).to_dict()
    assert picked == {"mel": [10], "mfcc": [32], "chroma": [10], "spectrogram": [32]}
    assert selection.STABILITY_TIE == 0.02
    # the labels' scores play no part
    assert selection.chosen_latents(frame.assign(nmi=frame["nmi"].sample(frac=1, random_state=0).to_numpy())).equals(
        chosen)
    # the selected row is the best criterion within the chosen size, although a larger size scores higher
    selection.mark_selected(frame, "silhouette", among=chosen)
    assert set(frame.loc[frame["selected"], "id"]) == {
        "mel.dcec_z10.npy.dcec", "mfcc.dcec_z32.npy.dcec", "chroma.dcec_z10.npy.dcec", "spectrogram.dcec_z32.npy.dcec"}
    assert frame["eligible"].all()    # every size stays eligible: the summary's best-by-NMI row may come from any
    # across features, the pick is the selected row of the most stable model (mel z10: 0.58), not the best NMI
    frame["pick"] = structures.picked_model(frame, "silhouette")
    assert frame.loc[frame["pick"], "id"].tolist() == ["mel.dcec_z10.npy.dcec"]
    # with the gain of the next feature's selected row, so a reader sees how far ahead the pick is
    assert ac_results.choose_result(frame, "silhouette") == (
        "mel.dcec_z10.npy.dcec", "label-free pick: the most stable model (stability gain 0.580; the next feature's, "
                                 "mfcc.dcec_z32.npy.dcec: 0.510)")
    assert ac_results.choose_result(frame[frame["feature"] == "mel"], "silhouette")[1] == (
        "label-free pick: the most stable model (stability gain 0.580)")
    # a marked pick without either stage's column is still the answer, said plainly
    assert ac_results.choose_result(frame.drop(columns="latent_stability"), "silhouette") == (
        "mel.dcec_z10.npy.dcec", "label-free pick (the row marked pick in results.csv)")
    # the summary names each feature's gain beside its selected row; chroma's models have none
    shown = ac_report_summary.summary_table(frame.assign(type="npy", algorithm=frame["stage"], k=3, acc=frame["nmi"]))
    selected_rows = shown[shown["Choice"] != ac_report_summary.BEST]
    assert dict(zip(selected_rows["Feature"], selected_rows["Choice"])) == {
        "mel": "label-free (silhouette), stability gain 0.580, pick",
        "mfcc": "label-free (silhouette), stability gain 0.510",
        "chroma": "label-free (silhouette)",
        "spectrogram": "label-free (silhouette), stability gain 0.400"}
    # read back from results.csv, the gain is text when a model had none
    shown = ac_report_summary.summary_table(frame.assign(type="npy", algorithm=frame["stage"], k=3, acc=frame["nmi"],
                                                         latent_stability=frame["latent_stability"].astype(str)))
    assert shown["Choice"].iloc[0] == "label-free (silhouette), stability gain 0.580, pick"


def test_among_equally_stable_models_the_partition_the_others_share_picks():
    frame = _models([("mel", 10, 0.50, 0.02, 0.8), ("spectrogram", 32, 0.49, 0.01, 0.6),
                     ("chroma", 128, 0.45, 0.01, 0.9)])   # the best silhouette, but less stable than the tie allows
    selection.mark_selected(frame, "silhouette", among=selection.chosen_latents(frame))
    mel, spectrogram, chroma = "mel.dcec_z10.npy.dcec", "spectrogram.dcec_z32.npy.dcec", "chroma.dcec_z128.npy.dcec"
    groups = np.repeat([0, 1, 2], 20)
    shared = groups.copy()
    shared[[0, 20, 40]] = [1, 2, 0]                                  # chroma: mel's groups but three files
    partitions = {mel: groups, chroma: shared, spectrogram: np.arange(60) % 3}
    # mel and the spectrogram are within STABILITY_TIE; chroma's partition agrees with mel's (AMI 0.81), not with
    # the spectrogram's (AMI < 0): mel, although the spectrogram's DCEC row has the better silhouette (4.2)
    assert frame.loc[structures.picked_model(frame, "silhouette", partitions), "id"].tolist() == [mel]
    # the labels' scores play no part; without the partitions the criterion breaks the tie
    assert structures.picked_model(frame.assign(nmi=frame["nmi"][::-1].to_numpy()), "silhouette", partitions).equals(
        structures.picked_model(frame, "silhouette", partitions))
    assert frame.loc[structures.picked_model(frame, "silhouette"), "id"].tolist() == [spectrogram]
    # a band of 0 ties nothing: the most stable model, whatever its silhouette
    assert frame.loc[structures.picked_model(frame, "silhouette", tie=0.0), "id"].tolist() == [mel]
    # a criterion where lower is better turns that tie the other way
    frame["davies_bouldin"] = frame["silhouette"]
    assert frame.loc[structures.picked_model(frame, "davies_bouldin"), "id"].tolist() == [mel]
    # two features only: each agrees with the other alike, so the criterion decides
    two = frame[frame["feature"] != "chroma"]
    assert two.loc[structures.picked_model(two, "silhouette", partitions), "id"].tolist() == [spectrogram]


def test_at_k_auto_the_structure_most_models_see_picks_not_the_most_stable_model():
    frame = _models([("mel", 10, 0.60, 0.02, 0.2), ("mfcc", 10, 0.45, 0.02, 0.9), ("spectrogram", 10, 0.44, 0.02, 0.8),
                     ("aisfx", 10, 0.43, 0.02, 0.9)])
    frame = frame.assign(view=frame["feature"] + ".dcec_z10.npy", stability=float("nan"))
    mel, mfcc, spectrogram, aisfx = (f"{f}.dcec_z10.npy.dcec" for f in ("mel", "mfcc", "spectrogram", "aisfx"))
    groups = np.repeat([0, 1, 2], 20)
    moved, other = groups.copy(), groups.copy()
    moved[[0, 20]] = [1, 2]
    other[[39, 59]] = [0, 1]
    # mel splits the files in two, the most stable partition; the other three share three groups
    partitions = {i.removesuffix("dcec") + "ae_kmeans": p for i, p in
                  ((mel, np.arange(60) % 2), (mfcc, groups), (spectrogram, moved), (aisfx, other))}
    partitions |= {i.removesuffix("ae_kmeans") + "dcec": p for i, p in list(partitions.items())}
    # each model's own k (cluster.k: auto): the representative of the three models that agree, the most central
    # (the spectrogram and aisfx each moved two other files from mfcc's groups)
    table = structures.mark_autoencoder_choices(frame, "silhouette", None, partitions)
    assert frame.loc[frame["pick"], "id"].tolist() == [mfcc]
    assert ac_results.choose_result(frame.assign(k_source="auto"), "silhouette") == (
        mfcc, "label-free pick: the structure most models' selected rows agree on (k estimated per model); the "
              "others are alternatives, see structures.csv")
    # the structures as stage 04 reports them: the three that agree, and mel's split alone, the alternative
    assert table[["structure", "pick", "n_features", "representative"]].values.tolist() == [
        [1, True, 3, mfcc], [2, False, 1, mel]]
    assert table.loc[0, "features"] == "mfcc, spectrogram, aisfx"
    assert frame.loc[frame["selected"], "structure"].tolist() == [2, 1, 1, 1]
    # the labels play no part
    again = frame.assign(nmi=frame["nmi"][::-1].to_numpy())
    structures.mark_autoencoder_choices(again, "silhouette", None, partitions)
    assert again["pick"].equals(frame["pick"])
    # with k given the gains compare: the most stable model, mel; its structure is the pick, the three others'
    # the alternative, represented by their medoid
    table = structures.mark_autoencoder_choices(frame, "silhouette", 3, partitions)
    assert frame.loc[frame["pick"], "id"].tolist() == [mel]
    assert table[["structure", "pick", "representative"]].values.tolist() == [[1, False, mfcc], [2, True, mel]]
    # a picked row that is not its structure's medoid represents it: the report's alternatives are the others
    frame.loc[frame["feature"] == "spectrogram", "latent_stability"] = 0.7
    table = structures.mark_autoencoder_choices(frame, "silhouette", 3, partitions)
    assert table[["structure", "pick", "representative", "nmi"]].values.tolist() == [
        [1, True, spectrogram, 0.8], [2, False, mel, 0.2]]
    frame.loc[frame["feature"] == "spectrogram", "latent_stability"] = 0.44
    # cluster.focus, the user's prior, as in stage 04: only its models' rows form structures and pick, with k given
    # (the most stable of them, mfcc; mel's more stable split is left out) and at k: auto
    table = structures.mark_autoencoder_choices(frame, "silhouette", 3, partitions, focus=["mfcc", "aisfx"])
    assert frame.loc[frame["pick"], "id"].tolist() == [mfcc]
    assert table[["structure", "pick", "n_features", "features", "focus"]].values.tolist() == [
        [1, True, 2, "mfcc, aisfx", "mfcc, aisfx"]]
    assert frame.loc[frame["selected"], "structure"].isna().tolist() == [True, False, True, False]
    structures.mark_autoencoder_choices(frame, "silhouette", None, partitions, focus=["mel"])
    assert frame.loc[frame["pick"], "id"].tolist() == [mel]
    # a focus that names none of the models (a stage-04 view stage 05 does not train on) leaves every model in
    table = structures.mark_autoencoder_choices(frame, "silhouette", 3, partitions, focus=["chroma"])
    assert frame.loc[frame["pick"], "id"].tolist() == [mel] and (table["focus"] == "").all() and len(table) == 2
    # without the partitions the stability rule is all there is, and no structures
    assert structures.mark_autoencoder_choices(frame, "silhouette", None, None).empty
    assert frame.loc[frame["pick"], "id"].tolist() == [mel] and frame["structure"].isna().all()


def test_without_a_stability_gain_nothing_is_picked_and_the_criterion_decides():
    frame = _models([("mel", 10, float("nan"), 0.02, 0.6), ("mfcc", 32, float("nan"), 0.01, 0.7)])
    selection.mark_selected(frame, "silhouette", among=selection.chosen_latents(frame))
    frame["pick"] = structures.picked_model(frame, "silhouette")
    assert not frame["pick"].any()
    # silhouette 0.1 * 32 + 1 beats 0.1 * 10 + 1 among the two selected DCEC rows
    assert ac_results.choose_result(frame, "silhouette")[0] == "mfcc.dcec_z32.npy.dcec"


def test_stage_chooses_the_latent_size_from_the_saved_embeddings(demo):
    results = autoencoder.run(config(demo, **{"autoencoder.latent_dims": [2, 6]}), demo)
    cfg = config(demo).cluster
    out = demo.results / "autoencoder" / "embeddings"
    for latent in (2, 6):
        rows = results[results["latent_dim"] == latent]
        z = np.load(out / f"mel.dcec_z{latent}.npy" / "pretrained.npy")
        kmeans = KMeans(n_clusters=7, n_init=config(demo).autoencoder.kmeans_n_init, random_state=0).fit(z)
        expected = tuning.stability_gain("kmeans", z, n_clusters=7, random_state=0, labels=kmeans.labels_,
                                         n_resamples=config(demo).autoencoder.stability_resamples,
                                         max_samples=cfg.stability_max_samples)["stability"]
        assert rows["latent_stability"].tolist() == pytest.approx([expected] * 2, abs=1e-12)
        assert (rows["profile"] == "cpu").all() and (rows["max_epochs"] == 3).all()
    gains = results.groupby("latent_dim")["latent_stability"].first()
    losses = results.groupby("latent_dim")["val_loss"].first()
    if abs(gains[2] - gains[6]) > selection.STABILITY_TIE:
        expected_latent = gains.idxmax()
    else:
        expected_latent = losses.idxmin()
    assert set(results.loc[results["latent_chosen"], "latent_dim"]) == {expected_latent}
    assert results.loc[results["selected"], "latent_dim"].tolist() == [expected_latent]
    saved = pd.read_csv(demo.results / "autoencoder" / "results.csv")
    assert saved["latent_chosen"].tolist() == results["latent_chosen"].tolist()
    # one feature: its selected row is the stage's pick, and what a user without labels is shown
    assert saved.loc[saved["pick"], "id"].tolist() == results.loc[results["selected"], "id"].tolist()
    assert ac_results.load_result(demo, source="autoencoder").id == saved.loc[saved["pick"], "id"].iloc[0]


def test_the_seed_study_protocol_runs(demo):
    study = load_config(demo.root, demo.dataset, config_file=REPO / "configs" / "seed_study.yaml", overrides={
        **{k: v for k, v in SMALL.items() if k not in ("autoencoder.latent_dims", "autoencoder.batch_size")},
        "autoencoder.features": ["mel"], "autoencoder.max_epochs": 2})
    results = autoencoder.run(study, demo)
    assert sorted(results["latent_dim"].unique()) == [128, 1024] and (results["source"] == "png").all()
    # no early stopping: every epoch runs
    assert (results["epochs"] == 2).all() and (results["train_stopped_by"] == "max_epochs").all()
    # the loss optimised is summed over the pixels of the batch: far above the squared error per pixel
    pixels = 32 * 16
    assert (results["val_loss"] > pixels * results.loc[results["stage"] == "ae_kmeans", "recon_mse"].min()).all()
    assert results["selected"].sum() == 1 and results["latent_chosen"].sum() == 2
