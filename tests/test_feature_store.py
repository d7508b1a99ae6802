"""The packed feature store: filled by stage 03, read by the views, updated incrementally."""

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import tone
from test_extract import SMALL, SR, make_stage02

from audioclust import results
from audioclust.config import load_config
from audioclust.core.paths import ProjectPaths
from audioclust.dsp.images import fixed_size_image
from audioclust.represent import store as feature_store
from audioclust.represent import vectors, views
from audioclust.represent.store import FeatureStore, StoreWriter
from audioclust.results import read_table
from audioclust.stages import extract
from audioclust.stages._shared import views_settings


def build(cfg, paths, **kwargs):
    """Every view of ``cfg`` as stage 04 builds them: its ok rows, the packed store kept up to date."""
    return views.build_views(views_settings(cfg), paths, read_table(paths),
                             store_rows=read_table(paths, ok_only=False), **kwargs)

VIEWS = SMALL + ["views.features=[mel, mfcc]", "views.sources=[npy, png]"]


@pytest.fixture
def setup(project):
    paths = ProjectPaths(project, "ds")
    make_stage02(paths, [
        {"label": "low", "stem": "a", "y": tone(220.0, seconds=0.3)},
        {"label": "high", "stem": "b", "y": tone(3000.0, seconds=0.2, amp=0.2)},
        {"label": "", "stem": "c", "y": tone(440.0, seconds=0.25)},
        {"label": "high", "stem": "quiet", "status": "silent"},
        {"label": "low", "stem": "d", "y": tone(330.0, seconds=0.4, amp=0.5)},
    ])
    return project, paths


def cfg_of(project, *extra):
    return load_config(project, "ds", overrides=[*VIEWS, *extra])


def from_files(cfg, paths):
    """Every store view, built the slow way: one saved NPY/PNG file per clip."""
    table = results.read_table(paths)
    return {s.name: m for s, m in views._raw_matrices(views_settings(cfg), paths, table, views.store_specs(views_settings(cfg))).items()}


def test_writer_round_trip_with_index_and_missing_vectors(tmp_path):
    writer = StoreWriter(tmp_path, {"v": "k1"})
    writer.add("x/a", "x", "a", "ok", {"v": None})           # unreadable before the dimension is known
    writer.add("x/b", "x", "b", "error")
    writer.add("y/c", "y", "c", "ok", {"v": np.array([1.0, 2.0, 3.0])})
    store = writer.commit()
    assert store.n_rows == 2 and store.index["row"].tolist() == [0, -1, 1]
    np.testing.assert_array_equal(store.matrix("v", "k1", ["y/c", "x/a"]), [[1, 2, 3], [np.nan] * 3])
    assert store.matrix("v", "other settings", ["y/c"]) is None   # made with other settings: not trusted
    assert store.matrix("v", "k1", ["z/none"]) is None            # a file it does not hold
    assert (tmp_path / "v.f32").stat().st_size == 2 * 3 * 4        # raw float32, nothing else
    np.testing.assert_array_equal(np.fromfile(tmp_path / "v.f32", dtype="<f4"), [np.nan] * 3 + [1, 2, 3])


def test_store_without_its_json_is_ignored(tmp_path):
    writer = StoreWriter(tmp_path, {"v": "k"})
    writer.add("x/a", "x", "a", "ok", {"v": np.ones(2)})
    writer.commit()
    (tmp_path / "store.json").unlink()                             # as after a run killed mid-commit
    assert FeatureStore.open(tmp_path) is None


def test_extract_fills_the_store_with_exactly_the_per_file_vectors(setup):
    project, paths = setup
    cfg = cfg_of(project)
    extract.run(cfg, paths)
    store = FeatureStore.open(paths.feature_store)
    assert store.index["key"].tolist() == ["low/a", "high/b", "unlabelled/c", "high/quiet", "low/d"]
    assert store.index["status"].tolist() == ["ok", "ok", "ok", "skipped", "ok"]
    assert store.n_rows == 4
    slow = from_files(cfg, paths)
    # mel, mfcc x stats, image x npy, png; and the autoencoder's input images (one per stage-05 feature)
    assert cfg.autoencoder.features == ["mel", "mfcc", "spectrogram", "embeddings"]
    assert sorted(store.views) == sorted(slow) and len(slow) == 11
    assert {"mel.ae.npy", "mfcc.ae.npy", "spectrogram.ae.npy"} <= set(slow)
    keys = ["low/a", "high/b", "unlabelled/c", "low/d"]
    for spec in views.store_specs(views_settings(cfg)):
        np.testing.assert_array_equal(store.matrix(spec.name, views.settings_key(views_settings(cfg), spec), keys), slow[spec.name])


def test_views_read_the_store_not_the_files(setup, monkeypatch):
    project, paths = setup
    cfg = cfg_of(project)
    extract.run(cfg, paths)
    slow = from_files(cfg, paths)

    def no_reading(*args, **kwargs):
        raise AssertionError("a per-file array was read")

    monkeypatch.setattr(vectors, "_read_array", no_reading)
    built = {v.spec.name: v for v in build(cfg, paths)}
    assert len(built) == 8
    for name, view in built.items():
        np.testing.assert_array_equal(view.raw, slow[name])


