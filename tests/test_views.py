"""Feature views: per-array steps checked by hand, matrix steps, NPY vs PNG, the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.fft
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from audioclust import results
from audioclust.config import load_config
from audioclust.core.errors import StageInputError
from audioclust.core.paths import ProjectPaths
from audioclust.core.storage import write_bytes, write_csv, write_npy
from audioclust.dsp import images
from audioclust.dsp.descriptors import DESCRIPTORS
from audioclust.dsp.images import png_bytes, to_image
from audioclust.represent import pipeline, vectors, views
from audioclust.results import read_table
from audioclust.stages._shared import views_settings


def build(cfg, paths, **kwargs):
    """Every view of ``cfg`` as stage 04 builds them: its ok rows, the packed store kept up to date."""
    return views.build_views(views_settings(cfg), paths, read_table(paths),
                             store_rows=read_table(paths, ok_only=False), **kwargs)

CLASSES = ("low", "mid", "high")
N_MELS = 16
N_MFCC = 8


def make_features(root: Path, n_per_class: int = 8, labelled: bool = True, seed: int = 0,
                  overrides: dict | None = None):
    """A tiny stage-03 output: 3 classes of mel/MFCC arrays (NPY + PNG) and features.csv.

    Class c has its energy in mel bands 5c..5c+3 during an active region between silent
    frames; lengths and levels jitter per file. One extra row is ``too_short`` (no arrays).
    """
    rng = np.random.default_rng(seed)
    base = {"features.kinds": ["mel", "mfcc"], "features.n_mels": N_MELS, "features.n_mfcc": N_MFCC,
            "views.features": ["mel", "mfcc", "descriptors"], "views.sources": ["npy"],
            "views.image.pca": 5, "views.image.umap": None, "views.stats.pca": None, "cluster.algorithms": ["kmeans"], "cluster.k": 3,
            "cluster.figures": False, "parallel.n_jobs": 1}
    cfg = load_config(root, "tiny", overrides={**base, **(overrides or {})})
    paths = ProjectPaths(root, "tiny")
    rows = []
    for c, name in enumerate(CLASSES):
        for i in range(n_per_class):
            stem, label = f"{name}_{i}", name if labelled else ""
            n_frames = int(rng.integers(20, 30))
            mel = np.full((N_MELS, n_frames), -70.0) + rng.normal(0, 1.0, (N_MELS, n_frames))
            start, stop = int(rng.integers(2, 5)), n_frames - int(rng.integers(2, 5))
            mel[:, start:stop] += 20.0
            mel[5 * c:5 * c + 4, start:stop] = rng.uniform(-15, -5) + rng.normal(0, 1.0, (4, stop - start))
            mel = mel.astype(np.float32)
            mfcc = scipy.fft.dct(mel, axis=0, type=2, norm="ortho")[:N_MFCC].astype(np.float32)
            folder = label or "unlabelled"
            for kind, array in (("mel", mel), ("mfcc", mfcc)):
                write_npy(paths.feature_file(kind, folder, stem, ".npy"), array)
                vmin, vmax = cfg.features.png_ranges[kind]
                write_bytes(paths.feature_file(kind, folder, stem, ".png"),
                            png_bytes(to_image(array, vmin=vmin, vmax=vmax)))
            desc = {d: float(rng.normal()) for d in DESCRIPTORS}
            desc["centroid_mean"] = 500.0 + 2000.0 * c + rng.normal(0, 50)
            desc["tempo"] = np.nan if i % 3 == 0 else 120.0
            rows.append({"stem": stem, "label": label, "path": f"datasets/tiny_wav/{folder}/{stem}.wav",
                         "status": "ok", "reason": "", "n_frames": n_frames, **desc})
    rows.append({"stem": "short", "label": CLASSES[0] if labelled else "", "path": "", "status": "too_short",
                 "reason": "100 samples", "n_frames": None, **{d: np.nan for d in DESCRIPTORS}})
    write_csv(paths.features_csv, pd.DataFrame(rows))
    return cfg, paths


# --------------------------------------------------------------------------- per-array steps

def test_stats_vector_by_hand():
    a = np.array([[1.0, 2.0, 4.0], [3.0, 3.0, 3.0]], dtype=np.float32)
    v = vectors.stats_vector(a)
    # row 0: mean 7/3, std sqrt(14/9); deltas [1, 2]: mean 1.5, std 0.5; row 1 constant
    expected = [7 / 3, 3.0, np.sqrt(14 / 9), 0.0, 1.5, 0.0, 0.5, 0.0]
    np.testing.assert_allclose(v, expected, rtol=1e-6)
    assert v.dtype == np.float32 and v.shape == (8,)
    # one frame: deltas are 0
    np.testing.assert_allclose(vectors.stats_vector(np.array([[5.0]])), [5.0, 0.0, 0.0, 0.0])


def test_resample_linear_ramp():
    ramp = np.tile(np.arange(5, dtype=np.float32), (2, 1))       # value = frame index
    np.testing.assert_allclose(vectors.resample_frames(ramp, 3), [[0, 2, 4]] * 2)
    np.testing.assert_allclose(vectors.resample_frames(ramp, 9)[0], np.arange(9) / 2)
    np.testing.assert_allclose(vectors.resample_frames(ramp[:, :2], 5)[0], [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(vectors.resample_frames(np.array([[7.0]]), 4), [[7, 7, 7, 7]])


def test_image_vector_is_bin_major():
    a = np.array([[0.0, 10.0], [100.0, 300.0]], dtype=np.float32)
    np.testing.assert_allclose(vectors.image_vector(a, 3), [0, 5, 10, 100, 200, 300])


def test_trim_keeps_first_to_last_active_frame():
    loudest = np.array([-90.0, -50.0, -10.0, -25.0, -35.0, -80.0])
    level = np.vstack([loudest, loudest - 30.0])                 # the max over bins is row 0
    assert images.active_frames(level, top_db=20.0) == slice(2, 4)       # within 20 dB of -10: frames 2, 3
    assert images.active_frames(level, top_db=30.0) == slice(2, 5)
    assert images.active_frames(level, top_db=None) == slice(None)
    # a pause inside the active region is kept
    assert images.active_frames(np.array([[-80.0, -5.0, -60.0, -10.0, -90.0]]), top_db=20.0) == slice(1, 4)


def test_per_file_normalisation():
    rng = np.random.default_rng(1)
    a = (rng.normal(3.0, 2.0, (4, 50)) * np.arange(1, 5)[:, None]).astype(np.float32)
    a[3] = 7.0                                                   # a constant row
    mv = images.normalise_per_file(a, mode="meanvar")
    np.testing.assert_allclose(mv.mean(axis=1), 0.0, atol=1e-6)
    np.testing.assert_allclose(mv[:3].std(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(mv[3], 0.0)                    # centred, not blown up
    m = images.normalise_per_file(a, mode="mean")
    np.testing.assert_allclose(m.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(m[:3].std(axis=1), a[:3].std(axis=1), rtol=1e-5)
    assert images.normalise_per_file(a, mode="none") is a
    # peak: dB re the file's loudest bin, so a quieter copy of the same sound is the same image
    np.testing.assert_allclose(images.normalise_per_file(a, mode="peak"), a - a.max(), rtol=1e-6)
    np.testing.assert_allclose(vectors.image_vector(a - 30.0, 5, "peak"), vectors.image_vector(a, 5, "peak"), atol=1e-4)
    assert images.normalise_per_file(a, mode="peak").max() == 0.0
    with pytest.raises(ValueError, match="per_file"):
        images.normalise_per_file(a, mode="max")


def test_pool_bins_averages_groups():
    a = np.arange(10, dtype=np.float32).reshape(5, 2)            # rows [0,1] [2,3] [4,5] [6,7] [8,9]
    # 5 bins, at most 2 -> groups of 3: rows 0-2 and 3-4
    np.testing.assert_allclose(vectors.pool_bins(a, 2), [[2, 3], [7, 8]])
    assert vectors.pool_bins(a, 5) is a


# --------------------------------------------------------------------------- matrix steps

def test_impute_column_means():
    X = np.array([[1.0, np.nan, np.nan], [3.0, 4.0, np.inf], [np.nan, 8.0, np.nan]])
    np.testing.assert_allclose(pipeline.impute_column_means(X), [[1, 6, 0], [3, 4, 0], [2, 8, 0]])


def test_pca_fraction_of_variance_and_whitening():
    c1, c2, c3 = np.array([1, 1, -1, -1.0]), np.array([1, -1, 1, -1.0]), np.array([1, -1, -1, 1.0])
    X = np.column_stack([2 * c1 + c2, 2 * c1 - c2, c3])          # centred columns
    # X^T X = [[20, 12, 0], [12, 20, 0], [0, 0, 4]]: eigenvalues 32, 8, 4 -> ratios 8/11, 2/11, 1/11
    _, ratio, n = pipeline.transform(X, scale="none", pca=0.7)
    np.testing.assert_allclose(ratio, [8 / 11, 2 / 11, 1 / 11], rtol=1e-9)
    assert n == 1                                                # 8/11 = 0.727 >= 0.7
    assert pipeline.transform(X, scale="none", pca=0.8)[2] == 2     # 0.727 < 0.8 <= 10/11
    assert pipeline.transform(X, scale="none", pca=0.95)[2] == 3
    Z, _, n = pipeline.transform(X, scale="none", pca=2.0, whiten=True)
    assert Z.shape == (4, 2) and n == 2
    np.testing.assert_allclose(Z.std(axis=0, ddof=1), 1.0, rtol=1e-5)
    Xs, ratio, n = pipeline.transform(X, scale="standard", pca=None)
    assert ratio is None and n is None
    np.testing.assert_allclose(Xs.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(Xs.std(axis=0), 1, rtol=1e-5)
    Xm = pipeline.transform(X, scale="minmax")[0]
    np.testing.assert_allclose([Xm.min(axis=0), Xm.max(axis=0)], [[0, 0, 0], [1, 1, 1]])


def test_clip_keeps_one_far_out_file_from_taking_a_cluster():
    # two groups of 50 and one file 200 sd out on the other axis: its z-score (~10 = sqrt(n - 1))
    # weighs as much as the groups' split, and 2-means spends a cluster on it
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 0.5, (50, 2)), rng.normal(0, 0.5, (50, 2)) + [2, 0], [[1.0, 100.0]]])
    z = pipeline.transform(X)[0]
    assert z[:, 1].max() > 9.9
    clipped = pipeline.transform(X, clip=3.0)[0]
    assert clipped[:, 1].max() == pytest.approx(3.0)                    # set to the clip
    np.testing.assert_allclose(clipped[:100], z[:100], atol=1e-6)       # the others keep their z-scores
    assert np.bincount(KMeans(2, n_init=10, random_state=0).fit_predict(z)).min() == 1
    lab = KMeans(2, n_init=10, random_state=0).fit_predict(clipped)
    assert adjusted_rand_score(np.repeat([0, 1], 50), lab[:100]) > 0.75


def test_n_components_for():
    ratio = np.array([0.5, 0.3, 0.15, 0.05])
    assert [pipeline.n_components_for(ratio, p) for p in (0.5, 0.51, 0.8, 0.95, 0.99, 2, 40)] == [1, 2, 2, 3, 4, 2, 4]


# --------------------------------------------------------------------------- from files

def test_views_shapes_and_order(project):
    cfg, paths = make_features(project, overrides={"views.sources": ["npy", "png"]})
    built = build(cfg, paths)
    names = [v.spec.name for v in built]
    assert names == ["mel.stats.npy", "mel.stats.png", "mel.image.npy", "mel.image.png", "mfcc.stats.npy",
                     "mfcc.stats.png", "mfcc.image.npy", "mfcc.image.png", "descriptors"]
    table = results.read_table(paths)
    assert len(table) == 24 and "short" not in set(table["stem"])  # only ok rows
    by = {v.spec.name: v for v in built}
    assert by["mel.stats.npy"].raw.shape == (24, 4 * N_MELS)
    assert by["mel.image.npy"].raw.shape == (24, N_MELS * 8)
    assert by["mel.image.npy"].X.shape == (24, 5)                # image PCA: 5 components
    assert by["mel.stats.npy"].X.shape == (24, 4 * N_MELS)       # stats: no PCA in this config
    assert by["descriptors"].raw.shape == (24, len(DESCRIPTORS))
    assert by["descriptors"].n_missing == 9                      # tempo NaN for i = 0, 3, 6 of each class
    assert not np.isnan(by["descriptors"].X).any()
    assert by["mel.image.png"].spec.type == "image (Images)" and by["descriptors"].spec.type == "descriptors"
    # rows in features.csv order: the first file's stats are its own mel's
    mel0 = np.load(paths.feature_file("mel", "low", "low_0", ".npy"))
    np.testing.assert_allclose(by["mel.stats.npy"].raw[0, :N_MELS], mel0.mean(axis=1), rtol=1e-5)


def test_image_view_is_trimmed_and_cmvn_for_mfcc(project):
    cfg, paths = make_features(project, overrides={"views.image.pca": None, "views.scale": "none"})
    by = {v.spec.name: v for v in build(cfg, paths)}
    mel = np.load(paths.feature_file("mel", "low", "low_0", ".npy"))
    region = images.active_frames(mel, top_db=20.0)
    assert region.start > 0 and region.stop < mel.shape[1]       # the silent edges are cut
    # mel images are dB re the file's loudest bin (default per_file for mel: peak)
    kept = mel[:, region]
    np.testing.assert_allclose(by["mel.image.npy"].raw[0], vectors.resample_frames(kept - kept.max(), 8).ravel(),
                               rtol=1e-5, atol=1e-4)
    # MFCC images are mean/variance normalised per row (default per_file for mfcc): zero mean per row
    mfcc_img = by["mfcc.image.npy"].raw[0].reshape(N_MFCC, 8)
    mfcc = np.load(paths.feature_file("mfcc", "low", "low_0", ".npy"))[:, region]
    expected = vectors.resample_frames((mfcc - mfcc.mean(1, keepdims=True)) / mfcc.std(1, keepdims=True), 8)
    np.testing.assert_allclose(mfcc_img, expected, rtol=1e-4, atol=1e-5)


def test_npy_and_png_views_agree_within_quantisation(project):
    cfg, paths = make_features(project, overrides={"views.sources": ["npy", "png"], "views.features": ["mel"],
                                                   "views.image.pca": None, "views.scale": "none",
                                                   "images.trim_db": None})
    by = {v.spec.name: v for v in build(cfg, paths)}
    vmin, vmax = cfg.features.png_ranges["mel"]
    half_step = (vmax - vmin) / 255 / 2
    for kind in ("stats", "image"):
        a, b = by[f"mel.{kind}.npy"].raw, by[f"mel.{kind}.png"].raw
        bound = half_step
        if kind == "stats":                                      # means and stds move by at most half a step
            a, b = a[:, :2 * N_MELS], b[:, :2 * N_MELS]
        else:                                                    # dB re peak: the value and the peak move by half a step
            bound = 2 * half_step
        diff = np.abs(a - b).max()
        assert 0 < diff <= bound + 1e-4


def test_cache_skips_reading_and_recomputes_on_change(project, monkeypatch):
    cfg, paths = make_features(project)
    first = build(cfg, paths)
    files = sorted((paths.features / "views").glob("*.npz"))
    assert [f.name for f in files] == sorted(f"{v.spec.name}.npz" for v in first)
    mtimes = [f.stat().st_mtime_ns for f in files]

    def no_reading(*args, **kwargs):
        raise AssertionError("features were read again")

    monkeypatch.setattr(vectors, "_read_array", no_reading)
    again = build(cfg, paths)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.X, b.X)
    assert [f.stat().st_mtime_ns for f in files] == mtimes      # nothing rewritten
    # a transform change: recomputed from the cached raw matrix, still without reading features
    cfg2 = load_config(project, "tiny", overrides={**_overrides(cfg), "views.image.pca": 3})
    changed = {v.spec.name: v for v in build(cfg2, paths)}
    assert changed["mel.image.npy"].X.shape == (24, 3)
    # a view parameter change needs the features again
    cfg3 = load_config(project, "tiny", overrides={**_overrides(cfg), "views.image.n_frames": 4})
    with pytest.raises(AssertionError, match="read again"):
        build(cfg3, paths)


def _overrides(cfg) -> dict:
    return {"features.kinds": cfg.features.kinds, "features.n_mels": N_MELS, "features.n_mfcc": N_MFCC,
            "views.features": cfg.views.features, "views.sources": cfg.views.sources,
            "views.image.pca": cfg.views.image.pca, "views.image.umap": cfg.views.image.umap,
            "views.stats.pca": cfg.views.stats.pca}


def test_umap_on_a_sample_places_the_other_rows_in_their_groups():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, size=(3, 50))
    truth = np.repeat(np.arange(3), 40)
    X = centres[truth] + rng.normal(0, 1, size=(120, 50))
    for max_samples in (None, 60):                               # all rows fitted; half fitted, half transformed
        Z, ratio, n = pipeline.transform(X, pca=10.0, umap=2, umap_neighbors=15, umap_max_samples=max_samples)
        assert Z.shape == (120, 2) and n == 10 and ratio is not None and np.isfinite(Z).all()
        found = KMeans(3, n_init=10, random_state=0).fit_predict(Z)
        assert adjusted_rand_score(truth, found) == 1.0
    few = pipeline.transform(X[:pipeline.UMAP_MIN_SAMPLES - 1], pca=4.0, umap=2)[0]
    assert few.shape == (pipeline.UMAP_MIN_SAMPLES - 1, 4)          # too few samples: PCA only


def test_umap_is_set_per_view_kind(project):
    cfg, paths = make_features(project, overrides={"views.image.umap": 3, "views.umap_neighbors": 5})
    by = {v.spec.name: v for v in build(cfg, paths)}
    assert by["mel.image.npy"].X.shape == (24, 3) and by["mel.image.npy"].n_components == 5
    assert by["mel.stats.npy"].X.shape == (24, 4 * N_MELS)       # stats.umap is null


def test_missing_features_csv_says_run_extract(project):
    cfg = load_config(project, "none")
    with pytest.raises(StageInputError, match="audioclust extract"):
        build(cfg, ProjectPaths(project, "none"))


def test_unreadable_array_becomes_an_imputed_row(project):
    cfg, paths = make_features(project, overrides={"views.features": ["mel"], "views.kinds": ["stats"]})
    paths.feature_file("mel", "mid", "mid_3", ".npy").write_bytes(b"not an array")
    (view,) = build(cfg, paths)
    assert view.n_missing == 1 and np.isfinite(view.X).all()
