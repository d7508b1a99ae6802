"""Every figure kind, drawn on small synthetic data, fits a page and is readable: at most 7 in wide,
PNG at 300 dpi, titled, labelled axes, no text below 7 pt, and no legend or text over the data or
over another label."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import Collection, PathCollection, QuadMesh
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from PIL import Image

from audioclust.report import figures as plots
from audioclust.report import names

RNG = np.random.default_rng(0)
FEATURES = SimpleNamespace(kinds=["spectrogram", "mel", "chroma", "mfcc", "mfcc_no_c0"], n_fft=256, hop_length=256,
                           n_mels=32, fmin=0.0, fmax=None)
AUDIO = SimpleNamespace(sample_rate=16000, cutoff=None)


def _blobs(n_per: int = 15):
    centres = np.array([[0, 0], [6, 0], [0, 6], [6, 6]], dtype=float)
    Y = np.concatenate([c + RNG.normal(0, 0.6, (n_per, 2)) for c in centres])
    labels = np.repeat(["bell", "drum", "flute", "organ"], n_per)
    return Y, labels


def _k_table():
    k = np.arange(2, 9)
    return pd.DataFrame({"k": k, "inertia": 1e4 / k, "silhouette": np.where(k == 4, 0.6, 0.3),
                         "davies_bouldin": np.where(k == 4, 0.5, 1.2), "calinski_harabasz": 100.0 + 10 * (k == 4),
                         "gap": 0.1 * k, "gap_s": np.full(k.size, 0.02)})


def _history():
    return pd.DataFrame({"iteration": [0, 4, 8, 12], "delta_label": [0.0, 0.2, 0.05, 0.001],
                         "n_clusters": [4, 4, 3, 4], "loss": [np.nan, 0.3, 0.2, 0.1],
                         "recon": [np.nan, 0.03, 0.02, 0.02], "kl": [np.nan, 0.2, 0.1, 0.05]})


def _features():
    frames = 40
    arrays = {}
    for name in ("bell", "drum"):
        arrays[name] = {"spectrogram": RNG.normal(-40, 10, (129, frames)), "mel": RNG.normal(-40, 10, (32, frames)),
                        "chroma": RNG.uniform(0, 1, (12, frames)), "mfcc": RNG.normal(0, 50, (20, frames)),
                        "mfcc_no_c0": RNG.normal(0, 20, (19, frames))}
    return arrays


def _every_figure():
    Y, labels = _blobs()
    clusters = np.repeat([2, 0, 1, 3], 15)
    clusters[:3] = -1
    u = RNG.dirichlet(np.ones(4), size=60).T
    metrics = pd.DataFrame({"epoch": [0, 0, 1, 1, 2, 2], "train_loss": [np.nan, 0.5, np.nan, 0.2, np.nan, 0.05],
                            "val_loss": [0.6, np.nan, 0.3, np.nan, 0.1, np.nan]})
    ae = pd.DataFrame({"feature": ["mel"] * 4, "stage": ["ae_kmeans", "dcec"] * 2, "latent_dim": [2, 2, 8, 8],
                       "recon_mse": [0.04, 0.05, 0.02, 0.03], "nmi": [0.5, 0.5, 0.7, 0.7]})
    ratio = np.sort(RNG.uniform(size=30))[::-1]
    ratio /= ratio.sum()
    images = RNG.uniform(size=(4, 1, 16, 8)).astype(np.float32)
    title = names.result_name("mel.image.png.kmeans", 4)
    return {
        "explained_variance": lambda: plots.explained_variance(
            {"mel.stats.npy": ratio, "mel.stats.png": ratio, "mel.image.npy": ratio[::-1].copy() / 1.0},
            {"mel.stats.npy": 10, "mel.stats.png": 10, "mel.image.npy": 20}, title="Mel-spectrogram: PCA"),
        "k_selection": lambda: plots.k_selection(_k_table(), {"elbow": 4, "silhouette": 4, "davies_bouldin": 4,
                                                              "calinski_harabasz": 4, "gap": 8}, 4, title=title),
        "scatter_pca": lambda: plots.scatter_2d(Y, clusters, labels, "PCA", title=title),
        "scatter_tsne": lambda: plots.scatter_2d(Y, clusters, None, "t-SNE", title=title),
        "contingency": lambda: plots.contingency_heatmap(labels, clusters, title=title),
        "dendrogram": lambda: plots.dendrogram(Y, n_clusters=4, title=title),
        "fcm_memberships": lambda: plots.membership_histogram(u, title=title),
        "loss": lambda: plots.loss_curves(metrics, title="Mel-spectrogram, CAE with 4-d latent (arrays)"),
        "reconstructions": lambda: plots.reconstruction_grid({"input": images, "autoencoder": images * 0.9},
                                                             ["bell", "drum", "flute", "organ"], title="x",
                                                             feature="mel"),
        "dcec_history": lambda: plots.dcec_history(_history(), tol=0.01, title="x"),
        "dcec_history_one_update": lambda: plots.dcec_history(_history().iloc[:2], tol=0.01, title="x"),
        "latent_size": lambda: plots.latent_size_curve(ae, title="mel"),
        "feature_examples": lambda: plots.feature_examples(_features(), FEATURES, AUDIO),
    }


def test_every_figure_kind_is_drawn_here():
    assert {kind.split("_one_")[0] for kind in _every_figure()} == set(names.FIGURE_KINDS)


# --------------------------------------------------------------------------- layout checks

def _densify(points: np.ndarray, step: float = 2.0) -> np.ndarray:
    """Points every ``step`` pixels along a polyline (display coordinates): a straight line is data all along."""
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) < 2:
        return points
    out = [points[:1]]
    for a, b in zip(points[:-1], points[1:]):
        n = max(1, int(np.hypot(*(b - a)) / step))
        out.append(a + (b - a) * np.linspace(0, 1, n + 1)[1:, None])
    return np.concatenate(out)


def _data_points(fig) -> np.ndarray:
    """Display coordinates of everything drawn as data: lines, markers, scatter points, bar outlines
    (not images and meshes: a text on a heat-map cell is where it belongs)."""
    points = [np.empty((0, 2))]
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        for artist in ax.get_children():
            if not artist.get_visible():
                continue
            if isinstance(artist, Line2D):
                points.append(_densify(artist.get_transform().transform(artist.get_path().vertices)))
            elif isinstance(artist, PathCollection) and len(artist.get_offsets()):
                points.append(artist.get_offset_transform().transform(artist.get_offsets()))
            elif isinstance(artist, Collection) and not isinstance(artist, (PathCollection, QuadMesh)):
                for path in artist.get_paths():
                    points.append(_densify(artist.get_transform().transform(path.vertices)))
            elif isinstance(artist, Rectangle) and artist is not ax.patch:
                points.append(_densify(artist.get_transform().transform(artist.get_path().vertices)))
    return np.concatenate(points)


def _texts(fig) -> list:
    """Legends and texts (of the figure and of each axes), and the axes' titles and labels."""
    out = [leg for leg in fig.legends]
    out += [t for t in fig.texts if t.get_text() and t.get_visible()]
    for ax in fig.axes:
        if ax.get_legend() is not None:
            out.append(ax.get_legend())
        out += [t for t in (*ax.texts, ax.title, ax.xaxis.label, ax.yaxis.label) if t.get_text() and t.get_visible()]
    return out


