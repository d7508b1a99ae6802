"""Listen to and look at clusters: the helpers of notebook 06 and of the HTML report.

A *result* is one row of a stage's ``results.csv`` (stage 04 ``clustering`` or stage 05
``autoencoder``) with its column of ``labels.csv``. :func:`load_result` reads it and joins
each file's WAV from ``features.csv``; without an id it takes the label-free choice
(:func:`choose_result`). :func:`audioclust.stages.report.result_matrix` gives the matrix that was clustered (stage
04: the row's view, read from the view cache or rebuilt; stage 05: the saved embedding), in
which :func:`members_by_distance` ranks a cluster's members by their distance to the
cluster's centre. :func:`cluster_table` and :func:`label_makeup` say what each cluster holds.

Pictures
    :func:`thumbnail` turns a stage-03 PNG (8-bit grey, low bins at the bottom) into a small
    colour image with Pillow: a resize and a 256-colour palette taken once from the package's
    sequential colour map (no matplotlib figure per file); :func:`image_bytes` encodes it as
    WebP. :func:`mosaic` tiles thumbnails into one grid image; :func:`cluster_mosaic` does it
    for one cluster.

Sound
    :func:`audio_excerpt` reads the first seconds of a file as mono at a low rate (16 kHz by
    default); :func:`encode_audio` turns it into OGG Vorbis bytes (or 16-bit WAV where this
    libsndfile has no Vorbis).

Notebook display
    :func:`member_card` is the HTML of one file (thumbnail, name, label, player);
    :func:`members_html` and :func:`cluster_html` embed the pictures and sounds as data URIs
    so an executed notebook plays anywhere; :func:`show_cluster` wraps it for IPython.
"""

from __future__ import annotations

import base64
import functools
import html
import importlib.resources
import io
import logging
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image

from audioclust.clustering.metrics import NOISE
from audioclust.core.errors import ConfigError
from audioclust.core.paths import ProjectPaths, label_folder
from audioclust.dsp.filters import resample
from audioclust.report import figures as plots
from audioclust.results import Result

log = logging.getLogger(__name__)


#: stage-05 embedding file of each autoencoder ``stage`` (``embeddings/<view>/<file>``)
EMBEDDING_FILES: dict[str, str] = {"ae_kmeans": "pretrained.npy", "ae_spectral": "pretrained.npy", "dcec": "dcec.npy"}

#: file suffix and MIME type of each audio format of the report
AUDIO_FORMATS: dict[str, tuple[str, str]] = {"ogg": (".ogg", "audio/ogg"), "wav": (".wav", "audio/wav")}

#: grey of a missing thumbnail in a mosaic
MISSING_GREY = 200

#: thumbnails as files and data URIs: WebP (every current browser shows it)
THUMBNAIL_SUFFIX, THUMBNAIL_MIME, THUMBNAIL_QUALITY = ".webp", "image/webp", 80


# --------------------------------------------------------------------------- what the clusters hold

def cluster_name(cluster: int) -> str:
    """``cluster 3``, or ``noise`` for ``-1``."""
    return "noise" if cluster == NOISE else f"cluster {cluster}"


def label_makeup(result: Result) -> pd.DataFrame:
    """Files per cluster (rows, :attr:`Result.cluster_ids` order) and label (columns, '' shown as ``unlabelled``).

    Returns
    -------
    DataFrame of shape (n_clusters, n_labels), int counts.
    """
    labels = result.files["label"].map(label_folder)
    table = pd.crosstab(result.files["cluster"], labels).reindex(result.cluster_ids, fill_value=0)
    return table.rename_axis(index="cluster", columns="label")


def cluster_table(result: Result) -> pd.DataFrame:
    """Size and label make-up of every cluster.

    Returns
    -------
    DataFrame with one row per cluster (:attr:`Result.cluster_ids` order, noise last):
    ``cluster`` (int), ``name``, ``size``, ``share`` (of all files), ``n_labels`` (distinct
    labels among its files), ``majority`` (the most common label; ties: the first in
    alphabetical order), ``majority_share`` (its share of the cluster) and ``makeup`` (text:
    ``label count`` by decreasing count, e.g. ``tone_low 18 · chirp_up 2``).
    """
    makeup = label_makeup(result)
    n = len(result.files)
    rows = []
    for cluster, counts in makeup.iterrows():
        counts = counts[counts > 0].sort_index().sort_values(ascending=False, kind="stable")
        size = int(counts.sum())
        rows.append({"cluster": int(cluster), "name": cluster_name(int(cluster)), "size": size, "share": size / n,
                     "n_labels": int(len(counts)), "majority": str(counts.index[0]),
                     "majority_share": float(counts.iloc[0]) / size,
                     "makeup": " · ".join(f"{lab} {int(c)}" for lab, c in counts.items())})
    return pd.DataFrame(rows, columns=["cluster", "name", "size", "share", "n_labels", "majority", "majority_share",
                                       "makeup"])


