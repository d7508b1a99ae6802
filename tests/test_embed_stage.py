"""The embedding part of stage 03 and its way into stage 04, with a TorchScript model the tests build.

The model is real TorchScript, saved and loaded through the path a user's checkpoint takes: it
cuts the waveform into blocks of 0.1 s and returns each block's RMS, mean absolute value and
peak, so every number the stage writes can be computed here by hand.
"""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import soxr
import torch
from conftest import tone
from test_extract import SMALL, SR, make_stage02

from audioclust.cli import main
from audioclust.config import load_config
from audioclust.core.paths import ProjectPaths
from audioclust.embed.spec import ModelError
from audioclust.represent.vectors import ViewSpec
from audioclust.represent.views import build_views
from audioclust.results import read_table
from audioclust.stages import cluster, embed, extract
from audioclust.stages._shared import views_settings

MODEL_SR = 16000
BLOCK = 1600  # 0.1 s at MODEL_SR


class BlockStats(torch.nn.Module):
    """(batch, samples) -> (batch, blocks, 3): RMS, mean |x| and peak of each 0.1 s block, times ``gain``."""

    def __init__(self, gain: float = 1.0):
        super().__init__()
        self.gain = gain
        self.block = BLOCK

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1] // self.block
        blocks = x[:, : n * self.block].reshape(x.shape[0], n, self.block)
        stats = torch.stack([blocks.pow(2).mean(-1).sqrt(), blocks.abs().mean(-1), blocks.abs().amax(-1)], dim=-1)
        return stats * self.gain


def save_model(path, gain: float = 1.0):
    torch.jit.script(BlockStats(gain)).save(str(path))


