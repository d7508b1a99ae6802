import copy
import dataclasses
import logging

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from sklearn.metrics import normalized_mutual_info_score

from audioclust.config import load_config
from audioclust.core.errors import ConfigError, StageInputError
from audioclust.core.storage import read_json
from audioclust.deep.components.clustering_layer import (
    ClusteringLayer,
    target_distribution,
)
from audioclust.deep.data import (
    DeviceBatches,
    FeaturesDataModule,
    FeaturesDataset,
    load_feature,
)
from audioclust.deep.dcec import DCECModule
from audioclust.deep.schedule import PROFILES, Schedule
from audioclust.deep.train import (
    device_name,
    embed,
    pretraining_hash,
    run_dcec,
    thread_count,
    train_autoencoder,
)
from audioclust.dsp.images import fixed_size_image

SIZE = [12, 8]


@pytest.fixture
def cfg():
    """A tiny autoencoder section: 12×8 images, a few quick epochs."""
    return load_config(overrides={
        "autoencoder.input_size": SIZE, "autoencoder.latent_dims": [4], "autoencoder.batch_size": 8,
        "autoencoder.max_epochs": 2, "autoencoder.val_fraction": 0.25, "autoencoder.num_threads": 1,
        "autoencoder.update_interval": 3, "autoencoder.max_iter": 12, "autoencoder.kmeans_n_init": 5,
    }).autoencoder


#: The default image preparation (the ``images`` section): mel images trimmed at 20 dB, dB re the file's peak.
IMAGES = load_config().images


