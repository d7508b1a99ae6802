"""Words and file names for what the figures show: views, algorithms, results and figure kinds.

Tables keep their ids (``mel.image.png.kmeans``); a figure shows words ("Mel-spectrogram image
(PNG), K-Means, k = 6") and is saved under a file name without dots
(``scatter_tsne_mel_image_png_kmeans``): the figure's kind (:data:`FIGURE_KINDS`), then what it
shows (:func:`file_part` of a view or row id). The kind first keeps a folder listing, the report's
groups and the removal of stale figures simple: a name's kind is a known prefix
(:func:`figure_kind`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from audioclust.core.vocab import EMBEDDING_ARCHITECTURES

#: the features of stage 03 and the descriptors view; an embedding model is "<model> embedding"
FEATURE_NAMES: dict[str, str] = {
    "spectrogram": "Spectrogram", "mel": "Mel-spectrogram", "chroma": "Chroma", "mfcc": "MFCC",
    "mfcc_no_c0": "MFCC (no c0)", "descriptors": "Descriptors"}

#: view kinds (:mod:`audioclust.represent.views`)
KIND_NAMES: dict[str, str] = {"stats": "statistics", "image": "image", "embedding": "embedding"}

#: where a view's values were read from
SOURCE_NAMES: dict[str, str] = {"npy": "arrays", "png": "PNG"}

#: clusterers of stage 04 and the clusterings of stage 05 (``ae_kmeans``, ``ae_spectral``, ``dcec``)
ALGORITHM_NAMES: dict[str, str] = {
    "kmeans": "K-Means", "minibatch_kmeans": "Mini-batch K-Means", "fcm": "Fuzzy C-Means",
    "agglomerative": "Agglomerative", "spectral": "Spectral", "hdbscan": "HDBSCAN", "dbscan": "DBSCAN",
    "gmm": "Gaussian mixture", "birch": "BIRCH", "affinity_propagation": "Affinity propagation",
    "ae_kmeans": "K-Means", "ae_spectral": "Spectral", "dcec": "DCEC"}

#: autoencoders of stage 05 (``autoencoder.architecture``; ``autoencoder.embedding_architecture`` for an embedding)
ARCHITECTURE_NAMES: dict[str, str] = {"dcec": "CAE", "conv4": "4-block CAE", "vae": "VAE", "mlp": "MLP autoencoder",
                                     "mlp_pca": "MLP autoencoder from PCA"}

#: every figure kind, in the order the report shows them, and its name in words
FIGURE_KINDS: dict[str, str] = {
    "feature_examples": "Feature examples",
    "explained_variance": "Explained variance",
    "k_selection": "Choice of k",
    "scatter_pca": "PCA scatter",
    "scatter_tsne": "t-SNE scatter",
    "contingency": "Labels against clusters",
    "dendrogram": "Dendrogram",
    "fcm_memberships": "Fuzzy C-Means memberships",
    "loss": "Training loss",
    "reconstructions": "Inputs and reconstructions",
    "dcec_history": "DCEC clustering stage",
    "latent_size": "Latent size",
}

_AE_VIEW = re.compile(r"^(?P<architecture>.+)_z(?P<latent>\d+)$")


def feature_name(feature: str) -> str:
    """``mel`` -> "Mel-spectrogram"; an embedding model's name -> "<name> embedding"."""
    return FEATURE_NAMES.get(feature, f"{feature} embedding")


def view_name(view: str) -> str:
    """A view id in words.

    ``mel.image.png`` -> "Mel-spectrogram image (PNG)", ``mfcc.stats.npy`` -> "MFCC statistics
    (arrays)", ``aisfx.embedding.npy`` -> "aisfx embedding", ``descriptors`` -> "Descriptors",
    stage 05's ``mel.dcec_z10.npy`` -> "Mel-spectrogram, CAE with 10-d latent (arrays)", ``aisfx.mlp_z32.npy`` ->
    "aisfx embedding, MLP autoencoder with 32-d latent"."""
    parts = view.rsplit(".", 2)
    if len(parts) < 3:
        return feature_name(view)
    feature, kind, source = parts
    where = SOURCE_NAMES.get(source, source)
    if kind == "embedding":
        return f"{feature} embedding"
    ae = _AE_VIEW.match(kind)
    if ae is not None:
        model = ARCHITECTURE_NAMES.get(ae["architecture"], ae["architecture"])
        if ae["architecture"] in EMBEDDING_ARCHITECTURES:   # DEC's reads the model's embedding view, not stage 03's
            return f"{feature_name(feature)}, {model} with {ae['latent']}-d latent"
        return f"{FEATURE_NAMES.get(feature, feature)}, {model} with {ae['latent']}-d latent ({where})"
    return f"{FEATURE_NAMES.get(feature, feature)} {KIND_NAMES.get(kind, kind)} ({where})"