def _overlap(a, b, slack: float = 1.0) -> bool:
    """Whether two boxes share more than ``slack`` pixels each way (a negative slack: come closer than that)."""
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > slack) and (min(a.y1, b.y1) - max(a.y0, b.y0) > slack)


@pytest.mark.parametrize("kind", [*names.FIGURE_KINDS, "dcec_history_one_update"])
def test_figure_fits_a_page_and_is_readable(kind, tmp_path):
    fig = _every_figure()[kind]()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()

    assert fig.get_figwidth() <= plots.PAGE_WIDTH
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    for ax in fig.axes:
        if not ax.axison:
            continue
        if ax.get_label() != "<colorbar>":
            assert ax.get_title() or suptitle, f"{kind}: an axes without title"
        for axis in (ax.xaxis, ax.yaxis):
            ticks = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            if ticks:
                assert axis.label.get_text().strip(), f"{kind}: ticks without an axis label"
    small = {t.get_text(): t.get_fontsize() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text() and t.get_fontsize() < plots.MIN_FONT_SIZE}
    assert not small, f"{kind}: text below {plots.MIN_FONT_SIZE} pt: {small}"

    # no legend or text covers data, nor another title, label or legend
    data = _data_points(fig)
    texts = _texts(fig)
    for artist in texts:
        box = artist.get_window_extent(renderer)
        inside = (data[:, 0] > box.x0) & (data[:, 0] < box.x1) & (data[:, 1] > box.y0) & (data[:, 1] < box.y1)
        assert not inside.any(), f"{kind}: {artist} covers {int(inside.sum())} data points"
    for ax in fig.axes:                               # tick labels side by side, not on top of each other
        for axis in (ax.xaxis, ax.yaxis):
            ticks = [t.get_window_extent(renderer) for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            assert not any(_overlap(a, b, slack=-2) for i, a in enumerate(ticks) for b in ticks[i + 1:]), \
                f"{kind}: tick labels touch"
    boxes = [(t, t.get_window_extent(renderer)) for t in texts]
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            assert not _overlap(box_a, box_b), f"{kind}: {a} overlaps {b}"
    # everything inside the figure: nothing clipped at the edge
    page = fig.bbox
    for artist, box in boxes:
        assert box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1 and box.y0 >= page.y0 - 1 and box.y1 <= page.y1 + 1, \
            f"{kind}: {artist} is cut at the figure's edge"

    png, pdf = plots.save_figure(fig, tmp_path / kind)
    with Image.open(png) as img:
        assert tuple(round(d) for d in img.info["dpi"]) == (300, 300)
        assert img.size[0] <= 7 * 300
    assert pdf.read_bytes()[:5] == b"%PDF-" and b"/FontFile2" in pdf.read_bytes()   # TrueType embedded


def test_the_overlap_check_sees_a_legend_on_the_data():
    """The checks above would catch the fault they look for: a legend drawn over the points."""
    fig, axes = plots.new_figure()
    axes[0, 0].plot(np.linspace(0, 1, 50), np.full(50, 0.5), label="a line through the middle")
    legend = axes[0, 0].legend(loc="center")
    fig.canvas.draw()
    box = legend.get_window_extent(fig.canvas.get_renderer())
    data = _data_points(fig)
    assert ((data[:, 0] > box.x0) & (data[:, 0] < box.x1) & (data[:, 1] > box.y0) & (data[:, 1] < box.y1)).any()
    plots.close(fig)


def test_new_figure_refuses_a_figure_wider_than_the_page():
    with pytest.raises(ValueError, match="7.0 in"):
        plots.new_figure(1, 3, width=9.0)


# --------------------------------------------------------------------------- what the figures say

def _facecolour(collection) -> str:
    colours = collection.get_facecolor()
    return "none" if len(colours) == 0 or colours[0][3] == 0 else to_hex(colours[0])


def test_scatter_gives_a_matched_cluster_its_labels_colour_and_others_hollow_grey():
    Y = RNG.normal(size=(9, 2))
    labels = np.array(["drum", "drum", "drum", "bell", "bell", "bell", "drum", "bell", ""])
    clusters = np.array([5, 5, 5, 0, 0, 7, 9, -1, 0])
    fig = plots.scatter_2d(Y, clusters, labels, "PCA")
    left, right = fig.axes[0], fig.axes[1]
    by_label = {c.get_label(): c for c in right.collections}
    by_cluster = {c.get_label(): c for c in left.collections}
    assert list(by_label) == ["unlabelled", "bell", "drum"]            # natural order, unlabelled first
    assert to_hex(by_label["unlabelled"].get_facecolor()[0]) == plots.UNLABELLED_GREY.lower()
    # cluster 0 holds bell files, 5 drum files: each takes its label's colour and marker
    assert list(by_cluster) == ["0 (bell)", "5 (drum)", "7", "9", "noise"]
    assert _facecolour(by_cluster["0 (bell)"]) == _facecolour(by_label["bell"]) == plots.CATEGORICAL[0].lower()
    assert _facecolour(by_cluster["5 (drum)"]) == _facecolour(by_label["drum"]) == plots.CATEGORICAL[1].lower()
    # unmatched clusters: hollow markers in greys no label uses
    for name in ("7", "9"):
        assert _facecolour(by_cluster[name]) == "none"
        assert to_hex(by_cluster[name].get_edgecolor()[0]) in {g.lower() for g in plots.UNMATCHED_GREYS}
    assert to_hex(by_cluster["noise"].get_facecolor()[0]) == plots.NOISE_STYLE["color"].lower()
    # legends are beside the panels, not on them
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in (left, right):
        assert ax.get_legend().get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1
    plots.close(fig)
    # without labels the clusters take the palette in order
    fig = plots.scatter_2d(Y, clusters)
    assert [_facecolour(c) for c in fig.axes[0].collections[:2]] == [c.lower() for c in plots.CATEGORICAL[:2]]
    assert len(fig.axes) == 1 and fig.get_figwidth() == plots.COLUMN_WIDTH
    plots.close(fig)


def test_explained_variance_merges_identical_curves_and_keeps_the_others_apart():
    ratio = np.array([0.5, 0.3, 0.15, 0.05])
    fig = plots.explained_variance({"mel.stats.npy": ratio, "mel.stats.png": ratio + [0.004, -0.004, 0, 0],
                                    "mel.image.npy": ratio, "mel.image.png": np.array([0.4, 0.3, 0.2, 0.1])},
                                   {"mel.stats.npy": 2, "mel.stats.png": 2, "mel.image.npy": 3, "mel.image.png": 2})
    entries = [t.get_text() for t in fig.legends[0].get_texts()]
    # the stats curves coincide (and keep the same components): one entry naming both sources; the image
    # views keep different numbers of components, so they stay two entries even where their curves agree
    assert entries == ["Mel-spectrogram statistics (arrays, PNG)", "Mel-spectrogram image (arrays)",
                       "Mel-spectrogram image (PNG)"]
    curves = [line for line in fig.axes[0].lines if len(line.get_xdata()) > 1]
    assert len(curves) == 3
    assert len({(to_hex(line.get_color()), str(line.get_linestyle())) for line in curves}) == 3
    assert len({str(line.get_linestyle()) for line in curves}) == 3       # a dashed line over a solid one shows
    plots.close(fig)


def test_k_selection_is_a_grid_within_the_text_width_with_the_legend_in_the_spare_panel():
    fig = plots.k_selection(_k_table(), {"elbow": 4, "silhouette": 4}, consensus=4, title="x")
    assert fig.get_size_inches()[0] == plots.PAGE_WIDTH
    panels = [ax for ax in fig.axes if ax.axison]
    spare = [ax for ax in fig.axes if not ax.axison]
    assert len(panels) == 5 and len(spare) == 1
    assert [t.get_text() for t in spare[0].get_legend().get_texts()] == ["the criterion's choice",
                                                                        "consensus: k = 4"]
    rows = {round(ax.get_position().y0, 2) for ax in fig.axes}
    assert len(rows) == 2                                                 # 2 × 3, not 1 × 5
    plots.close(fig)


def test_dendrogram_and_memberships_explain_their_marks():
    X = RNG.normal(size=(60, 3))
    fig = plots.dendrogram(X, n_clusters=3)
    ax = fig.axes[0]
    leaves = [t.get_text() for t in ax.get_xticklabels()]
    assert any(t.startswith("(") for t in leaves) and any(t.isdigit() for t in leaves)
    assert "(n)" in ax.get_xlabel() and "one file" in ax.get_xlabel()
    plots.close(fig)
    fig = plots.membership_histogram(RNG.dirichlet(np.ones(4), size=30).T)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend, ax = fig.legends[0], fig.axes[0]
    assert legend.get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0  # below the axes
    assert "1/c = 0.25" in legend.get_texts()[0].get_text()
    plots.close(fig)


def test_feature_examples_put_time_in_seconds_and_frequency_in_hz():
    arrays = _features()
    fig = plots.feature_examples(arrays, FEATURES, AUDIO)
    grid = np.array(fig.axes[:10]).reshape(2, 5)
    spec, mel, chroma, mfcc, no_c0 = grid[0]
    assert spec.get_xlabel() == "time (s)"
    # 40 frames of 256 samples at 16 kHz: 0.64 s
    assert spec.collections[0].get_coordinates()[0, -1, 0] == pytest.approx(40 * 256 / 16000)
    assert "Hz" in spec.get_ylabel() and "Hz" in mel.get_ylabel()
    assert spec.collections[0].get_coordinates()[-1, 0, 1] == pytest.approx(8000)      # Nyquist
    assert [t.get_text() for t in chroma.get_yticklabels()][:2] == ["C", "D"]
    assert mfcc.get_ylabel() == "MFCC coefficient"
    assert no_c0.collections[0].get_coordinates()[0, 0, 1] == pytest.approx(0.5)      # c1 is the first row
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 5 and [b.get_xlabel() for b in bars[:2]] == ["level (dB)", "level (dB)"]
    assert grid[0, 0].get_ylabel().startswith("bell\n") and grid[1, 0].get_ylabel().startswith("drum\n")
    plots.close(fig)


def test_feature_examples_read_the_files_of_one_file_per_label(tmp_path):
    from audioclust.core.paths import ProjectPaths
    from audioclust.dsp.images import to_image

    paths = ProjectPaths(tmp_path, "demo")
    table = pd.DataFrame({"label": ["bell", "bell", "drum", np.nan], "stem": ["b0", "b1", "d0", "u0"],
                          "status": ["ok", "ok", "ok", "ok"]})
    features = SimpleNamespace(kinds=["mel"], png_ranges={"mel": [-80.0, 0.0]})
    for label, stem, value in (("bell", "b0", -10.0), ("bell", "b1", -20.0), ("drum", "d0", -30.0),
                               ("unlabelled", "u0", -40.0)):
        path = paths.feature_file("mel", label, stem, ".npy")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.full((4, 3), value, dtype=np.float32))
        Image.fromarray(to_image(np.full((4, 3), value), vmin=-80, vmax=0)).save(path.with_suffix(".png"))
    got = plots.example_arrays(paths, table, features, n=3)
    assert list(got) == ["bell", "drum", "u0"]                       # the first file of each label
    assert got["bell"]["mel"][0, 0] == -10.0 and got["u0"]["mel"][0, 0] == -40.0
    png = plots.example_arrays(paths, table, features, n=1, source="png")
    assert png["bell"]["mel"][0, 0] == pytest.approx(-10.0, abs=80 / 510)