def two_families(n: int = 24, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Arrays (n_bins=10, n_frames 8..15): energy in the low bins for family 0, the high bins for 1."""
    rng = np.random.default_rng(seed)
    arrays, truth = [], np.arange(n) % 2
    for fam in truth:
        a = rng.normal(-60, 2, size=(10, int(rng.integers(8, 16))))
        a[:5] += 50 if fam == 0 else 0
        a[5:] += 50 if fam == 1 else 0
        arrays.append(a.astype(np.float32))
    return arrays, truth


def train(cfg, arrays, tmp_path, seed=0, **kwargs):
    kwargs = {"trim_db": IMAGES.trim_db, "per_file": IMAGES.per_file["mel"], **kwargs}
    return train_autoencoder("dcec", arrays, cfg, seed, tmp_path / "logs", tmp_path / "ckpt", progress=False, **kwargs)


# --------------------------------------------------------------------------- data

def test_resize_puts_time_first_and_keeps_values_when_no_resize_is_needed():
    frames = np.tile(np.arange(6, dtype=np.float32), (4, 1))  # value = frame index, 4 bins
    ds = FeaturesDataset([frames], size=(6, 4), scale="none")
    assert ds.images.shape == (1, 1, 6, 4)
    assert torch.equal(ds[0][0][0], torch.from_numpy(frames.T))
    stretched = FeaturesDataset([frames], size=(12, 4), scale="none").images[0, 0]
    assert (stretched.diff(dim=0) >= 0).all() and (stretched.diff(dim=0).sum(dim=0) > 0).all()  # time rises
    assert torch.allclose(stretched, stretched[:, :1].expand(-1, 4))  # constant along frequency


def test_fixed_size_image_trims_normalises_and_resizes_by_hand():
    # one bin, frames [-90, -70, -10, 0, -25, -95]: within 20 dB of the peak are frames 2..3,
    # within 30 dB frames 2..4 (the first..last such frame)
    a = np.array([[-90.0, -70.0, -10.0, 0.0, -25.0, -95.0]])
    assert fixed_size_image(a, size=(2, 1), trim_db=20.0).ravel().tolist() == [-10.0, 0.0]
    assert fixed_size_image(a, size=(3, 1), trim_db=30.0).ravel().tolist() == [-10.0, 0.0, -25.0]
    assert fixed_size_image(a, size=(6, 1)).ravel().tolist() == a.ravel().tolist()        # no trim
    # the region can be decided on another feature (the mel of an MFCC): frames 1..2 there
    level = np.array([[-80.0, 0.0, -5.0, -60.0, -70.0, -80.0]])
    assert fixed_size_image(a, size=(2, 1), level_db=level, trim_db=20.0).ravel().tolist() == [-70.0, -10.0]
    # peak: dB re the file's loudest bin, so a 30 dB quieter copy gives the same image
    two = np.array([[-40.0, -30.0], [-50.0, -36.0]])
    assert fixed_size_image(two, size=(2, 2), per_file="peak").tolist() == [[-10.0, -20.0], [0.0, -6.0]]
    assert np.array_equal(fixed_size_image(two - 30.0, size=(2, 2), per_file="peak"),
                          fixed_size_image(two, size=(2, 2), per_file="peak"))
    # meanvar: rows over time; row 0 (1, 3): mean 2, std 1 -> (-1, 1); a constant row is only centred
    rows = np.array([[1.0, 3.0], [5.0, 5.0]])
    assert fixed_size_image(rows, size=(2, 2), per_file="meanvar").tolist() == [[-1.0, 0.0], [1.0, 0.0]]
    # resize, time first. Up 2 -> 4 (bilinear, half-pixel centres): output i samples input
    # (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clamped: x0, 0.75 x0 + 0.25 x1, 0.25 x0 + 0.75 x1, x1
    up = fixed_size_image(np.array([[0.0, 4.0]]), size=(4, 1))
    assert up.ravel().tolist() == [0.0, 1.0, 3.0, 4.0] and up.dtype == np.float32
    # down 4 -> 2 (antialiased): triangle of half-width 2 around input position 1 (output 0):
    # inputs at 0.5, 1.5, 2.5 weigh 0.75, 0.75, 0.25 -> normalised 3/7, 3/7, 1/7
    down = fixed_size_image(np.array([[7.0, 0.0, 0.0, 0.0]]), size=(2, 1)).ravel()
    assert down[0] == pytest.approx(3.0, abs=1e-6) and down[1] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="per_file"):
        fixed_size_image(a, size=(2, 1), per_file="max")
    with pytest.raises(ValueError, match="frames"):
        fixed_size_image(a, size=(2, 1), level_db=level[:, :3], trim_db=20.0)


def test_dataset_applies_the_per_file_steps_and_takes_prepared_images():
    arrays, _ = two_families(6)
    levels = [a + 3.0 for a in arrays]   # any dB reference with the same frames
    ds = FeaturesDataset(arrays, size=SIZE, levels=levels, trim_db=20.0, per_file="peak")
    images = [fixed_size_image(a, size=SIZE, level_db=lv, trim_db=20.0, per_file="peak")
              for a, lv in zip(arrays, levels)]
    prepared = FeaturesDataset(images, size=SIZE, prepared=True)
    assert torch.equal(prepared.images, ds.images) and (prepared.low, prepared.high) == (ds.low, ds.high)
    assert prepared.fingerprint() == ds.fingerprint()        # same training data: same checkpoint either way
    # a file and its 20 dB quieter copy give the same image under peak normalisation
    quiet = FeaturesDataset([arrays[0], arrays[0] - 20.0], size=SIZE, per_file="peak", scale="none")
    assert torch.allclose(quiet.images[0], quiet.images[1], atol=1e-4)
    assert ds.fingerprint() != FeaturesDataset(arrays, size=SIZE, levels=levels, trim_db=20.0).fingerprint()
    with pytest.raises(StageInputError, match="input size"):
        FeaturesDataset(arrays, size=SIZE, prepared=True)                  # (n_bins, n_frames), not (T, F)
    with pytest.raises(ConfigError, match="per_file"):
        FeaturesDataset(arrays, size=SIZE, per_file="max")


def test_one_scale_for_the_whole_dataset_keeps_level_differences():
    # pixels: four 0s, four 5s, four 10s. np.percentile (linear) puts the 1st percentile at
    # rank 0.11 -> 0 and the 99th at rank 10.89 -> 10, so the map is v / 10
    arrays = [np.full((2, 2), v, dtype=np.float32) for v in (0.0, 5.0, 10.0)]
    ds = FeaturesDataset(arrays, size=(2, 2))
    assert (ds.low, ds.high) == (0.0, 10.0)
    assert [ds[i][0].mean().item() for i in range(3)] == [0.0, 0.5, 1.0]
    fixed = FeaturesDataset(arrays, size=(2, 2), scale=(2.5, 7.5))  # (v - 2.5) / 5, clipped
    assert [fixed[i][0].mean().item() for i in range(3)] == [0.0, 0.5, 1.0]
    mm = FeaturesDataset([np.array([[0.0, 1.0], [3.0, 4.0]], dtype=np.float32)], size=(2, 2), scale="minmax")
    assert torch.equal(mm.images[0, 0], torch.tensor([[0.0, 0.75], [0.25, 1.0]]))  # transposed


def test_percentile_scale_clips_outliers():
    values = np.arange(101, dtype=np.float32).reshape(1, 101)  # 0..100: percentiles 1 and 99 are 1 and 99
    ds = FeaturesDataset([values], size=(101, 1))
    assert (ds.low, ds.high) == pytest.approx((1.0, 99.0))
    image = ds.images[0, 0, :, 0]
    assert image[0] == 0.0 and image[-1] == 1.0 and image[50].item() == pytest.approx(49 / 98)


def test_paths_npy_and_png(tmp_path):
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.save(tmp_path / "a.npy", array)
    # stage 03's PNG: row 0 = highest bin; grey 255 in the top row means the highest bin is bright
    Image.fromarray(np.array([[255, 255, 255], [0, 0, 0]], dtype=np.uint8)).save(tmp_path / "b.png")
    assert np.array_equal(load_feature(tmp_path / "a.npy"), array)
    assert np.array_equal(load_feature(tmp_path / "b.png"), np.array([[0, 0, 0], [1, 1, 1]], dtype=np.float32))
    ds = FeaturesDataset([tmp_path / "a.npy", tmp_path / "b.png"], size=(3, 2), scale="none")
    assert ds.keys == [str(tmp_path / "a.npy"), str(tmp_path / "b.png")]
    assert ds.shapes == [(2, 3), (2, 3)]
    (tmp_path / "c.txt").write_text("x")
    with pytest.raises(StageInputError, match="npy or .png"):
        load_feature(tmp_path / "c.txt")


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(StageInputError, match="stage 03"):
        FeaturesDataset([])
    with pytest.raises(StageInputError, match="NaN"):
        FeaturesDataset([np.array([[np.nan, 1.0]], dtype=np.float32)])
    with pytest.raises(ConfigError, match="keys"):
        FeaturesDataset([np.ones((2, 2))], keys=["a", "b"])


def test_fingerprint_follows_data_and_keys():
    arrays, _ = two_families(4)
    a = FeaturesDataset(arrays, size=SIZE)
    assert a.fingerprint() == FeaturesDataset(arrays, size=SIZE).fingerprint()
    changed = [arr.copy() for arr in arrays]
    changed[2][0, 0] += 10.0
    assert FeaturesDataset(changed, size=SIZE).fingerprint() != a.fingerprint()
    assert FeaturesDataset(arrays, size=SIZE, keys=list("abcd")).fingerprint() != a.fingerprint()


def test_full_loader_covers_every_sample_once_in_order_and_split_is_seeded():
    arrays, _ = two_families(23)
    ds = FeaturesDataset(arrays, size=SIZE)
    dm = FeaturesDataModule(ds, batch_size=5, val_fraction=0.2, seed=3)
    xs, idx = zip(*dm.full_dataloader())
    assert torch.cat(idx).tolist() == list(range(23))
    assert torch.equal(torch.cat(xs), ds.images)
    assert [len(i) for i in idx] == [5, 5, 5, 5, 3]  # no drop_last
    assert torch.cat([i for _, i in dm.predict_dataloader()]).tolist() == list(range(23))
    shuffled = torch.cat([i for _, i in dm.full_dataloader(shuffle=True)]).tolist()
    assert sorted(shuffled) == list(range(23)) and shuffled != list(range(23))
    assert len(dm.val_indices) == 5  # round(23 * 0.2)
    assert sorted(dm.train_indices + dm.val_indices) == list(range(23))
    assert torch.cat([i for _, i in dm.val_dataloader()]).tolist() == dm.val_indices
    assert FeaturesDataModule(ds, val_fraction=0.2, seed=3).val_indices == dm.val_indices
    assert FeaturesDataModule(ds, val_fraction=0.2, seed=4).val_indices != dm.val_indices
    assert not FeaturesDataModule(ds, val_fraction=0.0).has_validation


def test_device_batches_cover_every_sample_once_per_pass_in_a_seeded_order():
    arrays, _ = two_families(23)
    ds = FeaturesDataset(arrays, size=SIZE)
    dm = FeaturesDataModule(ds, batch_size=5, val_fraction=0.2, seed=3)
    batches = dm.train_dataloader()                      # the CPU holds the images: resident
    assert isinstance(batches, DeviceBatches) and len(batches) == 4          # 18 training samples
    passes = [list(batches) for _ in range(2)]
    for one in passes:
        assert sorted(torch.cat([idx for _, idx in one]).tolist()) == dm.train_indices
        assert [len(idx) for _, idx in one] == [5, 5, 5, 3]
        assert all(torch.equal(x, ds.images[idx]) for x, idx in one)
    orders = [torch.cat([idx for _, idx in one]).tolist() for one in passes]
    assert orders[0] != orders[1]                        # a new permutation per pass ...
    again = FeaturesDataModule(ds, batch_size=5, val_fraction=0.2, seed=3).train_dataloader()
    assert [torch.cat([idx for _, idx in again]).tolist() for _ in range(2)] == orders   # ... repeated by the seed
    other = DeviceBatches(ds.images, dm.train_indices, 5, shuffle=True, seed=4)
    assert torch.cat([idx for _, idx in other]).tolist() != orders[0]
    assert torch.cat([idx for _, idx in dm.val_dataloader()]).tolist() == dm.val_indices   # in order

    # the DataLoader of data too large for the device draws the same batches in the same order
    resident = FeaturesDataModule(ds, batch_size=5, val_fraction=0.2, seed=3).train_dataloader()
    loader = FeaturesDataModule(ds, batch_size=5, val_fraction=0.2, seed=3, resident=False).train_dataloader()
    assert isinstance(loader, torch.utils.data.DataLoader)
    for _ in range(2):
        for (x, i), (y, j) in zip(resident, loader, strict=True):
            assert torch.equal(i, j) and torch.equal(x, y)


# --------------------------------------------------------------------------- DCEC maths

def test_soft_assignment_by_hand():
    z = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    layer = ClusteringLayer(2, 2, alpha=1.0, centers=np.array([[0.0, 0.0], [2.0, 0.0]]))
    # alpha = 1: kernel 1 / (1 + d²).
    # z1: d² = (0, 4) -> (1, 1/5), sum 6/5 -> q1 = (5/6, 1/6)
    # z2: d² = (9, 1) -> (1/10, 1/2), sum 3/5 -> q2 = (1/6, 5/6)
    q = layer(z)
    assert torch.allclose(q, torch.tensor([[5 / 6, 1 / 6], [1 / 6, 5 / 6]]))
    # alpha = 2: kernel (1 + d²/2)^(-3/2); z1 -> (1, 3^-1.5 = 0.192450) -> q1 = (1, 0.192450) / 1.192450
    layer2 = ClusteringLayer(2, 2, alpha=2.0, centers=np.array([[0.0, 0.0], [2.0, 0.0]]))
    assert torch.allclose(layer2(z[:1]), torch.tensor([[0.838610, 0.161390]]), atol=1e-6)


def test_target_distribution_by_hand():
    q = torch.tensor([[0.5, 0.5], [0.8, 0.2]])
    # f = column sums = (1.3, 0.7)
    # row 1: (0.25/1.3, 0.25/0.7) -> normalised 0.7/(0.7 + 1.3) = 0.35, 0.65
    # row 2: (0.64/1.3, 0.04/0.7) -> 0.448/(0.448 + 0.052) = 0.896, 0.104
    expected = torch.tensor([[0.35, 0.65], [0.896, 0.104]])
    assert torch.allclose(target_distribution(q), expected, atol=1e-6)
    assert np.allclose(target_distribution(q.numpy()), expected.numpy(), atol=1e-6)


class Identity2D(torch.nn.Module):
    """An 'autoencoder' whose embedding is the first two values of each sample: DCEC maths by hand."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def encode(self, x):
        return x.reshape(len(x), -1)[:, :2]

    def decode(self, z):
        return z


def test_collapse_guard_restores_the_last_update_with_every_cluster():
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [5.1, 0.0]])
    module = DCECModule(Identity2D(), np.array([[0.0, 0.0], [5.0, 0.0]]), x, np.array([0, 0, 1, 1]),
                        update_interval=1)
    assert module.update_targets() == 0.0 and not module.collapsed      # both clusters kept
    with torch.no_grad():
        module.clustering.centers[1] = torch.tensor([100.0, 0.0])        # every point now nearer centre 0
    assert module.update_targets() == 0.5 and module.collapsed
    assert module.history[-1]["n_clusters"] == 1 and module.labels.tolist() == [0, 0, 0, 0]
    module.restore_last_full()
    assert module.labels.tolist() == [0, 0, 1, 1] and module.restored_iteration == 0
    assert module.clustering.centers[1].tolist() == [5.0, 0.0]
    assert [h["n_clusters"] for h in module.history] == [2, 1]


