"""Make the figure gallery of the documentation from the demo: ``docs/gallery/*.png`` and ``docs/gallery.md``.

    python docs/gallery.py [--work DIR]      (or: make gallery)

Runs stages 01–05 on a small demo project (8 files of each of the 7 demo families, fast settings:
three features, four algorithms, two tiny autoencoders), draws notebook 03's feature figure, then
copies one figure of every kind (:data:`audioclust.report.names.FIGURE_KINDS`) into
``docs/gallery/`` at screen resolution (the pipeline writes 300 dpi PNG and PDF) and writes the
page, one caption per figure. ``--work`` keeps the project there, and a second run reuses its
stage-03 features; by default it lives in a temporary folder. About 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd
from PIL import Image

from audioclust.cli import run_stage
from audioclust.config import load_config
from audioclust.core.paths import ProjectPaths
from audioclust.report import figures as plots
from audioclust.report import names
from audioclust.stages.prepare import generate_demo

REPO = Path(__file__).resolve().parents[1]
GALLERY = REPO / "docs" / "gallery"
PAGE = REPO / "docs" / "gallery.md"

#: small and fast, yet every figure kind is drawn: agglomerative (dendrogram), fcm (memberships),
#: hdbscan (noise), k estimated (k selection), two latent sizes (latent size)
OVERRIDES = {
    "parallel.n_jobs": 2, "embeddings.models": [], "views.features": ["mel", "mfcc", "chroma", "descriptors"],
    "cluster.algorithms": ["kmeans", "fcm", "agglomerative", "hdbscan"], "cluster.k_max": 8, "cluster.tune": False,
    "autoencoder.features": ["mel"], "autoencoder.input_size": [32, 16], "autoencoder.latent_dims": [2, 4],
    "autoencoder.max_epochs": 4, "autoencoder.batch_size": 8, "autoencoder.update_interval": 4,
    "autoencoder.max_iter": 32, "autoencoder.tol": 0.0,     # DCEC runs every update: its history has 8 points
}

#: pixels per inch of the gallery's images: a 7 in figure is 1050 px, 7 pt text is 15 px high
SCREEN_DPI = 150

#: one line per figure kind: what it shows
CAPTIONS = {
    "feature_examples": "Stage 03's features of one file per label: time in seconds, spectrogram and "
                        "mel-spectrogram on a mel-scaled axis in Hz, chroma by pitch class, MFCC by coefficient, one "
                        "colour range and colour bar per column.",
    "explained_variance": "Cumulative variance explained by the PCA of each view of one feature; the marker is the "
                          "number of components the view keeps. Views whose curves coincide (here the arrays and the "
                          "PNG images) share one line and one legend entry.",
    "k_selection": "The label-free criteria against k on one view: each criterion's choice starred, their "
                   "consensus (the k used) dashed.",
    "scatter_pca": "The pick's view in two PCA dimensions by cluster (left) and by label (right). A cluster matched "
                   "to a label has that label's colour and marker; unmatched clusters are hollow grey, noise is "
                   "grey crosses.",
    "scatter_tsne": "The same in t-SNE, drawn for each feature's selected row.",
    "contingency": "Files per label (rows) and cluster (columns, in the order matched to the labels).",
    "dendrogram": "Agglomerative clustering of the selected view, its last 40 merges; the dashed line cuts the tree "
                  "into k clusters. A leaf is one file (its row in labels.csv) or, in brackets, the number of files "
                  "merged below it.",
    "fcm_memberships": "Fuzzy C-Means: how many files have each largest membership; the dashed line, 1/c, is a file "
                       "shared equally by all clusters.",
    "loss": "Stage 05: training and validation loss of the autoencoder per epoch.",
    "reconstructions": "Stage 05: one input per label, its reconstruction by the pre-trained autoencoder and after "
                       "DCEC, on one colour scale.",
    "dcec_history": "Stage 05: DCEC per target update: the share of labels changed (training stops below the "
                    "dashed threshold), the reconstruction loss and the clustering loss.",
    "latent_size": "Stage 05: reconstruction error and agreement with the labels against the latent size, per "
                   "feature and clustering.",
}

#: the file names the stages give each kind (``<view>``, ``<row>``, ``<model>``: ids in file-name form)
PATTERNS = {
    "explained_variance": "explained_variance_<feature>",
    "k_selection": "k_selection_<view>", "scatter_pca": "scatter_pca_<row>", "scatter_tsne": "scatter_tsne_<row>",
    "contingency": "contingency_<row>", "dendrogram": "dendrogram_<view>", "fcm_memberships": "fcm_memberships_<view>",
    "loss": "loss_<model>", "reconstructions": "reconstructions_<model>", "dcec_history": "dcec_history_<model>",
    "latent_size": "latent_size",
}


def build(work: Path) -> ProjectPaths:
    """The demo project through stages 01–05 in ``work``."""
    (work / "configs").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "configs" / "default.yaml", work / "configs" / "default.yaml")
    paths = ProjectPaths(work, "demo")
    cfg = load_config(work, "demo", overrides=OVERRIDES)
    generate_demo(paths.raw, n_per_class=8, seconds=1.0, seed=cfg.seed)
    for stage in ("metadata", "transform", "extract", "cluster", "autoencoder"):
        run_stage(stage, cfg, paths)
    return paths


def choose(paths: ProjectPaths) -> dict[str, Path]:
    """One PNG per figure kind: those of the pick (its row, its view) where the kind has them, else the first."""
    results = pd.read_csv(paths.results / "clustering" / "results.csv")
    pick = results.loc[results["pick"].astype(bool)].iloc[0]
    prefer = [pick["id"], pick["view"], pick["feature"]]
    chosen = {}
    for stage in ("clustering", "autoencoder"):
        folder = paths.results / stage / "figures"
        for kind in names.FIGURE_KINDS:
            if kind in chosen:
                continue
            files = names.figure_files(folder, kinds=[kind])
            preferred = [f for s in prefer for f in files if names.figure_subject(f.stem) == names.file_part(s)]
            if preferred or files:
                chosen[kind] = (preferred or files)[0]
    return chosen


def shrink(png: Path, target: Path) -> None:
    """``png`` (300 dpi) at :data:`SCREEN_DPI`, 256 colours: a few tens of kB each."""
    with Image.open(png) as img:
        dpi = img.info.get("dpi", (300, 300))[0]
        rgb = Image.new("RGB", img.size, "white")
        rgb.paste(img, mask=img.getchannel("A") if img.mode == "RGBA" else None)
    scale = SCREEN_DPI / dpi
    small = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS)
    small.quantize(256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)


def page(files: dict[str, str]) -> str:
    lines = ["# Figure gallery", "",
             "One figure of every kind the pipeline draws, made from the demo (8 files of each of its 7 sound "
             "families) by `docs/gallery.py` (`make gallery`). The stages save each as PNG at 300 dpi and as PDF "
             "with its fonts embedded, sized for a page: one column (3.5 in) or the text width (7 in), no text "
             "below 7 pt. Titles and labels are words; the file names are the kind followed by the view or row id "
             "in lower case with underscores (`scatter_tsne_mel_image_png_kmeans`). The images here are reduced "
             "to screen resolution.", ""]
    for kind, title in names.FIGURE_KINDS.items():
        if kind not in files:
            continue
        where = f"File: `{PATTERNS[kind]}.png|pdf`." if kind in PATTERNS else "Drawn by notebook 03."
        lines += [f"## {title}", "", f"![{title}](gallery/{files[kind]})", "", f"{CAPTIONS[kind]} {where}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="project folder to build (and keep) the demo in")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        paths = build(args.work or Path(tmp))
        cfg = load_config(paths.root, "demo", overrides=OVERRIDES)
        table = pd.read_csv(paths.features_csv, dtype={"stem": str, "label": str})
        examples = paths.results / "feature_examples"
        plots.save_figure(plots.feature_examples(plots.example_arrays(paths, table, cfg.features), cfg.features,
                                                 cfg.audio), examples)
        chosen = choose(paths)
        chosen["feature_examples"] = examples.with_suffix(".png")
        if GALLERY.is_dir():
            shutil.rmtree(GALLERY)
        GALLERY.mkdir(parents=True)
        files = {}
        for kind, png in chosen.items():
            files[kind] = f"{kind}.png"
            shrink(png, GALLERY / files[kind])
        PAGE.write_text(page(files), encoding="utf-8")
    missing = sorted(set(names.FIGURE_KINDS) - set(files))
    total = sum(p.stat().st_size for p in GALLERY.iterdir())
    print(f"{len(files)} figures, {total / 1e6:.2f} MB in {GALLERY.relative_to(REPO)}; {PAGE.relative_to(REPO)} written"
          + (f"; no figure of {', '.join(missing)}" if missing else ""))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
