"""Explore helpers: result choice, cluster make-up, distance ranking, thumbnails, mosaics, audio excerpts."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audioclust import results as ac_results
from audioclust.config import load_config
from audioclust.core.errors import StageInputError
from audioclust.core.paths import ProjectPaths
from audioclust.core.storage import write_bytes, write_csv, write_npy
from audioclust.dsp.descriptors import DESCRIPTORS
from audioclust.dsp.images import png_bytes
from audioclust.report import explore
from audioclust.stages import report as report_stage

SR = 22050
FILES = [("a", "a_0"), ("a", "a_1"), ("b", "b_0"), ("b", "b_1"), ("", "u_0")]


def _project(root: Path, labels_order: list[int] | None = None):
    """A fake stage 02–04 output: 5 WAVs, mel PNGs, features.csv (+ one error row), results.csv, labels.csv."""
    cfg = load_config(root, "fake", overrides=["parallel.n_jobs=1", "report.audio_seconds=0.5"])
    paths = ProjectPaths(root, "fake")
    rows = []
    for i, (label, stem) in enumerate(FILES):
        folder = label or "unlabelled"
        wav = paths.wav / folder / f"{stem}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(0.8 * SR)) / SR
        sf.write(wav, (0.3 * np.sin(2 * np.pi * (300 + 200 * i) * t)).astype(np.float32), SR, subtype="PCM_16")
        grey = np.full((16, 10), 40 * i, dtype=np.uint8)
        write_bytes(paths.feature_file("mel", folder, stem, ".png"), png_bytes(grey))
        rows.append({"stem": stem, "label": label, "path": paths.rel(wav), "status": "ok", "reason": "",
                     **{d: float(i + 1) * (j + 1) + (i % 2) * j ** 2 for j, d in enumerate(DESCRIPTORS)}})
    rows.append({"stem": "bad", "label": "a", "path": "", "status": "error", "reason": "unreadable",
                 **{d: math.nan for d in DESCRIPTORS}})
    write_csv(paths.features_csv, pd.DataFrame(rows))
    results = pd.DataFrame([
        {"id": "mel.x.kmeans", "feature": "mel", "kind": "stats", "source": "npy", "type": "stats (Arrays)",
         "algorithm": "kmeans", "status": "ok", "selected": True, "silhouette": 0.30, "davies_bouldin": 0.9,
         "n_clusters": 2, "nmi": 0.5},
        {"id": "descriptors.kmeans", "feature": "descriptors", "kind": "descriptors", "source": "csv",
         "type": "descriptors", "algorithm": "kmeans", "status": "ok", "selected": True, "silhouette": 0.50,
         "davies_bouldin": 1.2, "n_clusters": 2, "nmi": 0.1},
        {"id": "mel.x.fcm", "feature": "mel", "kind": "stats", "source": "npy", "type": "stats (Arrays)",
         "algorithm": "fcm", "status": "ok", "selected": False, "silhouette": 0.90, "davies_bouldin": 0.1,
         "n_clusters": 3, "nmi": 0.9},
        {"id": "mel.x.spectral", "feature": "mel", "kind": "stats", "source": "npy", "type": "stats (Arrays)",
         "algorithm": "spectral", "status": "error", "selected": False, "silhouette": math.nan,
         "davies_bouldin": math.nan, "n_clusters": math.nan, "nmi": math.nan},
    ])
    out = paths.results / "clustering"
    write_csv(out / "results.csv", results)
    order = labels_order or list(range(len(FILES)))
    labels = pd.DataFrame({"stem": [FILES[i][1] for i in order], "label": [FILES[i][0] for i in order],
                           "mel.x.kmeans": [0, 0, 1, 1, -1], "descriptors.kmeans": [0, 0, 0, 1, 1],
                           "mel.x.fcm": [0, 1, 2, 2, 1]})
    write_csv(out / "labels.csv", labels)
    return cfg, paths


# --------------------------------------------------------------------------- choosing and loading

def test_label_free_choice_is_the_best_selected_row_by_the_criterion(tmp_path):
    cfg, paths = _project(tmp_path)
    result = ac_results.load_result(paths)
    # mel.x.fcm has the best silhouette and NMI but was not selected: it must not win
    assert result.id == "descriptors.kmeans"
    assert "best silhouette (0.500) among 2 selected rows" in result.how
    assert ac_results.load_result(paths, criterion="davies_bouldin").id == "mel.x.kmeans"  # lower is better
    assert result.files["stem"].tolist() == [s for _, s in FILES]  # the error row of features.csv is not a file
    assert result.clusters.tolist() == [0, 0, 0, 1, 1]
    assert result.files["path"].iloc[2] == "datasets/fake_wav/b/b_0.wav"


def test_label_free_choice_is_the_row_stage_04_picked(tmp_path):
    cfg, paths = _project(tmp_path)
    out = paths.results / "clustering"
    table = pd.read_csv(out / "results.csv")
    table["structure"] = [2, 1, None, None]
    table["pick"] = [False, True, False, False]
    table.loc[0, "silhouette"] = 0.99         # the criterion would choose mel.x.kmeans: the pick comes first
    write_csv(out / "results.csv", table)
    result = ac_results.load_result(paths)
    assert result.id == "descriptors.kmeans"
    assert result.how == "label-free pick, structure 1 of 2; the others are alternatives, see structures.csv"


def test_given_unknown_and_missing_results_are_explained(tmp_path):
    cfg, paths = _project(tmp_path)
    given = ac_results.load_result(paths, "mel.x.fcm")
    assert (given.id, given.how) == ("mel.x.fcm", "given")
    assert given.cluster_ids == [0, 1, 2]
    with pytest.raises(StageInputError, match="mel.x.kmeans"):
        ac_results.load_result(paths, "mel.x.gmm")
    with pytest.raises(StageInputError, match="audioclust autoencoder"):
        ac_results.load_result(paths, source="autoencoder")


def test_labels_of_other_files_ask_for_a_rerun(tmp_path):
    cfg, paths = _project(tmp_path, labels_order=[1, 0, 2, 3, 4])
    with pytest.raises(StageInputError, match="re-run"):
        ac_results.load_result(paths)


def test_result_matrix_rebuilds_the_view_and_reads_embeddings(tmp_path):
    cfg, paths = _project(tmp_path)
    result = ac_results.load_result(paths, "descriptors.kmeans")
    X = report_stage.result_matrix(cfg, paths, result)
    raw = pd.read_csv(paths.features_csv).iloc[:5][list(DESCRIPTORS)].to_numpy(dtype=np.float64)
    expected = (raw - raw.mean(axis=0)) / raw.std(axis=0)  # views.scale standard, no PCA for descriptors
    np.testing.assert_allclose(X, expected, atol=1e-5)

    ae = paths.results / "autoencoder"
    write_csv(ae / "results.csv", pd.DataFrame([{"id": "mel.dcec_z2.npy.dcec", "feature": "mel", "view": "mel.dcec_z2.npy",
                                                 "stage": "dcec", "status": "ok", "selected": True, "silhouette": 0.4}]))
    write_csv(ae / "labels.csv", pd.DataFrame({"stem": [s for _, s in FILES], "label": [lab for lab, _ in FILES],
                                               "mel.dcec_z2.npy.dcec": [1, 1, 0, 0, 0]}))
    with pytest.raises(StageInputError, match="no embedding"):
        report_stage.result_matrix(cfg, paths, ac_results.load_result(paths, source="autoencoder"))
    Z = np.arange(10, dtype=np.float32).reshape(5, 2)
    write_npy(ae / "embeddings" / "mel.dcec_z2.npy" / "dcec.npy", Z)
    np.testing.assert_array_equal(report_stage.result_matrix(cfg, paths, ac_results.load_result(paths, source="autoencoder")), Z)
    write_npy(ae / "embeddings" / "mel.dcec_z2.npy" / "dcec.npy", Z[:4])
    with pytest.raises(StageInputError, match="one row per file"):
        report_stage.result_matrix(cfg, paths, ac_results.load_result(paths, source="autoencoder"))


def test_autoencoder_rows_are_chosen_by_the_criterion_stage_05_used(tmp_path):
    cfg, paths = _project(tmp_path)
    ae = paths.results / "autoencoder"
    ids = ["mel.dcec_z2.npy.ae_kmeans", "mel.dcec_z2.npy.dcec"]
    write_csv(ae / "results.csv", pd.DataFrame({"id": ids, "feature": "mel", "view": "mel.dcec_z2.npy",
                                                "stage": ["ae_kmeans", "dcec"], "status": "ok", "selected": True,
                                                "silhouette": [0.2, 0.6]}))  # no stability column: DCEC can't re-fit
    write_csv(ae / "labels.csv", pd.DataFrame({"stem": [s for _, s in FILES], "label": [lab for lab, _ in FILES],
                                               ids[0]: [0, 0, 1, 1, 1], ids[1]: [1, 1, 0, 0, 0]}))
    result = ac_results.load_result(paths, source="autoencoder", criterion="stability", tune_criterion="silhouette")
    assert result.id == ids[1] and "best silhouette (0.600)" in result.how


# --------------------------------------------------------------------------- what clusters hold

def test_cluster_table_counts_labels_and_puts_noise_last(tmp_path):
    cfg, paths = _project(tmp_path)
    table = explore.cluster_table(ac_results.load_result(paths, "mel.x.kmeans"))  # clusters [0, 0, 1, 1, -1]
    assert table["cluster"].tolist() == [0, 1, -1]
    assert table["name"].tolist() == ["cluster 0", "cluster 1", "noise"]
    assert table["size"].tolist() == [2, 2, 1]
    assert table["share"].tolist() == [0.4, 0.4, 0.2]
    assert table["majority"].tolist() == ["a", "b", "unlabelled"]
    table = explore.cluster_table(ac_results.load_result(paths, "mel.x.fcm"))  # clusters [0, 1, 2, 2, 1]
    row = table.set_index("cluster").loc[1]
    assert (row["size"], row["n_labels"], row["majority"], row["majority_share"]) == (2, 2, "a", 0.5)
    assert row["makeup"] == "a 1 · unlabelled 1"


def test_members_by_distance_by_hand():
    X = np.array([[0, 0], [2, 0], [0, 2], [10, 10], [11, 10]], dtype=np.float32)
    labels = np.array([0, 0, 0, 1, 1])
    ranked = explore.members_by_distance(X, labels, 0)
    # centre (2/3, 2/3): distances sqrt(8)/3 and twice sqrt(20)/3 (tie: lower position first)
    assert ranked["position"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(ranked["distance"], [math.sqrt(8) / 3, math.sqrt(20) / 3, math.sqrt(20) / 3])
    closest, farthest = explore.closest_and_farthest(ranked, 2)
    assert closest["position"].tolist() == [0, 1] and farthest["position"].tolist() == [2]
    closest, farthest = explore.closest_and_farthest(ranked, 1)
    assert closest["position"].tolist() == [0] and farthest["position"].tolist() == [2]
    assert explore.members_by_distance(X, labels, 1)["distance"].tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="cluster 7"):
        explore.members_by_distance(X, labels, 7)


# --------------------------------------------------------------------------- pictures

def test_thumbnail_maps_grey_levels_through_the_colour_map():
    grey = np.array([[255, 255, 255, 255], [0, 0, 0, 0]], dtype=np.uint8)  # row 0 = highest bin
    thumb = explore.thumbnail(grey, size=(4, 2), cmap="viridis")
    assert thumb.mode == "P" and thumb.size == (4, 2)
    rgb = np.asarray(thumb.convert("RGB"))
    viridis = matplotlib.colormaps["viridis"]
    np.testing.assert_array_equal(rgb[0, 0], np.rint(np.array(viridis(1.0)[:3]) * 255))
    np.testing.assert_array_equal(rgb[1, 3], np.rint(np.array(viridis(0.0)[:3]) * 255))
    assert explore.thumbnail(grey, size=(32, 8)).size == (32, 8)


def test_mosaic_places_tiles_row_by_row():
    from PIL import Image
    red, green, blue = (Image.new("RGB", (4, 2), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255)))
    sheet = explore.mosaic([red, green, blue, None], columns=2, pad=1, background=(255, 255, 255))
    assert sheet.size == (2 * (4 + 1) + 1, 2 * (2 + 1) + 1)
    px = sheet.load()
    assert px[0, 0] == (255, 255, 255)  # padding
    assert px[1, 1] == (255, 0, 0) and px[4, 2] == (255, 0, 0)
    assert px[6, 1] == (0, 255, 0)
    assert px[1, 4] == (0, 0, 255)
    assert px[6, 4] == (explore.MISSING_GREY,) * 3  # None: a grey tile
    with pytest.raises(ValueError):
        explore.mosaic([None])


def test_cluster_mosaic_in_distance_order_with_a_missing_png(tmp_path):
    cfg, paths = _project(tmp_path)
    result = ac_results.load_result(paths, "mel.x.kmeans")
    paths.feature_file("mel", "a", "a_1", ".png").unlink()
    sheet = explore.cluster_mosaic(paths, result, 0, order=[1, 0], size=(8, 4), columns=4)
    assert sheet.size == (2 * (8 + 2) + 2, 4 + 4)
    assert sheet.getpixel((2, 2)) == (explore.MISSING_GREY,) * 3  # a_1 first: missing
    viridis0 = tuple(int(v) for v in np.rint(np.array(matplotlib.colormaps["viridis"](0.0)[:3]) * 255))
    assert sheet.getpixel((12, 2)) == viridis0  # a_0: grey level 0


# --------------------------------------------------------------------------- sound

def test_audio_excerpt_is_mono_16k_and_cut(tmp_path):
    t = np.arange(2 * SR) / SR
    stereo = np.column_stack([0.5 * np.sin(2 * np.pi * 1000 * t), np.zeros_like(t)]).astype(np.float32)
    path = tmp_path / "s.wav"
    sf.write(path, stereo, SR, subtype="FLOAT")
    y = explore.audio_excerpt(path, seconds=0.5, sr=16000)
    assert y.dtype == np.float32 and y.shape == (8000,)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    assert abs(np.argmax(spectrum) * 16000 / y.size - 1000) <= 2
    assert abs(np.max(np.abs(y[1000:-1000])) - 0.25) < 0.01  # mean of a 0.5 sine and silence
    short = tmp_path / "short.wav"
    sf.write(short, stereo[: int(0.3 * SR)], SR)
    assert explore.audio_excerpt(short, seconds=5.0, sr=16000).shape == (4800,)


def test_encode_audio_ogg_and_wav_round_trip():
    t = np.arange(16000) / 16000
    y = (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    ogg = explore.encode_audio(y, 16000, "ogg")
    info = sf.info(io.BytesIO(ogg))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("OGG", "VORBIS", 16000, 1)
    back, _ = sf.read(io.BytesIO(ogg), dtype="float32")
    assert abs(back.size - y.size) <= 1
    n = min(back.size, y.size)
    assert np.corrcoef(back[:n], y[:n])[0, 1] > 0.99
    assert len(ogg) < 16000  # far below 16-bit PCM (32 kB per second)
    wav = explore.encode_audio(y, 16000, "wav")
    back, sr = sf.read(io.BytesIO(wav), dtype="float32")
    assert sr == 16000 and sf.info(io.BytesIO(wav)).subtype == "PCM_16"
    np.testing.assert_allclose(back, y, atol=1 / 32768 + 1e-7)


# --------------------------------------------------------------------------- notebook HTML

def test_cluster_html_embeds_pictures_and_players(tmp_path):
    cfg, paths = _project(tmp_path)
    result = ac_results.load_result(paths, "mel.x.fcm")  # clusters [0, 1, 2, 2, 1]
    X = np.array([[0.0], [1.0], [5.0], [9.0], [3.0]], dtype=np.float32)
    text = explore.cluster_html(cfg.report, paths, result, X, 1, n=1)
    assert "Cluster 1 · 2 files (40%)" in text
    assert text.count("data:audio/ogg;base64,") == 2 and text.count("data:image/webp;base64,") == 2
    # centre 2: both members at distance 1, a_1 (position 1) first as the closest
    assert text.index("a_1") < text.index("u_0")
    assert "closest to the centre (1)" in text and "farthest from the centre (1)" in text
    assert text.count("distance 1.00") == 2
    assert type(explore.show_cluster(cfg.report, paths, result, X, 1)).__name__ == "HTML"
