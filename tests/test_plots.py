"""Figures: one style, PNG at 300 dpi + PDF written atomically, content of each figure."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from PIL import Image

from audioclust.report import figures as plots


def test_save_figure_writes_png_300_dpi_and_pdf_and_closes(tmp_path):
    fig, axes = plots.new_figure(width=2.0, height=1.5)
    axes[0, 0].plot([0, 1], [0, 1])
    paths = plots.save_figure(fig, tmp_path / "sub" / "line")
    assert paths == [tmp_path / "sub" / "line.png", tmp_path / "sub" / "line.pdf"]
    with Image.open(paths[0]) as img:
        assert round(img.info["dpi"][0]) == 300
        assert 400 < img.size[0] < 700                          # about 2 inches at 300 dpi (tight bbox)
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    assert fig.axes == []                                         # closed: artists dropped
    assert not list((tmp_path / "sub").glob(".*tmp"))            # no temporary file left
    # the suffixes are appended to the whole name
    fig, _ = plots.new_figure()
    assert [p.name for p in plots.save_figure(fig, tmp_path / "k_selection_mel_image_png")] == [
        "k_selection_mel_image_png.png", "k_selection_mel_image_png.pdf"]


def test_style_is_applied_only_inside_the_context():
    before = matplotlib.rcParams["axes.spines.top"]
    fig, axes = plots.new_figure()
    assert axes[0, 0].spines["top"].get_visible() is False
    assert matplotlib.rcParams["axes.spines.top"] == before
    plots.close(fig)


def test_category_style_is_okabe_ito_then_changes_marker():
    assert plots.category_style(0) == {"color": "#E69F00", "marker": "o"}
    assert plots.category_style(8) == {"color": "#E69F00", "marker": "s"}
    assert len(set(map(str, (plots.category_style(i) for i in range(16))))) == 16


def test_matched_contingency_orders_clusters_by_class():
    table = plots.matched_contingency(["a", "a", "b", "b", "c", "c", "c"], [2, 2, 0, 0, 1, 1, 3])
    assert list(table.index) == ["a", "b", "c"]
    assert list(table.columns) == [2, 0, 1, 3]                   # matched to a, b, c; cluster 3 left over
    np.testing.assert_array_equal(np.diag(table.to_numpy()[:, :3]), [2, 2, 2])


def test_k_selection_marks_each_choice_and_the_consensus():
    table = pd.DataFrame({"k": [2, 3, 4], "inertia": [10.0, 4.0, 3.0], "silhouette": [0.3, 0.6, 0.4],
                          "gap": [0.1, 0.5, 0.55], "gap_s": [0.05, 0.05, 0.05]})
    fig = plots.k_selection(table, {"elbow": 3, "silhouette": 3, "gap": 3}, consensus=3, title="x")
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == ["Inertia (elbow)", "Silhouette (max)", "Gap statistic"]
    star = [line for line in panels[1].lines if line.get_marker() == "*"][0]
    assert list(star.get_xdata()) == [3] and list(star.get_ydata()) == [0.6]
    assert any(list(line.get_xdata()) == [3, 3] and line.get_linestyle() == "--" for line in panels[0].lines)
    plots.close(fig)


def test_scatter_has_cluster_and_label_panels_and_noise_in_grey():
    Y = np.arange(12, dtype=float).reshape(6, 2)
    fig = plots.scatter_2d(Y, np.array([0, 0, 1, 1, -1, -1]), np.array(["a", "a", "b", "b", "a", "b"]), "PCA")
    left, right = fig.axes[0], fig.axes[1]
    assert left.get_title() == "Clusters" and right.get_title() == "Labels"
    assert left.get_xlabel() == "PC 1" and right.get_ylabel() == "PC 2"
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["0 (a)", "1 (b)", "noise"]
    assert len(left.collections) == 3 and len(right.collections) == 2
    assert matplotlib.colors.to_hex(left.collections[2].get_facecolor()[0]) == "#999999"
    assert len(plots.scatter_2d(Y, np.zeros(6)).axes) == 1    # no labels: one panel
    plots.close(fig)


def test_dendrogram_cut_between_the_merges_that_give_k():
    X = np.array([[0.0], [1.0], [10.0], [11.0], [30.0]])
    fig = plots.dendrogram(X, linkage="single", n_clusters=3)
    # single-linkage merge heights 1, 1, 9, 19: three clusters between 1 and 9 -> cut at 5
    cut = [line for line in fig.axes[0].lines if line.get_linestyle() == "--"][0]
    assert cut.get_ydata()[0] == 5.0
    plots.close(fig)


def test_membership_histogram_counts_every_sample(tmp_path):
    u = np.array([[0.9, 0.5, 0.2, 0.34], [0.1, 0.5, 0.8, 0.66]])
    fig = plots.membership_histogram(u)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert sum(heights) == 4
    paths = plots.save_figure(fig, tmp_path / "fcm")
    assert all(p.stat().st_size > 0 for p in paths)


def test_explained_variance_is_cumulative():
    fig = plots.explained_variance({"v": np.array([0.5, 0.3, 0.2])}, {"v": 2})
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(line.get_ydata(), [0.5, 0.8, 1.0])
    marker = fig.axes[0].lines[1]
    assert list(marker.get_xdata()) == [2] and np.allclose(marker.get_ydata(), [0.8])
    plots.close(fig)


def test_contingency_heatmap_writes_counts():
    fig = plots.contingency_heatmap(["a", "a", "b"], [1, 1, 0])
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["0", "0", "1", "2"]
    plots.close(fig)


def test_autoencoder_figures_plot_the_numbers_they_are_given():
    metrics = pd.DataFrame({"epoch": [0, 0, 1, 1], "train_loss": [np.nan, 0.5, np.nan, 0.25],
                            "val_loss": [0.6, np.nan, 0.3, np.nan]})
    fig = plots.loss_curves(metrics)
    lines = {line.get_label(): line.get_xydata().tolist() for line in fig.axes[0].get_lines()}
    assert lines == {"training": [[1, 0.5], [2, 0.25]], "validation": [[1, 0.6], [2, 0.3]]}
    plots.close(fig)
    results = pd.DataFrame({"feature": ["mel"] * 4, "stage": ["ae_kmeans", "dcec"] * 2, "latent_dim": [10, 10, 2, 2],
                            "recon_mse": [0.1, 0.2, 0.3, 0.4], "nmi": [0.5, 0.6, 0.7, 0.8]})
    fig = plots.latent_size_curve(results, names={"ae_kmeans": "K-Means"})
    assert len(fig.axes) == 2
    assert fig.axes[0].get_lines()[0].get_xydata().tolist() == [[2, 0.3], [10, 0.1]]   # sorted by latent size
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["Mel-spectrogram, K-Means",
                                                                      "Mel-spectrogram, DCEC"]
    plots.close(fig)


def test_dcec_history_crosses_the_updates_that_emptied_a_cluster():
    history = pd.DataFrame({"iteration": [0, 10, 20], "delta_label": [0.0, 0.05, 0.02], "n_clusters": [3, 3, 2],
                            "loss": [np.nan, 0.2, 0.1], "recon": [np.nan, 0.1, 0.05], "kl": [np.nan, 1.0, 0.5]})
    fig = plots.dcec_history(history, tol=0.01)
    first = fig.axes[0]
    crossed = [line for line in first.lines if line.get_label() == "a cluster emptied"][0]
    assert crossed.get_xydata().tolist() == [[20, 2.0]]                  # percent of labels changed
    assert fig.axes[2].lines[0].get_xydata()[1:].tolist() == [[10, 1.0], [20, 0.5]]
    assert first.lines[1].get_ydata()[0] == 1.0                              # the dashed threshold at tol: 1 %
    plots.close(fig)
    # one file of 40 (2.5 %) is above tol: the line is drawn at the floor, and its legend says so
    fig = plots.dcec_history(history, tol=0.01, tol_files=1, n_samples=40)
    assert fig.axes[0].lines[1].get_ydata()[0] == 2.5
    assert [t.get_text() for t in fig.legends[0].get_texts()][0] == "stop threshold (at most 1 file: 2.5 %)"
    plots.close(fig)


def test_reconstruction_grid_one_row_per_version_on_the_first_rows_range():
    inputs = np.stack([np.full((1, 4, 2), v, dtype=np.float32) for v in (0.0, 1.0)])     # (2, 1, T=4, F=2)
    fig = plots.reconstruction_grid({"input": inputs, "autoencoder": inputs[:, 0] * 0.5}, ["a", "b"])
    assert len(fig.axes) == 4 + 1 and [ax.get_title() for ax in fig.axes[:2]] == ["a", "b"]    # + the colour bar
    image = fig.axes[3].get_images()[0]
    assert image.get_array().shape == (2, 4)                             # drawn frequency up, time across
    assert image.get_clim() == (0.0, 1.0)
    plots.close(fig)