def members_by_distance(X: np.ndarray, labels: Sequence[int] | np.ndarray, cluster: int) -> pd.DataFrame:
    """The members of ``cluster`` ranked by their Euclidean distance to its centre (the mean of its rows).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_dims)
        The matrix that was clustered (:func:`audioclust.stages.report.result_matrix`).
    labels : array-like of shape (n_samples,)
        Cluster of each row.
    cluster : the cluster (for noise, ``-1``, the mean of the noise points is used).

    Returns
    -------
    DataFrame with columns ``position`` (row in ``X``) and ``distance``, closest first (ties:
    lower position first); ``.head(n)`` are the most typical members, ``.tail(n)`` the least.

    Raises
    ------
    ValueError
        No row is in ``cluster``, or ``X`` and ``labels`` differ in length.
    """
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    if X.shape[0] != labels.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but labels has {labels.shape[0]}")
    positions = np.flatnonzero(labels == cluster)
    if positions.size == 0:
        raise ValueError(f"no sample is in cluster {cluster}")
    members = X[positions]
    distance = np.linalg.norm(members - members.mean(axis=0), axis=1)
    order = np.lexsort((positions, distance))
    return pd.DataFrame({"position": positions[order], "distance": distance[order]})


def closest_and_farthest(ranked: pd.DataFrame, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``n`` closest and the ``n`` farthest members of a ranking (:func:`members_by_distance`).

    A member is shown once: when the cluster has fewer than ``2 n`` members the farthest
    part holds only those not already among the closest (farthest first).
    """
    closest = ranked.head(n)
    rest = ranked.iloc[len(closest):]
    return closest, rest.tail(n).iloc[::-1]


# --------------------------------------------------------------------------- pictures

@functools.lru_cache(maxsize=8)
def _palette(cmap: str) -> list[int]:
    import matplotlib  # once per colour map, not per thumbnail
    colours = matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3]
    return np.rint(colours * 255).astype(np.uint8).ravel().tolist()


def feature_png(paths: ProjectPaths, kind: str, label: str, stem: str) -> Path:
    """``features/<name>/<kind>/<label or unlabelled>/<stem>.png`` of stage 03."""
    return paths.feature_file(kind, label_folder(label), stem, ".png")


def thumbnail(png: str | Path | np.ndarray, size: tuple[int, int] = (128, 64), cmap: str = plots.SEQUENTIAL
              ) -> Image.Image:
    """A small colour picture of a stage-03 feature image.

    Parameters
    ----------
    png : a stage-03 PNG (path) or its grey levels, ndarray of shape (n_bins, n_frames), uint8,
        row 0 = highest bin.
    size : (width, height) in pixels; time is stretched or squeezed to the width (bilinear).
    cmap : matplotlib colour map applied to the grey levels (0 -> its first colour).

    Returns
    -------
    PIL.Image.Image of mode ``P`` (256-colour palette), ``size`` pixels.
    """
    if isinstance(png, np.ndarray):
        grey = Image.fromarray(np.ascontiguousarray(png, dtype=np.uint8))
    else:
        with Image.open(png) as img:
            grey = img.convert("L")
    small = grey.resize(tuple(int(s) for s in size), resample=Image.Resampling.BILINEAR)
    small.putpalette(_palette(cmap))
    return small


def image_bytes(image: Image.Image, quality: int = THUMBNAIL_QUALITY) -> bytes:
    """Lossy WebP bytes of ``image`` (thumbnails are many: a 128 x 64 spectrogram takes ~0.5 kB,
    against ~1.4 kB as JPEG and ~4.7 kB as PNG).

    Parameters
    ----------
    image : PIL.Image.Image (converted to RGB).
    quality : WebP quality, 0..100.
    """
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="WEBP", quality=quality, method=6)
    return buffer.getvalue()


def mosaic(images: Sequence[Image.Image | None], columns: int = 8, pad: int = 2,
           background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Tile images into a grid, row by row.

    Parameters
    ----------
    images : pictures (None: a grey tile, e.g. a missing file); every cell has the size of
        the largest picture, smaller ones sit at its top left.
    columns : cells per row (fewer when there are fewer images).
    pad : pixels between and around cells.
    background : RGB of the padding.

    Returns
    -------
    PIL.Image.Image of mode ``RGB``, ``(cols * (w + pad) + pad) x (rows * (h + pad) + pad)``.

    Raises
    ------
    ValueError
        ``images`` is empty or holds only None.
    """
    sizes = [im.size for im in images if im is not None]
    if not sizes:
        raise ValueError("mosaic needs at least one image")
    w, h = max(s[0] for s in sizes), max(s[1] for s in sizes)
    cols = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / cols)
    sheet = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + pad) + pad), background)
    for i, im in enumerate(images):
        tile = im.convert("RGB") if im is not None else Image.new("RGB", (w, h), (MISSING_GREY,) * 3)
        sheet.paste(tile, (pad + (i % cols) * (w + pad), pad + (i // cols) * (h + pad)))
    return sheet


def file_thumbnail(paths: ProjectPaths, kind: str, label: str, stem: str, size: tuple[int, int] = (128, 64)
                   ) -> Image.Image | None:
    """:func:`thumbnail` of one file's stage-03 PNG, or None when it is missing or unreadable."""
    try:
        return thumbnail(feature_png(paths, kind, label, stem), size)
    except OSError as exc:
        log.debug("no thumbnail for %s/%s: %s", label, stem, exc)
        return None


def cluster_mosaic(paths: ProjectPaths, result: Result, cluster: int, kind: str = "mel",
                   order: Sequence[int] | None = None, max_images: int = 48, columns: int = 8,
                   size: tuple[int, int] = (128, 64)) -> Image.Image:
    """A grid of the thumbnails of one cluster's files.

    Parameters
    ----------
    order : positions (rows of ``result.files``) in the order to show, e.g. the ``position``
        column of :func:`members_by_distance` (closest first); None: file order.
    max_images : at most this many tiles.

    Returns
    -------
    PIL.Image.Image (:func:`mosaic`).
    """
    positions = np.flatnonzero(result.clusters == cluster) if order is None else np.asarray(order, dtype=int)
    rows = result.files.iloc[positions[:max_images]]
    images = [file_thumbnail(paths, kind, lab, stem, size) for lab, stem in zip(rows["label"], rows["stem"])]
    return mosaic(images, columns=columns)


# --------------------------------------------------------------------------- sound

def audio_excerpt(path: str | Path, seconds: float = 5.0, sr: int = 16000) -> np.ndarray:
    """The first ``seconds`` of a sound file, mono, at ``sr``.

    Only the needed frames are read; channels are averaged; the resampling is soxr's high
    quality (:func:`audioclust.dsp.filters.resample`); the result is clipped to [-1, 1] (resampling
    can overshoot a full-scale peak a little).

    Returns
    -------
    ndarray of shape (min(n, floor(seconds * sr)),), float32 (n: the file's length at ``sr``).
    """
    with sf.SoundFile(str(path)) as f:
        native = f.samplerate
        frames = min(f.frames, math.ceil(seconds * native))
        y = f.read(frames, dtype="float32", always_2d=True).mean(axis=1)
    if native != sr and y.size:
        y = resample(y, orig_sr=native, target_sr=sr)
    return np.clip(y[: int(seconds * sr)], -1.0, 1.0).astype(np.float32)


def audio_format(fmt: str = "ogg") -> str:
    """``fmt`` when this libsndfile can write it, else ``wav`` (logged once)."""
    if fmt == "ogg" and "VORBIS" not in sf.available_subtypes("OGG"):
        _warn_no_vorbis()
        return "wav"
    return fmt


@functools.lru_cache(maxsize=1)
def _warn_no_vorbis() -> None:
    log.warning("this libsndfile (%s) cannot write OGG Vorbis: report audio is 16-bit WAV (about 10x larger)",
                sf.__libsndfile_version__)


def encode_audio(y: np.ndarray, sr: int, fmt: str = "ogg") -> bytes:
    """Sound as file bytes: OGG Vorbis (``ogg``) or 16-bit PCM WAV (``wav``).

    Parameters
    ----------
    y : ndarray of shape (n_samples,), float in [-1, 1]; an empty signal becomes one zero sample.
    sr : sample rate in Hz.
    fmt : ``ogg`` or ``wav`` (``ogg`` falls back to ``wav`` without Vorbis, :func:`audio_format`).
    """
    fmt = audio_format(fmt)
    if fmt not in AUDIO_FORMATS:
        raise ConfigError(f"audio format {fmt!r} is not allowed; use one of {', '.join(AUDIO_FORMATS)}")
    y = np.asarray(y, dtype=np.float32)
    if y.size == 0:
        y = np.zeros(1, dtype=np.float32)
    buffer = io.BytesIO()
    if fmt == "ogg":
        sf.write(buffer, y, sr, format="OGG", subtype="VORBIS")
    else:
        sf.write(buffer, y, sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


# --------------------------------------------------------------------------- HTML

def data_uri(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,...`` of ``data``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def member_card(name: str, label: str, cluster: int, img_src: str | None, audio_src: str | None,
                mime: str = "audio/ogg", note: str = "") -> str:
    """The HTML of one file: thumbnail, name, label, cluster, a player.

    ``img_src`` / ``audio_src`` are URLs (relative paths or data URIs), already
    percent-encoded where needed; None leaves the picture or the player out. Text is escaped.
    """
    esc = html.escape
    img = (f'<img src="{esc(img_src)}" alt="{esc(name)}: thumbnail" loading="lazy">' if img_src
           else '<div class="noimg">no image</div>')
    audio = (f'<audio controls preload="none" src="{esc(audio_src)}"></audio>' if audio_src
             else '<div class="noaudio">no audio</div>')
    extra = f'<span class="note">{esc(note)}</span>' if note else ""
    return (f'<figure class="card">{img}<figcaption><b>{esc(name)}</b><br>{esc(label_folder(label))} · '
            f'{esc(cluster_name(cluster))}{" · " if extra else ""}{extra}</figcaption>{audio}</figure>')


#: CSS of the notebook cards, package data ``static/cards.css`` (the report has its own page style)
CARD_CSS = importlib.resources.files("audioclust.report").joinpath("static", "cards.css").read_text(encoding="utf-8")


def members_html(report: Any, paths: ProjectPaths, result: Result, positions: Iterable[int],
                 distances: Iterable[float] | None = None, title: str = "", seconds: float | None = None) -> str:
    """Cards (:func:`member_card`) of some files with embedded thumbnails and sound.

    Parameters
    ----------
    positions : rows of ``result.files``.
    distances : shown under each card (e.g. from :func:`members_by_distance`).
    seconds : length of each excerpt; None: ``report.audio_seconds``.

    Returns
    -------
    str of HTML (a heading when ``title``, then a flex row of cards).
    """
    r = report
    fmt = audio_format(r.audio_format)
    mime = AUDIO_FORMATS[fmt][1]
    seconds = r.audio_seconds if seconds is None else seconds
    dist = list(distances) if distances is not None else None
    cards = []
    for i, pos in enumerate(positions):
        row = result.files.iloc[int(pos)]
        thumb = file_thumbnail(paths, r.thumbnail_feature, row["label"], row["stem"], tuple(r.thumbnail_size))
        img_src = data_uri(image_bytes(thumb), THUMBNAIL_MIME) if thumb is not None else None
        audio_src = None
        if row["path"]:
            try:
                audio_src = data_uri(encode_audio(audio_excerpt(paths.abs(row["path"]), seconds, r.audio_rate),
                                                  r.audio_rate, fmt), mime)
            except (OSError, RuntimeError, ValueError) as exc:
                log.warning("no audio for %s: %s", row["path"], exc)
        note = f"distance {dist[i]:.2f}" if dist is not None else ""
        cards.append(member_card(row["stem"], row["label"], int(row["cluster"]), img_src, audio_src, mime, note))
    head = f"<h4>{html.escape(title)}</h4>" if title else ""
    return f'<style>{CARD_CSS}</style>{head}<div class="cards">{"".join(cards)}</div>'


def cluster_html(report: Any, paths: ProjectPaths, result: Result, X: np.ndarray, cluster: int,
                 n: int | None = None) -> str:
    """One cluster for the notebook: size, label make-up, closest and farthest members with players.

    Parameters
    ----------
    X : ndarray of shape (n_files, n_dims), the clustered matrix (:func:`audioclust.stages.report.result_matrix`).
    n : members shown at each end; None: ``report.n_members``.
    """
    n = report.n_members if n is None else n
    info = cluster_table(result).set_index("cluster").loc[cluster]
    ranked = members_by_distance(X, result.clusters, cluster)
    closest, farthest = closest_and_farthest(ranked, n)
    head = (f"<h3>{html.escape(cluster_name(cluster).capitalize())} · {int(info['size'])} files "
            f"({info['share']:.0%})</h3><p>{html.escape(info['makeup'])}</p>")
    parts = [head, members_html(report, paths, result, closest["position"], closest["distance"],
                                title=f"closest to the centre ({len(closest)})")]
    if len(farthest):
        parts.append(members_html(report, paths, result, farthest["position"], farthest["distance"],
                                  title=f"farthest from the centre ({len(farthest)})"))
    return "".join(parts)


def show_cluster(report: Any, paths: ProjectPaths, result: Result, X: np.ndarray, cluster: int,
                 n: int | None = None) -> Any:
    """:func:`cluster_html` as an ``IPython.display.HTML`` object (a notebook renders it)."""
    from IPython.display import HTML
    return HTML(cluster_html(report, paths, result, X, cluster, n))