def views_name(views: Iterable[str]) -> str:
    """Several views in words: views that differ only in their source share one name,
    "MFCC statistics (arrays, PNG)"; others are joined by " = "."""
    views = list(views)
    parts = [v.rsplit(".", 2) for v in views]
    if len(views) > 1 and all(len(p) == 3 and p[:2] == parts[0][:2] for p in parts):
        base = view_name(views[0]).rsplit(" (", 1)[0]
        return f"{base} ({', '.join(SOURCE_NAMES.get(p[2], p[2]) for p in parts)})"
    return " = ".join(view_name(v) for v in views)


def algorithm_name(algorithm: str) -> str:
    """``fcm`` -> "Fuzzy C-Means" (an unknown name is kept)."""
    return ALGORITHM_NAMES.get(algorithm, algorithm)


def k_name(k: Any) -> str:
    """"k = 6"; empty for a missing k."""
    try:
        value = float(k)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(value) else f"k = {value:g}"


def result_name(row_id: str, n_clusters: Any = None) -> str:
    """A result (a row of stage 04 or 05) in words: "Mel-spectrogram image (PNG), K-Means, k = 6".

    Parameters
    ----------
    row_id : ``<view>.<algorithm>`` (stage 05: ``<view>.<stage>``).
    n_clusters : the clusters found; None or NaN: not named.
    """
    view, _, algorithm = row_id.rpartition(".")
    words = [view_name(view), algorithm_name(algorithm)] if view else [algorithm_name(algorithm)]
    return ", ".join(w for w in (*words, k_name(n_clusters)) if w)


def row_name(row: Mapping[str, Any]) -> str:
    """:func:`result_name` of a results row (``id`` and ``n_clusters``)."""
    return result_name(str(row["id"]), row.get("n_clusters"))


def file_part(text: str) -> str:
    """``mel.image.png.kmeans`` -> ``mel_image_png_kmeans``: lowercase, runs of anything but letters
    and digits become one underscore."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def figure_stem(kind: str, subject: str = "") -> str:
    """The file name (without suffix) of a figure: its kind, then :func:`file_part` of what it shows.

    Parameters
    ----------
    kind : a key of :data:`FIGURE_KINDS`.
    subject : a view or row id, a feature; empty for a figure of the whole run.
    """
    if kind not in FIGURE_KINDS:
        raise ValueError(f"unknown figure kind {kind!r}; known: {', '.join(FIGURE_KINDS)}")
    part = file_part(subject)
    return f"{kind}_{part}" if part else kind


def figure_kind(stem: str) -> str:
    """The kind a figure's file name starts with (the longest of :data:`FIGURE_KINDS`), else the whole name.

    Names of earlier versions (``scatter_pca.mel.image.png.kmeans``) are recognised too.
    """
    for kind in sorted(FIGURE_KINDS, key=len, reverse=True):
        if stem == kind or stem.startswith((f"{kind}_", f"{kind}.")):
            return kind
    return stem


def figure_subject(stem: str) -> str:
    """What a figure shows, as its file name says it (``mel_image_png_kmeans``); empty for a run-wide figure."""
    return stem[len(figure_kind(stem)) + 1:]


def figure_files(folder: str | Path, ids: Iterable[str] = (), kinds: Iterable[str] = ()) -> list[Path]:
    """The figure PNGs in ``folder`` that show one of ``ids`` or are of one of ``kinds``, sorted by name.

    Parameters
    ----------
    folder : a stage's ``figures/`` folder.
    ids : view or row ids (``mel.image.png.kmeans``): figures of exactly that view or row.
    kinds : figure kinds (``k_selection``): every figure of that kind.
    """
    subjects, wanted = {file_part(i) for i in ids}, set(kinds)
    folder = Path(folder)
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    return [p for p in pngs if figure_subject(p.stem) in subjects or figure_kind(p.stem) in wanted]


__all__ = ["ALGORITHM_NAMES", "FEATURE_NAMES", "FIGURE_KINDS", "algorithm_name", "feature_name", "figure_files",
           "figure_kind", "figure_stem", "figure_subject", "file_part", "k_name", "result_name", "row_name",
           "view_name", "views_name"]