def test_changed_view_settings_are_built_once_and_added(setup, monkeypatch):
    project, paths = setup
    extract.run(cfg_of(project), paths)
    cfg = cfg_of(project, "views.image.n_frames=3")
    built = {v.spec.name: v for v in build(cfg, paths)}   # reads the files for the image views
    assert built["mel.image.npy"].raw.shape == (4, 32 * 3)
    store = FeatureStore.open(paths.feature_store)
    spec = next(s for s in views.store_specs(views_settings(cfg)) if s.name == "mel.image.npy")
    assert store.views["mel.image.npy"]["key"] == views.settings_key(views_settings(cfg), spec)
    monkeypatch.setattr(vectors, "_read_array", lambda *a, **k: (_ for _ in ()).throw(AssertionError("read")))
    again = {v.spec.name: v for v in build(cfg, paths)}
    np.testing.assert_array_equal(again["mel.image.npy"].raw, built["mel.image.npy"].raw)


def test_incremental_update_adds_new_files_and_drops_removed_ones(setup, monkeypatch):
    project, paths = setup
    cfg = cfg_of(project)
    extract.run(cfg, paths)
    old = FeatureStore.open(paths.feature_store)
    old_a = old.matrix("mel.stats.npy", old.views["mel.stats.npy"]["key"], ["low/a"]).copy()
    # a new file arrives, b leaves
    table = pd.read_csv(paths.transformed_csv, dtype=str, keep_default_na=False)
    wav = paths.wav / "high" / "e.wav"
    sf.write(wav, tone(5000.0, seconds=0.3), SR, subtype="FLOAT")
    new = table.iloc[[0]].assign(stem="e", label="high", path=paths.rel(wav), name="e.wav")
    table = pd.concat([table[table["stem"] != "b"], new], ignore_index=True)
    table.to_csv(paths.transformed_csv, index=False)

    computed = []
    real = extract._compute
    monkeypatch.setattr(extract, "_compute", lambda job, s, v: computed.append(job.stem) or real(job, s, v))
    extract.run(cfg, paths)
    assert computed == ["e"]                                       # a, c, d: copied from the old store
    store = FeatureStore.open(paths.feature_store)
    assert store.index["key"].tolist() == ["low/a", "unlabelled/c", "high/quiet", "low/d", "high/e"]
    key = store.views["mel.stats.npy"]["key"]
    np.testing.assert_array_equal(store.matrix("mel.stats.npy", key, ["low/a"]), old_a)
    slow = from_files(cfg, paths)
    np.testing.assert_array_equal(store.matrix("mel.stats.npy", key, ["low/a", "unlabelled/c", "low/d", "high/e"]),
                                  slow["mel.stats.npy"])


def test_store_lacking_a_file_reads_its_saved_arrays_back(setup, monkeypatch):
    project, paths = setup
    cfg = cfg_of(project)
    extract.run(cfg, paths)
    slow = from_files(cfg, paths)
    for path in paths.feature_store.iterdir():                    # the store is lost; the features are done
        path.unlink()
    monkeypatch.setattr(extract, "_compute", lambda *a: (_ for _ in ()).throw(AssertionError("recomputed")))
    extract.run(cfg, paths)
    store = FeatureStore.open(paths.feature_store)
    spec = views.store_specs(views_settings(cfg))[0]
    np.testing.assert_array_equal(
        store.matrix(spec.name, views.settings_key(views_settings(cfg), spec), ["low/a", "high/b", "unlabelled/c", "low/d"]),
        slow[spec.name])


def test_store_off_writes_no_store_and_views_build_it(setup):
    project, paths = setup
    cfg = cfg_of(project, "views.store=false")
    extract.run(cfg, paths)
    assert not paths.feature_store.exists()
    built = {v.spec.name: v for v in build(cfg, paths)}
    assert FeatureStore.open(paths.feature_store).n_rows == 4     # stage 04 made it, for the next run
    np.testing.assert_array_equal(built["mfcc.image.png"].raw, from_files(cfg, paths)["mfcc.image.png"])
    assert json.loads((paths.feature_store / "store.json").read_text())["version"] == feature_store.VERSION


def test_autoencoder_images_come_from_the_store(setup):
    project, paths = setup
    cfg = cfg_of(project, "autoencoder.input_size=[16, 8]", "images.per_file={mel: peak}")
    extract.run(cfg, paths)
    table = results.read_table(paths)
    images = views.stored_ae_images(views_settings(cfg), paths, table, "mel")
    assert images.shape == (4, 16, 8)
    for i, (label, stem) in enumerate(zip(table["label"], table["stem"])):
        mel = np.load(paths.feature_file("mel", label or "unlabelled", stem, ".npy"))
        expected = fixed_size_image(mel, size=(16, 8), trim_db=cfg.images.trim_db, per_file="peak")
        np.testing.assert_array_equal(images[i], expected)
        assert -30.0 < images[i].max() <= 0.0                      # peak: dB re the file's loudest bin, then averaged
    other = cfg_of(project, "autoencoder.input_size=[32, 8]")      # another input size: not in the store
    assert views.stored_ae_images(views_settings(other), paths, table, "mel") is None