@pytest.mark.parametrize("tol, tol_files, settled", [
    (0.001, 1, [False, True, True]),    # the default: at most one file, though 1 of 8 is far above 0.001
    (0.001, 0, [False, False, True]),   # tol alone (DCEC's published rule): only no change at all on 8 files
    (0.2, 0, [False, True, True]),      # 1 of 8 (12.5 %) is under a share of 0.2
    (0.0, 0, [False, False, False]),    # tol 0 and no floor: never
])
def test_dcec_stops_when_under_tol_or_at_most_tol_files_labels_change(tol, tol_files, settled):
    x = torch.tensor([[float(i), 0.0] for i in (0, 1, 2, 3, 10, 11, 12, 13)])
    module = DCECModule(Identity2D(), np.array([[1.5, 0.0], [11.5, 0.0]]), x, np.array([0, 0, 0, 0, 1, 1, 1, 1]),
                        tol=tol, tol_files=tol_files)
    changed, seen = [], []
    for moved in ([3, 4], [3], []):            # the points whose previous label differs from the one found now
        for i in moved:
            module.labels[i] = 1 - module.labels[i]
        delta = module.update_targets()
        changed.append(module.changed)
        seen.append(module._settled(delta))
    assert changed == [2, 1, 0] and seen == settled


# --------------------------------------------------------------------------- training