def test_file_names_and_titles_are_words():
    assert names.figure_stem("scatter_tsne", "mel.image.png.kmeans") == "scatter_tsne_mel_image_png_kmeans"
    assert names.figure_stem("k_selection", "mfcc_no_c0.stats.npy") == "k_selection_mfcc_no_c0_stats_npy"
    assert names.figure_stem("latent_size") == "latent_size"
    assert names.result_name("mel.image.png.kmeans", 6.0) == "Mel-spectrogram image (PNG), K-Means, k = 6"
    assert names.row_name({"id": "mfcc.stats.npy.fcm", "n_clusters": 3}) == \
        "MFCC statistics (arrays), Fuzzy C-Means, k = 3"
    assert names.view_name("descriptors") == "Descriptors"
    assert names.view_name("aisfx.embedding.npy") == "aisfx embedding"
    assert names.view_name("aisfx.mlp_z32.npy") == "aisfx embedding, MLP autoencoder with 32-d latent"
    assert names.view_name("aisfx.mlp_pca_z10.npy") == "aisfx embedding, MLP autoencoder from PCA with 10-d latent"
    assert names.view_name("chroma.image.npy") == "Chroma image (arrays)"
    assert names.result_name("mel.dcec_z10.npy.dcec") == "Mel-spectrogram, CAE with 10-d latent (arrays), DCEC"
    assert names.algorithm_name("hdbscan") == "HDBSCAN"
    # kinds are read back from names, also of earlier versions; a name of another kind is its own group
    assert names.figure_kind("scatter_pca_mel_image_png_kmeans") == "scatter_pca"
    assert names.figure_subject("scatter_pca_mel_image_png_kmeans") == "mel_image_png_kmeans"
    assert names.figure_kind("scatter_pca.mel.image.png.kmeans") == "scatter_pca"
    assert names.figure_kind("loss_mel_dcec_z4_npy") == "loss" and names.figure_kind("latent_size") == "latent_size"
    assert names.figure_kind("my_notes") == "my_notes"
    with pytest.raises(ValueError, match="unknown figure kind"):
        names.figure_stem("scatter", "x")


def test_figure_files_finds_a_rows_figures_and_no_other_rows(tmp_path):
    for stem in ["scatter_pca_mel_image_png_kmeans", "scatter_pca_mel_image_png_minibatch_kmeans",
                 "contingency_mel_image_png_kmeans", "k_selection_mfcc_stats_npy", "dendrogram_mel_image_png"]:
        (tmp_path / f"{stem}.png").write_bytes(b"")
    found = [p.stem for p in names.figure_files(tmp_path, ids=["mel.image.png.kmeans"], kinds=["k_selection"])]
    assert found == ["contingency_mel_image_png_kmeans", "k_selection_mfcc_stats_npy",
                     "scatter_pca_mel_image_png_kmeans"]
    assert names.figure_files(tmp_path / "absent", ids=["x"]) == []


def test_style_sizes_are_for_a_page():
    assert plots.COLUMN_WIDTH == 3.5 and plots.PAGE_WIDTH == 7.0
    sizes = [v for k, v in plots.STYLE.items() if k.endswith("size") and k != "lines.markersize"]
    assert min(sizes) >= plots.MIN_FONT_SIZE == 7
    assert plots.STYLE["pdf.fonttype"] == 42                              # TrueType embedded in the PDF