def expected(y: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """(3, blocks): what the stage must save for a stage-02 signal ``y`` at SR."""
    z = soxr.resample(y, SR, MODEL_SR, quality="HQ").astype(np.float32)
    n = len(z) // BLOCK
    b = z[: n * BLOCK].reshape(n, BLOCK).astype(np.float64)
    return (np.stack([np.sqrt((b ** 2).mean(1)), np.abs(b).mean(1), np.abs(b).max(1)], axis=1) * gain).T


SIGNALS = {"a": tone(220.0, seconds=0.5, amp=0.5), "b": tone(3000.0, seconds=0.3, amp=0.2),
           "c": tone(440.0, seconds=0.45, amp=0.8), "d": tone(330.0, seconds=0.6, amp=0.1)}


@pytest.fixture
def setup(project):
    paths = ProjectPaths(project, "ds")
    make_stage02(paths, [
        {"label": "low", "stem": "a", "y": SIGNALS["a"]},
        {"label": "high", "stem": "b", "y": SIGNALS["b"]},
        {"label": "high", "stem": "quiet", "status": "silent"},
        {"label": "low", "stem": "broken", "raw": b"RIFF\x00\x00 not a wav at all"},
        {"label": "", "stem": "c", "y": SIGNALS["c"]},
        {"label": "low", "stem": "d", "y": SIGNALS["d"]},
    ])
    save_model(project / "stats.pt")
    return project, paths


def cfg_of(project, *extra):
    model = "{name: blocks, type: torchscript, path: stats.pt, sample_rate: 16000, batch_size: 2}"
    return load_config(project, "ds", overrides=[*SMALL, f"embeddings.models=[{model}]", *extra])


def saved(paths, label, stem):
    return np.load(paths.feature_file("blocks", label, stem, ".npy"))


def test_embed_writes_each_files_frames_rows_and_reasons(setup):
    project, paths = setup
    table = embed.run(cfg_of(project), paths)
    rows = table.set_index("stem")
    assert rows.loc[["a", "b", "c", "d"], "status"].tolist() == ["ok"] * 4
    assert rows.loc["quiet", "status"] == "skipped" and "silent" in rows.loc["quiet", "reason"]
    assert rows.loc["broken", "status"] == "error" and "cannot read WAV" in rows.loc["broken", "reason"]
    for label, stem in [("low", "a"), ("high", "b"), ("unlabelled", "c"), ("low", "d")]:
        want = expected(SIGNALS[stem])
        got = saved(paths, label, stem)
        assert got.shape == want.shape == (3, int(len(SIGNALS[stem]) * MODEL_SR / SR) // BLOCK)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        assert rows.loc[stem, "n_frames"] == want.shape[1] and rows.loc[stem, "dim"] == 3
        assert rows.loc[stem, "hop_seconds"] == pytest.approx(0.1)  # 1,600 samples at 16 kHz
    # a sine's RMS is its amplitude over sqrt(2): the model heard the right signal at the right rate
    np.testing.assert_allclose(saved(paths, "low", "a")[0, 1:-1], 0.5 / np.sqrt(2), rtol=2e-3)
    assert pd.read_csv(paths.embeddings_csv).shape[0] == 6


def test_rerun_reuses_every_file_and_new_weights_recompute(setup, caplog):
    project, paths = setup
    cfg = cfg_of(project)
    embed.run(cfg, paths)
    npy = paths.feature_file("blocks", "low", "a", ".npy")
    before = npy.stat().st_mtime_ns
    caplog.set_level("INFO")
    caplog.clear()
    embed.run(cfg, paths)
    assert npy.stat().st_mtime_ns == before
    assert "5 of 5 embeddings already done" in caplog.text
    assert "blocks (torchscript" not in caplog.text  # every file is done: the model was not even loaded

    save_model(project / "stats.pt", gain=2.0)  # re-trained weights at the same path
    embed.run(cfg_of(project), paths)
    np.testing.assert_allclose(saved(paths, "low", "a"), expected(SIGNALS["a"], gain=2.0), rtol=1e-4, atol=1e-6)


def test_files_that_left_the_table_lose_their_embeddings(setup):
    project, paths = setup
    embed.run(cfg_of(project), paths)
    table = pd.read_csv(paths.transformed_csv, keep_default_na=False)
    table[table["stem"] != "d"].to_csv(paths.transformed_csv, index=False)
    embed.run(cfg_of(project), paths)
    assert not paths.feature_file("blocks", "low", "d", ".npy").exists()
    assert paths.feature_file("blocks", "low", "a", ".npy").exists()


def test_embeddings_are_a_view_of_stage_04_pooled_and_l2_normalised(setup):
    project, paths = setup
    cfg = cfg_of(project, "views.features=[mfcc]", "views.kinds=[stats]", "views.sources=[npy]",
                 "views.embedding.pca=null", "views.scale=none", "cluster.k=2", "cluster.algorithms=[kmeans]",
                 "cluster.tsne=false")
    extract.run(cfg, paths)
    embed.run(cfg, paths)
    table = read_table(paths)
    views = {v.spec.name: v for v in build_views(views_settings(cfg), paths, table)}
    view = views["blocks.embedding.npy"]
    for i, (label, stem) in enumerate(zip(table["label"], table["stem"])):
        mean = expected(SIGNALS[stem]).mean(axis=1)
        np.testing.assert_allclose(view.raw[i], mean, rtol=1e-4)                       # mean pooling
        np.testing.assert_allclose(view.X[i], mean / np.linalg.norm(mean), rtol=1e-4)  # then unit length
    results = cluster.run(cfg, paths)
    rows = results[results["feature"] == "blocks"]
    assert len(rows) == 1 and rows.iloc[0]["status"] == "ok" and rows.iloc[0]["type"] == "embedding (Arrays)"


def test_a_model_path_that_does_not_exist_is_a_clear_error(setup, caplog):
    project, paths = setup
    cfg = load_config(project, "ds", overrides=[
        "embeddings.models=[{name: gone, type: torchscript, path: nowhere.pt, sample_rate: 16000}]"])
    with pytest.raises(ModelError, match="nowhere.pt"):
        embed.run(cfg, paths)
    code = main(["embed", "--dataset", "ds", "--root", str(project),
                 "--set", "embeddings.models=[{name: gone, type: torchscript, path: nowhere.pt, sample_rate: 16000}]"])
    assert code == 2 and "nowhere.pt" in caplog.text


def test_stage_04_without_the_embeddings_leaves_the_view_out_and_says_to_run_embed(setup, caplog):
    project, paths = setup
    cfg = cfg_of(project, "views.features=[mfcc]", "views.kinds=[stats]", "views.sources=[npy]", "cluster.k=2",
                 "cluster.algorithms=[kmeans]", "cluster.figures=false")
    extract.run(cfg, paths)
    results = cluster.run(cfg, paths)
    assert results["feature"].tolist() == ["mfcc"]
    assert "run `audioclust embed --dataset ds`" in caplog.text
    with pytest.raises(Exception, match="audioclust embed"):  # asked for by name, it is an error
        build_views(views_settings(cfg), paths, read_table(paths), specs=[ViewSpec("blocks", "embedding", "npy")])


def test_stage_05_refines_an_embedding_with_decs_fully_connected_autoencoder(setup, caplog):
    from audioclust.stages import autoencoder

    project, paths = setup
    cfg = cfg_of(project, "views.features=[mfcc]", "views.kinds=[stats]", "views.sources=[npy]",
                 "views.embedding.pca=null", "cluster.k=2", "cluster.figures=false",
                 "autoencoder.features=[blocks]", "autoencoder.latent_dims=[2]", "autoencoder.max_epochs=2",
                 "autoencoder.max_iter=4", "autoencoder.batch_size=2", "autoencoder.kmeans_n_init=2")
    extract.run(cfg, paths)
    embed.run(cfg, paths)
    results = autoencoder.run(cfg, paths)
    # four files are fewer than spectral clustering's ten graph neighbours: its row is left out, with the reason
    assert results["stage"].tolist() == ["ae_kmeans", "dcec"]
    assert "spectral of the pre-trained embedding (4 files) failed" in caplog.text
    assert set(results["architecture"]) == {"mlp"} and set(results["view"]) == {"blocks.mlp_z2.npy"}
    assert set(results["type"]) == {"mlp autoencoder z=2 (embedding)"}   # trained on the embedding view
    assert (results["n_dims"] == 2).all() and (results["n_clusters"] == 2).all()
    Z = np.load(paths.results / "autoencoder" / "embeddings" / "blocks.mlp_z2.npy" / "pretrained.npy")
    assert Z.shape == (4, 2) and np.isfinite(Z).all()
    again = autoencoder.run(cfg, paths)  # same data and settings: the checkpoint is reused
    assert again["reused"].all()
    started = autoencoder.run(replace(cfg, autoencoder=replace(cfg.autoencoder, embedding_architecture="mlp_pca")),
                              paths)
    assert set(started["view"]) == {"blocks.mlp_pca_z2.npy"} and not started["reused"].any()
    assert set(started["type"]) == {"mlp_pca autoencoder z=2 (embedding)"}
    # three training vectors span two dimensions around their mean: PCA's start reconstructs them, and two
    # epochs from random weights do not come near
    assert started["recon_mse"].iloc[0] < 0.05 * results["recon_mse"].iloc[0]


def test_embeddings_in_autoencoder_features_stands_for_every_embedded_model(setup, caplog):
    from audioclust.stages import autoencoder

    project, paths = setup
    cfg = cfg_of(project, "autoencoder.features=[mel, embeddings, mel]")
    assert autoencoder.model_inputs(cfg, paths, warn=False) == ["mel"]   # notebook 05's preview: the same, quietly
    assert "run `audioclust embed" not in caplog.text
    assert autoencoder.model_inputs(cfg, paths) == ["mel"]   # not embedded yet: left out, with stage 04's warning
    assert caplog.text.count("run `audioclust embed --dataset ds`") == 1
    extract.run(cfg, paths)
    embed.run(cfg, paths)
    assert autoencoder.model_inputs(cfg, paths) == ["mel", "blocks"]
    named = cfg_of(project, "autoencoder.features=[blocks, embeddings]")
    assert autoencoder.model_inputs(named, paths) == ["blocks"]   # each model once
    none = load_config(project, "ds", overrides=[*SMALL, "embeddings.models=[]", "autoencoder.features=[embeddings]"])
    with pytest.raises(Exception, match="names no input"):
        autoencoder.run(none, paths)


def test_autoencoder_features_must_be_features_or_embedding_models(project):
    with pytest.raises(Exception, match="neither a feature"):
        load_config(project, "ds", overrides=["autoencoder.features=[wavlm]"])