@pytest.mark.parametrize("name", ["dcec", "conv4", "vae"])
def test_fast_dev_run_each_architecture(name, cfg, tmp_path):
    arrays, _ = two_families(8)
    result = train_autoencoder(name, arrays, cfg, 0, tmp_path / "logs", tmp_path / "ckpt",
                               trainer_kwargs={"fast_dev_run": True, "accelerator": "cpu"}, progress=False)
    assert not result.reused and result.epochs == 1
    assert result.checkpoint.is_file() and result.checkpoint.with_suffix(".json").is_file()
    z = embed(result.module, result.datamodule)
    assert z.shape == (8, 4) and z.dtype == np.float32 and np.isfinite(z).all()


@pytest.mark.filterwarnings("ignore:Experiment logs directory")  # the retrain after the marker is removed
def test_checkpoint_reuse_rule(cfg, tmp_path, monkeypatch):
    arrays, _ = two_families(16)
    first = train(cfg, arrays, tmp_path)
    assert not first.reused and first.epochs == 2 and first.checkpoint.name.startswith("dcec_z4_s0_")
    z1 = embed(first.module, first.datamodule)

    def no_fit(*args, **kwargs):
        raise AssertionError("Trainer.fit called although the checkpoint should be reused")

    with monkeypatch.context() as m:
        m.setattr(pl.Trainer, "fit", no_fit)
        again = train(cfg, arrays, tmp_path)
        assert again.reused and again.epochs == 2 and again.checkpoint == first.checkpoint
        assert np.array_equal(embed(again.module, again.datamodule), z1)
        # DCEC-stage keys do not change the pre-trained model
        assert train(cfg, arrays, tmp_path, trainer_kwargs=None).reused
        assert train(dataclasses.replace(cfg, gamma=0.5, max_iter=7), arrays, tmp_path).reused

    calls = []
    original_fit = pl.Trainer.fit
    monkeypatch.setattr(pl.Trainer, "fit", lambda self, *a, **k: (calls.append(1), original_fit(self, *a, **k)))
    other_latent = train(cfg, arrays, tmp_path, latent_dim=3)
    changed = [a.copy() for a in arrays]
    changed[0][:5] += 10.0  # louder low bins: a change that peak normalisation keeps
    other_data = train(cfg, changed, tmp_path)
    other_lr = train(dataclasses.replace(cfg, lr=0.01), arrays, tmp_path)
    other_seed = train(cfg, arrays, tmp_path, seed=1)
    assert len(calls) == 4
    assert not any(r.reused for r in (other_latent, other_data, other_lr, other_seed))
    assert len({r.checkpoint for r in (first, other_latent, other_data, other_lr, other_seed)}) == 5
    # another thread count trains other weights on a CPU: every core (num_threads 0) is another model than one
    # thread, unless this machine has a single core
    every_core = train(dataclasses.replace(cfg, num_threads=0), arrays, tmp_path)
    assert every_core.reused == (thread_count(0) == 1) and len(calls) == 4 + (thread_count(0) > 1)
    assert read_json(first.checkpoint.with_suffix(".json"))["cpu_threads"] == 1
    # a checkpoint without its completion marker (an interrupted run) is not trusted
    first.checkpoint.with_suffix(".json").unlink()
    assert not train(cfg, arrays, tmp_path).reused


