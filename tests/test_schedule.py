"""The pre-training schedule by device (audioclust.deep.schedule) and how training follows it."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
import torch

from audioclust.config import AutoencoderConfig, load_config
from audioclust.core.errors import ConfigError
from audioclust.core.storage import read_json
from audioclust.deep.reconstruction import AutoencoderModule
from audioclust.deep.schedule import PROFILES, Schedule, dcec_batches, profile_name, resolve_schedule
from conftest import REPO
from test_dcec import cfg, train, two_families  # noqa: F401 — cfg is a fixture

CPU, GPU = PROFILES["cpu"], PROFILES["gpu"]


@pytest.mark.parametrize("device, expected", [
    (torch.device("cpu"), "cpu"), (torch.device("cuda", 0), "gpu"), (torch.device("mps"), "gpu"), ("cuda", "gpu"),
])
def test_auto_takes_the_profile_of_the_training_device(device, expected):
    assert profile_name("auto", device) == expected
    # a named profile holds on any device
    assert profile_name("cpu", device) == "cpu" and profile_name("gpu", device) == "gpu"
    with pytest.raises(ConfigError, match="autoencoder.profile"):
        profile_name("tpu", device)


def test_epoch_limit_comes_from_the_budget_of_image_passes():
    # 3,000 files less a tenth for validation: ceil(120,000 / 2,700) = 45 epochs on a CPU, 450 (the cap) on a GPU
    cpu = resolve_schedule(profile="auto", device="cpu", n_train=2700)
    assert cpu == Schedule("cpu", max_epochs=45, patience=CPU.patience, lr_patience=CPU.lr_patience)
    gpu = resolve_schedule(profile="auto", device=torch.device("cuda", 0), n_train=2700)
    assert gpu == Schedule("gpu", max_epochs=450, patience=30, lr_patience=10)
    assert resolve_schedule(profile="gpu", device="cpu", n_train=27_000).max_epochs == 50        # its floor
    # a small set trains more epochs in the same budget, up to the cap; a huge one at least the floor
    assert resolve_schedule(profile="cpu", device="cpu", n_train=432).max_epochs == min(200, math.ceil(120_000 / 432))
    assert resolve_schedule(profile="cpu", device="cpu", n_train=100).max_epochs == CPU.max_epochs
    assert resolve_schedule(profile="cpu", device="cpu", n_train=1_000_000).max_epochs == CPU.min_epochs


def test_keys_written_out_win_over_the_profile():
    s = resolve_schedule(profile="gpu", device="cpu", n_train=2700, max_epochs=7, patience=0, lr_patience=1)
    assert s == Schedule("gpu", max_epochs=7, patience=0, lr_patience=1)
    assert resolve_schedule(profile="gpu", device="cpu", n_train=2700, patience=5).lr_patience == GPU.lr_patience


def test_training_follows_the_resolved_schedule(cfg, tmp_path):  # noqa: F811
    arrays, _ = two_families(16)
    # the defaults: the cpu profile here; 12 training images take the profile's cap of epochs at most
    profiled = dataclasses.replace(cfg, max_epochs=None, patience=None, lr_patience=None, profile="auto")
    result = train(profiled, arrays, tmp_path / "profiled")
    assert result.schedule == Schedule("cpu", max_epochs=CPU.max_epochs, patience=CPU.patience,
                                       lr_patience=CPU.lr_patience)
    marker = read_json(result.checkpoint.with_suffix(".json"))
    assert marker["schedule"] == dataclasses.asdict(result.schedule)
    logged = pd.read_csv(next((tmp_path / "profiled" / "logs").rglob("metrics.csv")))
    assert result.epochs == logged["epoch"].max() + 1
    # early stopping ended it (the loss of 16 images stops improving long before 200 epochs)
    assert result.stopped_by == marker["stopped_by"] == "early stopping" and result.epochs < CPU.max_epochs

    # patience 0: no early stopping, even with nothing left to learn (learning rate ~0)
    flat = dataclasses.replace(cfg, max_epochs=6, patience=0, lr=1e-7)
    again = train(flat, arrays, tmp_path / "flat")
    assert (again.epochs, again.stopped_by) == (6, "max_epochs")
    # the same weights under the same schedule, asked for through the profile or written out: one checkpoint
    written = dataclasses.replace(profiled, max_epochs=CPU.max_epochs, patience=CPU.patience,
                                  lr_patience=CPU.lr_patience, profile="gpu")
    reused = train(written, arrays, tmp_path / "profiled")
    assert reused.reused and reused.checkpoint == result.checkpoint


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_summed_loss_is_the_mean_times_the_pixels_of_the_batch():
    torch.manual_seed(0)
    x = torch.rand(5, 1, 12, 8)
    mean = AutoencoderModule("dcec", (1, 12, 8), 4, loss="mean")
    summed = AutoencoderModule("dcec", (1, 12, 8), 4, loss="sum")
    summed.load_state_dict(mean.state_dict())
    per_pixel = mean.training_step((x, torch.arange(5)), 0)
    assert torch.isclose(per_pixel, torch.mean((mean(x)[0] - x) ** 2))
    assert torch.isclose(summed.training_step((x, torch.arange(5)), 0), per_pixel * x.numel())


def test_the_seed_study_config_is_the_protocol_it_names():
    c = load_config(REPO, "any", config_file=REPO / "configs" / "seed_study.yaml")
    ae = c.autoencoder
    assert (ae.features, ae.source, ae.latent_dims, ae.batch_size, ae.lr, ae.loss) == (
        ["spectrogram", "mel"], "png", [128, 1024], 64, 0.001, "sum")
    schedule = resolve_schedule(profile=ae.profile, device="cpu", n_train=2520, max_epochs=ae.max_epochs,
                                patience=ae.patience, lr_patience=ae.lr_patience)
    assert schedule == Schedule("cpu", max_epochs=450, patience=0, lr_patience=10)   # the same on any device
    assert c.images.trim_db is None and set(c.images.per_file.values()) == {"none"}


def test_dcec_runs_the_profiles_batches_unless_max_iter_is_given():
    assert dcec_batches(profile="auto", device="cpu") == CPU.dcec_batches == 800
    assert dcec_batches(profile="auto", device=torch.device("cuda", 0)) == GPU.dcec_batches == 1600
    assert dcec_batches(profile="cpu", device="cuda") == 800        # a named profile holds on any device
    assert dcec_batches(profile="gpu", device="cpu", max_iter=50) == 50
    # at most the profile's epoch limit in passes: 49 files are one batch of 64 a pass, 140 files three
    assert dcec_batches(profile="cpu", device="cpu", n_samples=49, batch_size=64) == CPU.max_epochs == 200
    assert dcec_batches(profile="cpu", device="cpu", n_samples=140, batch_size=64) == 600
    assert dcec_batches(profile="cpu", device="cpu", n_samples=256, batch_size=64) == 800
    assert dcec_batches(profile="gpu", device="cpu", n_samples=49, batch_size=64) == GPU.max_epochs == 450
    assert dcec_batches(profile="cpu", device="cpu", max_iter=900, n_samples=49, batch_size=64) == 900
    assert load_config().autoencoder.max_iter is None


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_the_profiles_described_are_the_profiles_used(name):
    """The config reference and the stage-05 page write the profiles out: they must say what the code does."""
    p = PROFILES[name]
    docs = {f.name: f.metadata["doc"] for f in dataclasses.fields(AutoencoderConfig)}
    assert (f"{name} (about {p.image_passes:,} image passes, at most {p.max_epochs} epochs, patience {p.patience}, "
            f"lr_patience {p.lr_patience}; DCEC max_iter {p.dcec_batches:,})") in docs["profile"]
    assert f"{name} {p.dcec_batches:,}" in docs["max_iter"]
    page = (REPO / "docs" / "stages" / "05-autoencoder.md").read_text()
    assert (f"| `{name}` | {p.image_passes:,} | {p.image_passes:,} / training images, within "
            f"{p.min_epochs}..{p.max_epochs} | {p.patience} | {p.lr_patience} | {p.dcec_batches:,} |") in page