def test_a_truncated_checkpoint_is_set_aside_and_retrained(cfg, tmp_path, caplog):
    arrays, _ = two_families(16)
    first = train(cfg, arrays, tmp_path)
    z1 = embed(first.module, first.datamodule)
    raw = first.checkpoint.read_bytes()
    first.checkpoint.write_bytes(raw[: len(raw) // 2])  # `truncate -s` of a copy that stopped halfway
    with caplog.at_level("WARNING", logger="audioclust"):
        again = train(cfg, arrays, tmp_path)
    assert not again.reused and again.checkpoint == first.checkpoint and again.epochs == 2
    assert "cannot be read (RuntimeError" in caplog.text and "training again" in caplog.text
    aside = first.checkpoint.with_name(first.checkpoint.name + ".damaged")
    assert aside.read_bytes() == raw[: len(raw) // 2]
    np.testing.assert_allclose(embed(again.module, again.datamodule), z1, atol=1e-6)  # the same seed retrains the same
    assert train(cfg, arrays, tmp_path).reused  # and the new checkpoint is trusted again


#: what Lightning writes by itself: its progress bar, its device lines, its advice
LIGHTNING_TEXT = ("Epoch", "it/s", "GPU available", "TPU available", "Tip:", "Seed set", "LOCAL_RANK")


def test_lightning_is_quiet_unless_verbose(cfg, tmp_path, capfd, caplog):
    arrays, _ = two_families(16)
    caplog.set_level("INFO")
    trained = train_autoencoder("dcec", arrays, cfg, 0, tmp_path / "logs", tmp_path / "ckpt")  # progress: default
    run_dcec(trained.module, trained.datamodule, 2, cfg, seed=0)
    shown = "".join(capfd.readouterr()) + caplog.text
    assert not [text for text in LIGHTNING_TEXT if text in shown]
    ours = [r.getMessage() for r in caplog.records if r.name == "audioclust.deep.train"]
    assert len(ours) == 2  # one line per training: the pre-training and DCEC
    assert ours[0].startswith("trained dcec_z4_s0 on 16 samples (4 for validation) on cpu: 2 of at most 2 epochs "
                              "(cpu profile, stopped by max_epochs) in ")
    assert ", best val_loss " in ours[0] and ours[1].startswith("DCEC k=2: stopped by ")
    assert not [r for r in caplog.records if r.name.startswith(("pytorch_lightning", "lightning"))]

    # -v (DEBUG logging): Lightning speaks again, bar included, and its loggers are back as they were
    caplog.clear()
    caplog.set_level("DEBUG", logger="audioclust")
    train_autoencoder("dcec", arrays, cfg, 0, tmp_path / "logs_again", tmp_path / "again")
    shown = "".join(capfd.readouterr()) + caplog.text
    assert "Epoch" in shown and "GPU available" in shown
    assert logging.getLogger("pytorch_lightning").level == logging.INFO


def test_deterministic_training_is_bitwise_repeatable_on_either_data_path(cfg, tmp_path):
    arrays, _ = two_families(16)
    assert cfg.deterministic                                       # the default
    runs = [train(cfg, arrays, tmp_path / "a"), train(cfg, arrays, tmp_path / "b"),
            train(cfg, arrays, tmp_path / "c", resident=False)]
    states = [r.module.state_dict() for r in runs]
    for other in states[1:]:
        assert all(torch.equal(states[0][key], other[key]) for key in states[0])
    assert not torch.are_deterministic_algorithms_enabled()       # Lightning's global switch is put back
    marker = read_json(runs[0].checkpoint.with_suffix(".json"))
    assert marker["device"] == runs[0].device == "cpu" and marker["deterministic"] is True


def test_checkpoint_hash_follows_the_device_and_the_deterministic_flag(cfg):
    ds = FeaturesDataset(two_families(8)[0], size=SIZE)

    cpu = Schedule("cpu", max_epochs=40, patience=10, lr_patience=4)

    def key(c=cfg, device="cpu", schedule=cpu, cpu_threads=None):
        return pretraining_hash(ds, "dcec", 4, c, 0, device=device, schedule=schedule, cpu_threads=cpu_threads)

    devices = ["cpu", "mps", "cuda (NVIDIA H200)", "cuda (NVIDIA H100 80GB HBM3)"]
    assert len({key(device=d) for d in devices}) == len(devices)
    assert key() == key() and device_name("cpu") == "cpu"
    assert key(dataclasses.replace(cfg, deterministic=False)) != key()
    assert key(dataclasses.replace(cfg, tsne=True)) == key()                  # a figure switch
    # the architecture counts by the name trained, not by the key naming the one for embeddings
    assert key(dataclasses.replace(cfg, embedding_architecture="mlp_pca")) == key()
    # the resolved schedule counts, not how it was asked for: a profile's values or the same ones written out
    assert key(dataclasses.replace(cfg, profile="gpu", max_epochs=None, patience=None)) == key()
    assert key(schedule=dataclasses.replace(cpu, max_epochs=41)) != key()
    assert key(schedule=dataclasses.replace(cpu, patience=0)) != key()
    # on a CPU the thread count counts (it orders the floating-point sums); the num_threads key by what it resolves to
    assert len({key(), key(cpu_threads=1), key(cpu_threads=2)}) == 3
    assert key(dataclasses.replace(cfg, num_threads=0)) == key()


def test_same_seed_same_embedding(cfg, tmp_path):
    arrays, _ = two_families(16)
    z = [embed(r.module, r.datamodule) for r in (train(cfg, arrays, tmp_path / "a"),
                                                  train(cfg, arrays, tmp_path / "b"),
                                                  train(cfg, arrays, tmp_path / "c", seed=1))]
    np.testing.assert_allclose(z[0], z[1], rtol=0, atol=1e-6)
    assert not np.allclose(z[0], z[2], atol=1e-3)


def test_dcec_stage_on_separable_data(cfg, tmp_path):
    arrays, truth = two_families(24)
    # a converged pre-training (val MSE ~1e-3): DCEC starts from a meaningful embedding
    pre = train(dataclasses.replace(cfg, max_epochs=25, lr=0.003, batch_size=4), arrays, tmp_path)
    before = {k: v.clone() for k, v in pre.module.state_dict().items()}

    by_iter = run_dcec(pre.module, pre.datamodule, 2, dataclasses.replace(cfg, tol=0.0, tol_files=0), seed=0,
                       log_dir=tmp_path / "logs")
    # tol = 0 can never be undercut: training runs to max_iter = 12, with updates every 3 batches
    assert by_iter.stopped_by == "max_iter" and by_iter.iterations == 12
    assert by_iter.history["iteration"].tolist() == [0, 3, 6, 9, 12]
    assert by_iter.labels.shape == (24,) and set(by_iter.labels) <= {0, 1}
    assert np.allclose(by_iter.q.sum(axis=1), 1.0, atol=1e-5)
    assert by_iter.embedding.shape == (24, 4)
    assert np.isnan(by_iter.history["loss"].iloc[0]) and np.isfinite(by_iter.history["loss"].iloc[1:]).all()
    assert normalized_mutual_info_score(truth, by_iter.labels) == 1.0
    assert normalized_mutual_info_score(truth, by_iter.kmeans_labels) == 1.0

    # max_iter null: the profile's batch limit (cpu here, on any device)
    by_profile = run_dcec(pre.module, pre.datamodule, 2, dataclasses.replace(cfg, tol=0.0, tol_files=0, max_iter=None,
                                                                             profile="cpu", update_interval=100),
                          seed=0)
    assert by_profile.stopped_by == "max_iter" and by_profile.iterations == PROFILES["cpu"].dcec_batches == 800
    # ... at most the profile's epoch limit in passes: the 24 samples in one batch a pass get 200 batches, not 800
    one_batch = copy.copy(pre.datamodule)
    one_batch.batch_size = 24
    by_passes = run_dcec(pre.module, one_batch, 2, dataclasses.replace(cfg, tol=0.0, tol_files=0, max_iter=None, profile="cpu",
                                                                       update_interval=100), seed=0)
    assert by_passes.stopped_by == "max_iter" and by_passes.iterations == PROFILES["cpu"].max_epochs == 200

    # tol = 1: any change below 100 % stops at the first update after the start
    by_tol = run_dcec(pre.module, pre.datamodule, 2, dataclasses.replace(cfg, tol=1.0), seed=0)
    assert by_tol.stopped_by == "tol" and by_tol.iterations == 3
    assert by_tol.history["iteration"].tolist() == [0, 3]
    assert len(by_tol.labels) == 24

    # the pre-trained autoencoder is left untouched
    after = pre.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ConfigError, match="n_clusters"):
        run_dcec(pre.module, pre.datamodule, 25, cfg, seed=0)


class StepLosses(pl.Callback):
    """Each DCEC step's losses, read back at every step (what DCEC itself did before)."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, float, float, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append((trainer.global_step, *(outputs[k].item() for k in ("loss", "recon", "kl"))))


def test_dcec_losses_read_once_per_update_are_the_means_of_its_steps(cfg, tmp_path, monkeypatch):
    arrays, _ = two_families(24)
    pre = train(cfg, arrays, tmp_path)
    # no value crosses from the device to the host inside a DCEC step (on a GPU each would wait for it)
    in_step, step = [], DCECModule.training_step

    def watched(self, *args, **kwargs):
        in_step.append(True)
        try:
            return step(self, *args, **kwargs)
        finally:
            in_step.pop()

    def refused(name):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            assert not in_step, f"Tensor.{name} inside a DCEC step"
            return original(self, *args, **kwargs)
        return read

    monkeypatch.setattr(DCECModule, "training_step", watched)
    for name in ("item", "tolist", "cpu", "numpy", "__float__", "__bool__"):
        monkeypatch.setattr(torch.Tensor, name, refused(name))
    steps = StepLosses()
    never = dataclasses.replace(cfg, tol=0.0, tol_files=0)
    result = run_dcec(pre.module, pre.datamodule, 2, never, seed=0, trainer_kwargs={"callbacks": [steps]})
    monkeypatch.undo()
    history = result.history
    assert len(history) >= 2
    per_step = pd.DataFrame(steps.steps, columns=["step", "loss", "recon", "kl"])   # step: count after the batch
    for (_, before), (_, row) in zip(history.iloc[:-1].iterrows(), history.iloc[1:].iterrows()):
        since = per_step[(per_step["step"] > before["iteration"]) & (per_step["step"] <= row["iteration"])]
        assert len(since) == row["iteration"] - before["iteration"]
        np.testing.assert_allclose(row[["loss", "recon", "kl"]].to_numpy(float),
                                   since[["loss", "recon", "kl"]].mean().to_numpy(), rtol=1e-6)

    # the DataLoader path draws the same batches: the same clustering, bit for bit
    loader = FeaturesDataModule(pre.datamodule.dataset, batch_size=cfg.batch_size, val_fraction=cfg.val_fraction,
                                seed=0, resident=False)
    again = run_dcec(pre.module, loader, 2, never, seed=0)
    assert np.array_equal(again.q, result.q) and np.array_equal(again.embedding, result.embedding)
    pd.testing.assert_frame_equal(again.history, result.history)
