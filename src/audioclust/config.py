"""Typed configuration: dataclass schema, YAML merge and validation.

The dataclasses below are the one source of truth of the configuration: each field holds its
default, its ``min``/``max`` bounds and a one-line description (``doc``) in its metadata, and
``Literal`` types list the allowed values. ``configs/default.yaml`` is generated from them by
:func:`default_yaml` (``python -m audioclust.config > configs/default.yaml``; a test checks that
the committed file is the generated one), and so is the configuration reference of the docs.

Precedence, lowest first: the dataclass defaults, ``<root>/configs/default.yaml``,
``<root>/configs/<dataset>.yaml``, an explicit ``--config`` file, ``--set key=value``.
Unknown keys and bad values raise :class:`ConfigError` naming the key before any work.
A stage's cache key is :func:`section_hash` of the sections it reads.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from audioclust.core.cache import stable_hash
from audioclust.core.errors import ConfigError
from audioclust.core.vocab import (
    EMBEDDING_ARCHITECTURES,
    EMBEDDING_POOLINGS,
    EMBEDDING_TYPES,
    FEATURE_KINDS,
    K_METHODS,
    PER_FILE_MODES,
    SHIPPED_EMBEDDINGS,
)

FeatureKind = Literal[FEATURE_KINDS]


def _f(default: Any, *, doc: str, items: Mapping[str, str] | None = None, **bounds: float) -> Any:
    """A field with a default (copied if mutable), its one-line description and optional bounds.

    ``doc`` is the key's comment in ``configs/default.yaml`` and its description in the
    configuration reference; ``min``/``max`` bound numbers (also the items of a list);
    ``items`` describes, one line each, the entries of a mapping default, which is then written
    as an indented block with a comment per entry.
    """
    metadata: dict[str, Any] = {"doc": doc, **bounds}
    if items is not None:
        metadata["items"] = dict(items)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: json.loads(json.dumps(default)), metadata=metadata)
    return field(default=default, metadata=metadata)


def _section(cls: type, *, doc: str) -> Any:
    """A nested section (a dataclass of its own keys) with its one-line description."""
    return field(default_factory=cls, metadata={"doc": doc})


@dataclass
class DatasetConfig:
    labels: Literal["folder", "regex", "csv", "none"] = _f(
        "folder", doc="where labels come from: folder (sub-folder name) | regex | csv | none")
    label_regex: str | None = _f(
        None, doc="labels: regex — regex with one group applied to the file name, e.g. '^(\\d+)_'")
    label_csv: str | None = _f(
        None, doc="labels: csv — CSV with columns path,label (path relative to datasets/<name>/)")
    extensions: list[str] = _f(["wav", "flac", "ogg", "mp3", "aiff", "aif", "au"],
                               doc="decoded by soundfile (mp3 via libsndfile >= 1.1)")
    ffmpeg_extensions: list[str] = _f(["m4a", "aac", "wma", "opus", "webm", "mp4"],
                                      doc="decoded through audioread by ffmpeg: the one on the PATH, else the imageio-ffmpeg package's")
    max_duration: float | None = _f(
        3600.0, min=0.001,
        doc="s; a longer file is recorded with status too_long and left out: stages 02-03 hold a whole "
            "recording in memory; null: no limit")


@dataclass
class AudioConfig:
    sample_rate: int = _f(22050, min=1000, max=384000, doc="Hz; every file is resampled to this rate in stage 02")
    cutoff: float | None = _f(
        8192.0, min=1.0,
        doc="Hz; zero-phase Butterworth low-pass; null disables; >= Nyquist is skipped with a warning; where some "
            "files were stored at a lower rate, stage 02 warns and names the cutoff that keeps only the band every "
            "file holds")
    order: int = _f(8, min=1, max=32, doc="Butterworth order of the low-pass (SOS form; filtered forward and back)")
    silence_db: float = _f(-60.0, max=0.0, doc="dBFS; a file whose peak is below this is recorded as status 'silent'")


@dataclass
class FeaturesConfig:
    kinds: list[FeatureKind] = _f(list(FEATURE_KINDS), doc="which features stage 03 writes")
    n_fft: int = _f(2048, min=16, doc="STFT window length in samples")
    hop_length: int = _f(512, min=1, doc="STFT hop in samples (<= n_fft)")
    n_mels: int = _f(128, min=1, doc="mel bands")
    n_mfcc: int = _f(20, min=2, doc="MFCC coefficients (mfcc_no_c0 drops c0 and keeps n_mfcc - 1)")
    n_chroma: int = _f(12, min=1, doc="chroma bins")
    mfcc_top_db: float | None = _f(
        80.0, min=1.0,
        doc="dB; MFCCs see the mel dB floored this far below the file's peak (librosa's convention); "
            "null: no floor")
    fmin: float = _f(0.0, min=0.0, doc="Hz; lowest mel-filter frequency")
    fmax: float | None = _f(
        None, min=1.0, doc="Hz; highest mel-filter frequency (null: the low-pass cutoff, or Nyquist)")
    png: bool = _f(True, doc="also write an 8-bit grayscale PNG per feature")
    png_ranges: dict[str, list[float]] = _f(
        {
            "spectrogram": [-80.0, 60.0],
            "mel": [-80.0, 50.0],
            "chroma": [0.0, 1.0],
            "mfcc": [-800.0, 400.0],
            "mfcc_no_c0": [-400.0, 400.0],
        },
        doc="fixed [low, high] per feature mapped onto grey 0..255 in the PNGs (clipped); same in every file",
        items={
            "spectrogram": "dB re 1.0 of |STFT|; empty bins clip to black",
            "mel": "dB re 1.0 of the mel power",
            "chroma": "chroma is normalised to max 1 per frame",
            "mfcc": "MFCC of the dB mel-spectrogram (c0 follows the mean band dB)",
            "mfcc_no_c0": "MFCC without c0",
        })


@dataclass
class ParallelConfig:
    n_jobs: int = _f(2, min=-1, doc="worker processes for per-file stages and for figures; -1: all cores")
    scheduler: str | None = _f(
        None, doc="tcp://host:port of a Dask scheduler to run per-file stages on; null: local")
    batch_size: int = _f(
        16, min=1, doc="files per Dask task (with a scheduler): fewer round trips, still fine-grained")
    retries: int = _f(
        2, min=0,
        doc="times a Dask task is retried when its worker dies (outputs are atomic, so a retry is safe)")


ViewFeature = Literal["spectrogram", "mel", "chroma", "mfcc", "mfcc_no_c0", "descriptors"]

PerFile = Literal[PER_FILE_MODES]


@dataclass
class ImagesConfig:
    trim_db: float | None = _f(
        20.0, min=0.0,
        doc="align in time: keep the first..last frame whose loudest bin is within this many dB of the "
            "file's loudest frame (mel, else spectrogram, decides), so silence before or after a sound "
            "neither shifts nor stretches its image; null: whole file")
    per_file: dict[str, PerFile] = _f(
        {"spectrogram": "peak", "mel": "peak", "mfcc": "meanvar", "mfcc_no_c0": "meanvar"},
        doc="per-file normalisation: peak (dB re the file's loudest bin: the recording level goes, so single "
            "quiet files do not make clusters of their own) | mean (each row over time) | meanvar (and its "
            "spread: CMVN removes the channel and much of the speaker from cepstra) | none; unlisted: none")


@dataclass
class StatsViewConfig:
    trim_db: float | None = _f(
        None, min=0.0,
        doc="stats over the whole file: background and pauses describe the source too; a number trims "
            "as images.trim_db")
    clip: float | None = _f(
        None, min=0.1,
        doc="with views.scale standard: z-scores beyond +-clip are set to +-clip (one far-out file cannot "
            "take a cluster for itself); null: none")
    pca: float | None = _f(
        0.95, min=1e-6,
        doc="PCA of the stats view: < 1 keeps this fraction of variance, >= 1 this many components; null: none")
    whiten: bool = _f(
        True, doc="unit variance per kept component, so the loudest directions do not decide alone")
    umap: int | None = _f(None, min=1, doc="UMAP components after PCA (seeded; umap-learn); null: none")


@dataclass
class ImageViewConfig:
    n_frames: int = _f(
        8, min=1,
        doc="frames the image is resampled to (linear interpolation over the trimmed region, images.trim_db): "
            "the coarse time course, robust to tempo")
    clip: float | None = _f(None, min=0.1, doc="z-score clip (as stats.clip)")
    pca: float | None = _f(40.0, min=1e-6, doc="PCA of the image view (as stats.pca)")
    whiten: bool = _f(False, doc="whiten the image view's components")
    umap: int | None = _f(
        None, min=1,
        doc="UMAP components after PCA; null: none. It joins one word said by different voices, but its "
            "clumps then win the stability selection where the stats views are right")


@dataclass
class DescriptorsViewConfig:
    clip: float | None = _f(
        5.0, min=0.1,
        doc="z-score clip (as stats.clip): scalar descriptors are heavy-tailed; without it a partition of "
            "the descriptors splits off single far-out files (degenerate)")
    pca: float | None = _f(None, min=1e-6, doc="PCA of the descriptors view (as stats.pca)")
    whiten: bool = _f(False, doc="whiten the descriptors view's components")
    umap: int | None = _f(None, min=1, doc="UMAP components after PCA (as stats.umap)")


@dataclass
class EmbeddingViewConfig:
    pooling: Literal[EMBEDDING_POOLINGS] = _f(
        "mean", doc="how a file's frame embeddings become one vector: mean | meanstd (mean and spread) | max")
    l2: bool = _f(
        True, doc="unit length per file before scaling: an embedding's direction carries its meaning, its length "
                  "follows loudness and duration")
    clip: float | None = _f(None, min=0.1, doc="z-score clip (as stats.clip)")
    pca: float | None = _f(0.95, min=1e-6, doc="PCA of the embedding view (as stats.pca)")
    whiten: bool = _f(False, doc="whiten the embedding view's components")
    umap: int | None = _f(None, min=1, doc="UMAP components after PCA (as stats.umap)")


@dataclass
class ViewsConfig:
    features: list[ViewFeature] = _f(
        ["mel", "mfcc", "mfcc_no_c0", "chroma", "spectrogram", "descriptors"],
        doc="features to cluster, one summary row each; descriptors = the scalar columns of features.csv")
    kinds: list[Literal["stats", "image"]] = _f(
        ["stats", "image"],
        doc="stats: per-bin mean, std and mean/std of the frame deltas (timbre, texture, recording); "
            "image: the time course, resampled to a fixed size")
    sources: list[Literal["npy", "png"]] = _f(
        ["npy", "png"],
        doc="build each view from the float arrays (npy, \"Arrays\") and/or the 8-bit images (png, "
            "\"Images\"), as the original study compared; [npy] halves stage 04")
    max_bins: int = _f(
        128, min=1,
        doc="bins above this are averaged in adjacent groups (spectrogram 1025 -> 114); mel, chroma, "
            "MFCC stay whole")
    store: bool = _f(
        True,
        doc="stage 03 also packs every view's vector per file into features/<name>/store/ "
            "(memory-mappable float32), so stage 04 and 05 read one file, not one per clip")
    scale: Literal["standard", "minmax", "none"] = _f(
        "standard", doc="per column after mean imputation: standard (z-score) | minmax | none")
    umap_neighbors: int = _f(
        50, min=2,
        doc="UMAP n_neighbors, for the view kinds whose umap is set (more neighbours: more global structure)")
    umap_min_dist: float = _f(0.0, min=0.0, doc="UMAP min_dist (0 packs clusters tightly)")
    umap_max_samples: int | None = _f(
        20000, min=10,
        doc="above this many files UMAP is fitted on a seeded sample of this size and places the others "
            "with its transform; null: all")
    stats: StatsViewConfig = _section(
        StatsViewConfig, doc="the stats views: per-bin summaries over the whole file")
    image: ImageViewConfig = _section(
        ImageViewConfig, doc="the image views: the time course, trimmed and resampled")
    descriptors: DescriptorsViewConfig = _section(
        DescriptorsViewConfig, doc="the descriptors view: the scalar columns of features.csv")
    embedding: EmbeddingViewConfig = _section(
        EmbeddingViewConfig, doc="the embedding views: one per model of embeddings.models")


#: the keys of one entry of ``embeddings.models`` written as a mapping
EMBEDDING_MODEL_KEYS: tuple[str, ...] = ("name", "type", "path", "layer", "sample_rate", "batch_size")


@dataclass
class EmbeddingsConfig:
    models: list[str | dict[str, Any]] = _f(
        ["aisfx", "resemblyzer"],
        doc="pretrained models whose embeddings are features (a view each): aisfx (sound effects) and "
            "resemblyzer (voices) ship with the package; a local checkpoint is {name, type: huggingface | "
            "torchscript | onnx, path (absolute or from the project root), layer, sample_rate, batch_size}")
    device: Literal["auto", "cpu", "cuda", "mps"] = _f(
        "auto", doc="where the models run: auto (cuda, then mps, else cpu)")
    batch_size: int = _f(16, min=1, doc="blocks or files per forward pass, for models that do not set their own")
    files_per_step: int = _f(
        64, min=1, doc="files decoded and resampled per step (memory: their audio at the model's rate)")


#: stage 05's clusterers of a pre-trained embedding (``autoencoder.algorithms``)
PretrainedAlgorithm = Literal["kmeans", "spectral"]

AlgorithmName = Literal["kmeans", "minibatch_kmeans", "fcm", "gmm", "agglomerative", "spectral",
                        "birch", "dbscan", "hdbscan", "affinity_propagation"]

ALGORITHMS: tuple[str, ...] = typing.get_args(AlgorithmName)

KMethod = Literal[K_METHODS]

Criterion = Literal["silhouette", "calinski_harabasz", "davies_bouldin", "stability"]


@dataclass
class ClusterConfig:
    algorithms: list[AlgorithmName] = _f(
        ["kmeans", "fcm", "agglomerative", "spectral", "hdbscan"],
        doc="stage-04 clusterers (also minibatch_kmeans, gmm, birch, dbscan, affinity_propagation); "
            "the default is chosen for run time (gmm is slow on many files)")
    k: int | Literal["auto"] = _f(
        "auto", min=2,
        doc="number of clusters; auto: estimated (consensus of k_methods over k_min..k_max, never the labels)")
    k_min: int = _f(
        2, min=1,
        doc="smallest k tried when k is auto (1 lets the gap statistic say \"no structure\")")
    k_max: int = _f(10, min=1, doc="largest k tried when k is auto")
    k_methods: list[KMethod] = _f(
        list(K_METHODS),
        doc="criteria whose most common choice is the estimated k (a choice at k_min or k_max counts only "
            "when none is inside, or all criteria but one chose it: monotone curves end there)")
    gap_references: int = _f(10, min=1, doc="uniform reference sets (B) of the gap statistic")
    criterion: Criterion = _f(
        "stability",
        doc="label-free score that picks each feature's selected row over views and algorithms: silhouette "
            "| calinski_harabasz | davies_bouldin (lower is better) | stability (ARI between partitions of "
            "half-samples minus the same on a Gaussian of the view's shape: comparable across views, "
            "the slowest)")
    pick: Literal["structures", "criterion"] = _f(
        "structures",
        doc="the overall label-free row (report, sound map) among the features' selected rows: structures "
            "(rows whose partitions agree form a structure; the pick is the most central row of the structure "
            "most features see, the others are reported as alternatives) | criterion (the best criterion)")
    structure_agreement: float = _f(
        0.3, min=0.0, max=1.0,
        doc="adjusted mutual information from which two features' selected partitions count as one structure")
    focus: list[str] = _f(
        [],
        doc="features (or embedding models) whose selected rows form the structures and the pick, in stage 04 "
            "and among stage 05's models: your prior about what matters, e.g. [chroma] for pitch class, "
            "[resemblyzer] for voices; [] = all")
    tune_criterion: Criterion = _f(
        "silhouette",
        doc="label-free score that picks each algorithm's grid point within one view (where scales agree; "
            "stability costs 11 fits per point)")
    stability_resamples: int = _f(
        5, min=1,
        doc="half-samples per stability estimate (criterion stability; each costs one fit on the data and "
            "one on the Gaussian reference)")
    stability_max_samples: int | None = _f(
        3000, min=10,
        doc="stability on a seeded sample of this many files when there are more (smaller samples lose "
            "groups in many dimensions); null: all")
    tune: bool = _f(
        True,
        doc="try each algorithm's grid (built in, or from grids) and keep the best by tune_criterion; "
            "false: the values below only")
    n_init: int = _f(10, min=1, doc="K-Means / GMM / spectral restarts (best kept)")
    fcm_m: float | Literal["auto"] = _f(
        "auto", min=1.01,
        doc="Fuzzy C-Means fuzzifier m (> 1; larger = fuzzier); auto: Schwaemmle & Jensen's m for the "
            "view's samples and dimensions (at the textbook 2, or 1.5, every membership is ~1/c in many "
            "dimensions); with tune, the fcm grid (auto, 1.5, 2) is tried instead")
    fcm_error: float = _f(
        1e-5, min=0.0,
        doc="Fuzzy C-Means stop when the membership change (Frobenius norm) is below this")
    fcm_maxiter: int = _f(1000, min=1, doc="Fuzzy C-Means iteration limit")
    dbscan_eps: float | None = _f(
        None, min=1e-12, doc="DBSCAN radius; null: knee of the sorted min_samples-distance curve")
    dbscan_min_samples: int = _f(
        5, min=1,
        doc="DBSCAN neighbours (the point included) for a core point; with tune, the dbscan grid's values "
            "are tried instead")
    hdbscan_min_cluster_size: int = _f(
        5, min=2,
        doc="HDBSCAN smallest cluster; with tune, the hdbscan grid's values are tried instead")
    max_samples_quadratic: int = _f(
        5000, min=2,
        doc="above this many samples agglomerative, spectral and affinity propagation are skipped "
            "(memory ~ n^2)")
    max_samples_slow: int = _f(
        20000, min=2,
        doc="above this many samples hdbscan is skipped (its time grows faster than n^2 in many dimensions)")
    silhouette_sample_size: int | None = _f(
        2000, min=2,
        doc="silhouette (and the gap statistic) on a seeded sample of this size when n is larger; null: all")
    grids: dict[str, dict[str, list[Any]]] = _f(
        {},
        doc="per-algorithm grid overrides, e.g. {dbscan: {min_samples: [3, 5, 10]}}; {} uses the built-in "
            "grids")
    figures: bool = _f(
        True, doc="write the stage-04 figures (PNG 300 dpi + PDF) into results/<name>/clustering/figures/")
    figure_rows: Literal["selected", "best", "all"] = _f(
        "selected",
        doc="rows with scatter and contingency figures: selected (each feature's selected row; the structures' "
            "representatives are among them) | best (also each feature's best row by the labels, as in the summary) "
            "| all (every row that fitted: about a second of CPU per figure)")
    tsne: bool = _f(
        True, doc="also a t-SNE scatter (seeded) of each structure's representative: the pick and its alternatives "
                  "(the slowest figure; the report's sound map reuses it)")
    tsne_max_samples: int | None = _f(
        5000, min=10,
        doc="t-SNE on a seeded sample of this many files when there are more (time and memory grow faster "
            "than n); null: all")
    kselect_max_samples: int | None = _f(
        1000, min=10,
        doc="k is estimated on a seeded sample of this many files when there are more (the criteria fit "
            "K-Means ~100 times per view); null: all")
    min_cluster_share: float = _f(
        0.1, min=0.0, max=1.0,
        doc="grid points and 'selected' only consider partitions whose smallest cluster holds >= this share "
            "of the mean cluster size (a few split-off outliers score a high silhouette but are no structure)")
    max_noise_share: float = _f(
        0.5, min=0.0, max=1.0,
        doc="... and that leave at most this share of the files as noise (dbscan, hdbscan)")


#: in ``autoencoder.features``: every model of ``embeddings.models`` that stage 03 embedded
EVERY_EMBEDDING = "embeddings"

EmbeddingArchitecture = Literal[EMBEDDING_ARCHITECTURES]


@dataclass
class AutoencoderConfig:
    enabled: bool = _f(True, doc="run stage 05 (autoencoder embedding + DCEC)")
    architecture: Literal["dcec", "conv4", "vae"] = _f(
        "dcec", doc="dcec (DCEC CAE) | conv4 (four conv blocks) | vae (variational, DCEC backbone)")
    features: list[str] = _f(
        ["mel", "mfcc", "spectrogram", EVERY_EMBEDDING],
        doc="stage-03 features to train on, one model each: mel (dB re peak) keeps the spectral envelope, "
            "mfcc (CMVN) the course over time, spectrogram (dB re peak) the harmonics of pitched sounds; a "
            "model of embeddings.models trains DEC's fully connected autoencoder on its embedding view (a "
            "pretrained model's timbre or voice), and embeddings stands for every model that was embedded; "
            "the most stable model is the pick (at k: auto the structure most models see)")
    embedding_architecture: EmbeddingArchitecture = _f(
        "mlp",
        doc="autoencoder of an embedding view: mlp (DEC's, from random weights) | mlp_pca (DEC's beside a linear "
            "path started at the view's PCA: reconstructs the view better in fewer epochs and keeps its "
            "neighbourhoods, so its models cluster like stage 04's view of the embedding and, steadier, draw the "
            "pick to the embedding's structure)")
    source: Literal["npy", "png"] = _f(
        "npy", doc="read the features from their npy arrays or their 8-bit png images")
    input_size: list[int] = _f(
        [96, 48], min=1, doc="[time, frequency] size every feature array is resized to (bilinear)")
    scale: Literal["percentile", "minmax", "none"] = _f(
        "percentile",
        doc="one map for the whole dataset onto [0, 1] after the per-file steps: percentile (1st..99th, "
            "clipped) | minmax | none")
    latent_dims: list[int] = _f(
        [10, 32], min=1,
        doc="embedding sizes to train, one model each; per feature the rows of the size whose embedding its most "
            "stable clusterer (autoencoder.algorithms) partitions most stably under sub-sampling are the ones "
            "selected (ties: the lower validation loss)")
    batch_size: int = _f(
        64, min=1,
        doc="samples per batch (pre-training and DCEC); larger batches use the CPU better, smaller ones "
            "take more steps per epoch on small sets")
    profile: Literal["auto", "cpu", "gpu"] = _f(
        "auto",
        doc="training schedule of the keys below left null: cpu (about 120,000 image passes, at most 200 epochs, "
            "patience 10, lr_patience 4; DCEC max_iter 800) | gpu (about 1,350,000 image passes, at most 450 "
            "epochs, patience 30, lr_patience 10; DCEC max_iter 1,600) | auto: gpu when training on CUDA or MPS, "
            "else cpu")
    max_epochs: int | None = _f(
        None, min=1, doc="pre-training epoch limit; null: the profile's budget of image passes over the training "
                         "images (early stopping usually ends it sooner)")
    patience: int | None = _f(
        None, min=0,
        doc="early stopping: epochs without a val_loss improvement of min_delta (longer than lr_patience, "
            "so a reduced learning rate gets its chance); 0: no early stopping; null: the profile's")
    min_delta: float = _f(
        1e-4, min=0.0, doc="early stopping: smallest val_loss decrease that counts as improvement")
    lr: float = _f(
        1e-3, min=1e-7, max=1.0,
        doc="Adam learning rate of pre-training (ReduceLROnPlateau lowers it on a plateau)")
    lr_factor: float = _f(
        0.5, min=0.01, max=0.99, doc="ReduceLROnPlateau: multiply the learning rate by this on a plateau")
    lr_patience: int | None = _f(
        None, min=0, doc="ReduceLROnPlateau: epochs without improvement before reducing; null: the profile's")
    loss: Literal["mean", "sum"] = _f(
        "mean",
        doc="pre-training loss: mean (squared error per pixel) | sum (summed over the batch's pixels, as in "
            "the seed study; the same minimum, larger steps until Adam adapts)")
    val_fraction: float = _f(
        0.1, min=0.0, max=0.5,
        doc="seeded share of samples held out to monitor pre-training (all are embedded)")
    num_workers: int = _f(
        0, min=0,
        doc="DataLoader worker processes (0: the main process) when the images do not fit on the training device; "
            "images that fit are batched there by index, without a DataLoader")
    num_threads: int = _f(
        0, min=0,
        doc="CPU threads of torch (training, DCEC) and of stage 05's K-Means and k selection (0: every core "
            "available); the results depend on it, so fix it to compare runs across machines")
    beta: float = _f(1.0, min=0.0, doc="vae: weight of the KL term (per pixel, like the MSE)")
    update_interval: int = _f(
        50, min=1,
        doc="DCEC: batches between recomputing the target distribution over all samples (~1 pass over "
            "3,000 files at batch 64)")
    gamma: float = _f(
        0.1, min=0.0, doc="DCEC: weight of the clustering loss KL(P||Q) against the reconstruction MSE")
    dcec_lr: float = _f(
        1e-3, min=1e-7, max=1.0,
        doc="DCEC: Adam learning rate of the clustering stage (Adam's default, as in DCEC's published code)")
    tol: float = _f(
        0.001, min=0.0, max=1.0, doc="DCEC: stop when fewer than this share of labels change between updates")
    tol_files: int = _f(
        1, min=0,
        doc="DCEC: also stop when at most this many files change label between updates (below 1,000 files a "
            "share of 0.001 is no file, and one file wavering on a border kept DCEC to its batch limit); "
            "0: tol alone, as in DCEC's published code")
    max_iter: int | None = _f(
        None, min=1, doc="DCEC: batch limit; null: the profile's (cpu 800 batches, about 17 passes over 3,000 "
                         "samples at batch 64; gpu 1,600), at most its epoch limit in passes over the data "
                         "(cpu 200, gpu 450: 49 files get 200 batches)")
    alpha: float = _f(1.0, min=1e-6, doc="DCEC: degrees of freedom of the Student's t soft assignment")
    kmeans_n_init: int = _f(20, min=1, doc="DCEC: K-Means restarts for the initial centres")
    algorithms: list[PretrainedAlgorithm] = _f(
        ["kmeans", "spectral"],
        doc="clusterers of each pre-trained embedding, a row ae_<name> each with its stability gain; kmeans is "
            "required (DCEC starts from its centres). spectral (stage 04's, on a nearest-neighbour graph) "
            "follows groups that are not round; a model's stability is its most stable clusterer's, and its "
            "spectral row is selected instead of K-Means and DCEC when clearly more stable (by over 0.02)")
    stability_resamples: int = _f(
        50, min=1,
        doc="half-samples of the stability gain (latent_stability) that chooses the latent size and the pick: "
            "more than stage 04's cluster.stability_resamples, since K-Means on an embedding takes milliseconds "
            "and with 5 one model's gain moves by about 0.05 (sd) from seed to seed, more than the 0.02 tie band")
    deterministic: bool = _f(
        True,
        doc="pre-training and DCEC with deterministic algorithms and no TF32: the same seed on the same device "
            "gives the same weights (costs ~7 % more time per epoch on a GPU, measured once on an H200; none "
            "measurable on a CPU); false allows cuDNN autotuning and TF32, faster but runs differ")
    tsne: bool = _f(
        False,
        doc="stage 05 figures: also a t-SNE scatter of each clustered embedding (seeded, at most "
            "cluster.tsne_max_samples files); false: PCA scatters only (t-SNE was most of the stage's figure time)")


SegmentAlgorithm = Literal["kmeans", "affinity_propagation"]


@dataclass
class SegmentsConfig:
    algorithms: list[SegmentAlgorithm] = _f(
        ["kmeans", "affinity_propagation"],
        doc="clusterers of the segments (affinity propagation chooses its own number)")
    k: int = _f(4, min=2, doc="K-Means clusters (lowered to the number of segments when there are fewer)")
    n_fft: int = _f(
        2048, min=16,
        doc="STFT window in samples of the MFCC (zero-crossing rate and RMS use the segment's samples)")
    hop_length: int = _f(
        256, min=1,
        doc="hop in samples of the onset envelope and the MFCC frames (onsets are this precise)")
    n_mels: int = _f(64, min=1, doc="mel bands under the MFCC")
    n_mfcc: int = _f(13, min=1, doc="MFCC coefficients averaged per segment (mfcc0 .. mfcc<n-1>)")
    backtrack: bool = _f(
        True,
        doc="move each onset back to the preceding energy minimum (the start of the event, not its peak)")
    delta: float = _f(
        0.07, min=0.0,
        doc="onset peak picking: threshold above the local mean of the normalised onset envelope")
    wait: float = _f(0.03, min=0.0, doc="s; onset peak picking: shortest time between two onsets")
    length: float | None = _f(
        None, min=0.001,
        doc="s; null: a segment runs from its onset to the next (the last to the end); a number: this long "
            "after each onset")
    silence_db: float = _f(
        -60.0, max=0.0, doc="dBFS; a recording whose peak is below this is reported 'silent' (nothing segmented)")
    ap_damping: float = _f(
        0.9, min=0.5, max=0.99,
        doc="affinity propagation damping (0.5 .. 0.99; higher is slower but more stable)")
    scatter: list[str] = _f(
        [],
        doc="two feature columns for the segment scatter (e.g. [zcr, rms]); []: the first two PCA components")
    click_freq: float = _f(1000.0, min=1.0, doc="Hz; pitch of the clicks marking a cluster's onsets")
    click_duration: float = _f(0.1, min=0.001, doc="s; length of each click")
    click_gain: float = _f(
        0.5, min=0.0,
        doc="click amplitude added to the recording (the mix is scaled down only if it would clip)")
    example_seconds: float = _f(
        8.0, min=1.0, doc="s; length of the generated rhythmic example (the input when no file is given)")


@dataclass
class GroupingConfig:
    pairs_csv: str | None = _f(
        None,
        doc="CSV of group,item pairs (playlist,song; session,recording), relative to the project root; "
            "null: no comparison")
    n_communities: int | None = _f(
        None, min=1,
        doc="communities to find (greedy modularity stopped at this number); null: Louvain decides (seeded)")


@dataclass
class ReportConfig:
    source: Literal["clustering", "autoencoder"] = _f(
        "clustering",
        doc="whose result the clusters and the sound map show: clustering (stage 04) | autoencoder (stage 05)")
    result: str | None = _f(
        None,
        doc="a row id of that stage's results.csv; null: the label-free pick (cluster.pick; stage 05: the selected "
            "row of its most stable model)")
    projection: Literal["tsne", "pca", "umap"] = _f(
        "tsne", doc="2-D projection of the sound map (seeded): tsne | pca | umap (umap-learn)")
    audio_seconds: float = _f(
        5.0, min=0.1,
        doc="s; each file's excerpt in the report starts at its beginning and lasts at most this long")
    audio_rate: int = _f(16000, min=4000, max=48000, doc="Hz; excerpts are mono at this rate")
    audio_format: Literal["ogg", "wav"] = _f(
        "ogg", doc="ogg (Vorbis, compressed) | wav (16-bit PCM, uncompressed)")
    thumbnail_feature: FeatureKind = _f(
        "mel", doc="the stage-03 PNG shown as each file's thumbnail (features.png must be true)")
    thumbnail_size: list[int] = _f(
        [128, 64], min=8, max=1024,
        doc="[width, height] of the thumbnails in pixels (time stretched to the width)")
    n_members: int = _f(
        6, min=1, doc="members closest to and farthest from each cluster's centre shown with players")
    max_files: int | None = _f(
        5000, min=10,
        doc="above this many files the map and the cluster sections show a seeded sample, every cluster in "
            "proportion (a sound map of 100,000 points helps nobody); null: all")


@dataclass
class ExperimentConfig:
    seeds: list[int] = _f(
        [], min=0,
        doc="replicates: stages 04 and 05 repeat their random parts (clusterers, samples, autoencoder training) "
            "with each seed and report mean ± sd; the first seed's partitions are the ones shown; []: one run "
            "with seed")


@dataclass
class Config:
    seed: int = _f(0, min=0, doc="feeds every random_state, seed_everything and sampler")
    experiment: ExperimentConfig = _section(
        ExperimentConfig, doc="replicates of a run (its name is --experiment / EXPERIMENT, not a key)")
    dataset: DatasetConfig = _section(
        DatasetConfig, doc="stage 01: the audio files of a dataset and their labels")
    audio: AudioConfig = _section(
        AudioConfig, doc="stages 02 and 03: sample rate, low-pass filter, silence threshold")
    features: FeaturesConfig = _section(
        FeaturesConfig, doc="stage 03: which features are written, STFT and mel parameters, PNG ranges")
    parallel: ParallelConfig = _section(
        ParallelConfig, doc="per-file stages: worker processes, Dask scheduler, batch size, retries")
    autoencoder: AutoencoderConfig = _section(
        AutoencoderConfig, doc="stage 05: autoencoder embedding + DCEC (architecture, input images, training)")
    embeddings: EmbeddingsConfig = _section(
        EmbeddingsConfig, doc="stage 03: pretrained audio models whose embeddings become features")
    cluster: ClusterConfig = _section(
        ClusterConfig,
        doc="stage 04: clusterers, k or its estimation, label-free selection, size limits, figures")
    views: ViewsConfig = _section(
        ViewsConfig, doc="stage 04: how each saved feature becomes one vector per file")
    images: ImagesConfig = _section(
        ImagesConfig,
        doc="stages 04 and 05: how a feature becomes an image of its time course (the image views and the "
            "autoencoder's input)")
    segments: SegmentsConfig = _section(
        SegmentsConfig, doc="segment clustering: the events inside one recording (notebook 07)")
    grouping: GroupingConfig = _section(
        GroupingConfig, doc="comparison of the audio clusters with an external grouping (notebook 06, report)")
    report: ReportConfig = _section(
        ReportConfig, doc="the offline HTML report results/<name>/report/index.html (notebook 06)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Keys that moved, and where to: a config file that still uses one gets a message saying so.
MOVED: dict[str, str] = {
    "views.image.trim_db": "images.trim_db", "views.image.per_file": "images.per_file",
    "autoencoder.trim_db": "images.trim_db", "autoencoder.per_file": "images.per_file",
}


# --------------------------------------------------------------------------- loading

def load_config(
    root: str | Path | None = None,
    dataset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    experiment: str | None = None,
) -> Config:
    """Build the configuration for one run.

    The files are merged in this order, each overriding the ones before: ``default.yaml``,
    ``<dataset>.yaml``, ``experiments/<experiment>.yaml``, ``config_file``, ``overrides``.

    Parameters
    ----------
    root : project folder holding ``configs/``; None uses only the built-in defaults.
    dataset : dataset name; ``<root>/configs/<dataset>.yaml`` is merged when it exists.
    config_file : an extra YAML file of overrides.
    overrides : ``["features.n_fft=1024", ...]`` (values parsed as YAML) or a dotted dict.
    experiment : an experiment's name; ``<root>/configs/experiments/<experiment>.yaml`` is merged after the
        dataset's file when it exists, so an experiment's settings can be kept under its name.
    """
    cfg = Config()
    sources: list[tuple[str, Any]] = []
    if root is not None:
        configs = Path(root) / "configs"
        for path in (configs / "default.yaml", configs / f"{dataset}.yaml" if dataset else None,
                     configs / "experiments" / f"{experiment}.yaml" if experiment else None):
            if path is not None and path.is_file():
                sources.append((str(path), _read_yaml(path)))
    if config_file is not None:
        path = Path(config_file).expanduser()
        if not path.is_file():
            where = "" if path.is_absolute() else f" (a relative path is read from the current folder, {Path.cwd()})"
            raise ConfigError(f"config file {path.absolute()} does not exist{where}")
        sources.append((str(path), _read_yaml(path)))
    if overrides:
        items = overrides.items() if isinstance(overrides, dict) else map(_parse_set, overrides)
        nested: dict[str, Any] = {}
        for key, value in items:
            node = nested
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        sources.append(("--set", nested))
    for origin, data in sources:
        _apply(cfg, data, prefix="", origin=origin)
    _check_cross_fields(cfg)
    if root is not None:  # a model's path may be relative to the project root: from here on it is absolute
        for entry in cfg.embeddings.models:
            if isinstance(entry, dict) and entry.get("path") and not Path(entry["path"]).expanduser().is_absolute():
                entry["path"] = str((Path(root) / entry["path"]).resolve())
    return cfg


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded): save it as UTF-8 "
                          "YAML") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys, not {type(data).__name__}")
    return data


def _parse_set(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set expects key=value (e.g. features.n_fft=1024), got {item!r}")
    key, raw = item.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        problem = str(getattr(exc, "problem", "") or exc).strip()
        raise ConfigError(f"--set {item!r}: the value is not valid YAML ({problem}); lists are written "
                          "[a, b], strings with special characters in quotes") from None


def _apply(obj: Any, data: dict[str, Any], prefix: str, origin: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    hints = typing.get_type_hints(type(obj))
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in fields:
            allowed = ", ".join(prefix + k for k in fields)
            if name in MOVED:
                raise ConfigError(f"config key '{name}' (from {origin}) is now '{MOVED[name]}': one setting for the "
                                  "image views and the autoencoder's input; rename it")
            raise ConfigError(f"unknown config key '{name}' (from {origin}); allowed keys here: {allowed}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{name}' (from {origin}) is a section: give a mapping of its keys")
            _apply(current, value, prefix=f"{name}.", origin=origin)
            continue
        setattr(obj, key, _coerce(value, hints[key], fields[key].metadata, name, origin))


def _coerce(value: Any, hint: Any, bounds: Any, name: str, origin: str) -> Any:
    """Check ``value`` against the type ``hint`` and bounds; return it normalised."""
    def fail(expected: str) -> ConfigError:
        return ConfigError(f"config key '{name}' (from {origin}) = {value!r} is not allowed; expected {expected}")

    origin_t = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin_t in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for alternative in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, alternative, bounds, name, origin)
            except ConfigError as exc:
                errors.append(str(exc).split("expected ", 1)[-1])
        raise fail(" or ".join(errors) + (" or null" if type(None) in args else ""))
    if origin_t is Literal:
        if value not in args:
            raise fail("one of " + ", ".join(map(repr, args)))
        return value
    if origin_t is list:
        if not isinstance(value, list):
            raise fail("a list")
        return [_coerce(v, args[0], bounds, f"{name}[{i}]", origin) for i, v in enumerate(value)]
    if origin_t is dict:
        if not isinstance(value, dict):
            raise fail("a mapping")
        return {str(k): _coerce(v, args[1], bounds, f"{name}.{k}", origin) for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if "min" in bounds and value < bounds["min"]:
        raise fail(f"a value >= {bounds['min']}")
    if "max" in bounds and value > bounds["max"]:
        raise fail(f"a value <= {bounds['max']}")
    return value


def _check_cross_fields(cfg: Config) -> None:
    f = cfg.features
    if f.hop_length > f.n_fft:
        raise ConfigError(f"config key 'features.hop_length' = {f.hop_length} must be <= features.n_fft ({f.n_fft})")
    if f.fmax is not None and f.fmax <= f.fmin:
        raise ConfigError(f"config key 'features.fmax' = {f.fmax} must be > features.fmin ({f.fmin})")
    for kind, rng in f.png_ranges.items():
        if kind not in FEATURE_KINDS:
            raise ConfigError(f"unknown feature '{kind}' in 'features.png_ranges'; allowed: {', '.join(FEATURE_KINDS)}")
        if len(rng) != 2 or rng[0] >= rng[1]:
            raise ConfigError(f"config key 'features.png_ranges.{kind}' = {rng} must be [low, high] with low < high")
    missing = set(FEATURE_KINDS) - set(f.png_ranges)
    if missing:
        raise ConfigError(f"'features.png_ranges' lacks a range for: {', '.join(sorted(missing))}")
    if cfg.dataset.labels == "regex" and not cfg.dataset.label_regex:
        raise ConfigError("config key 'dataset.labels' = 'regex' needs 'dataset.label_regex' (a regex with one group)")
    if cfg.dataset.labels == "csv" and not cfg.dataset.label_csv:
        raise ConfigError("config key 'dataset.labels' = 'csv' needs 'dataset.label_csv' (a CSV of path,label)")
    v = cfg.views
    for kind in cfg.images.per_file:
        if kind not in FEATURE_KINDS:
            raise ConfigError(f"unknown feature '{kind}' in 'images.per_file'; allowed: {', '.join(FEATURE_KINDS)}")
    _check_embedding_models(cfg.embeddings.models)
    for name in ("stats", "image", "descriptors", "embedding"):
        pca = getattr(v, name).pca
        if pca is not None and pca >= 1 and pca != int(pca):
            raise ConfigError(f"config key 'views.{name}.pca' = {pca} must be a fraction of variance in (0, 1) "
                              "or a whole number of components")
    seeds = cfg.experiment.seeds
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"config key 'experiment.seeds' = {seeds} repeats a seed: each replicate needs its own")
    c = cfg.cluster
    if c.k_min > c.k_max:
        raise ConfigError(f"config key 'cluster.k_min' = {c.k_min} must be <= cluster.k_max ({c.k_max})")
    unknown = sorted(set(c.grids) - set(ALGORITHMS))
    if unknown:
        raise ConfigError(f"unknown algorithm {unknown[0]!r} in 'cluster.grids'; allowed: {', '.join(ALGORITHMS)}")

    models = {m if isinstance(m, str) else m.get("name") for m in cfg.embeddings.models}
    for feature in cfg.autoencoder.features:
        if feature not in FEATURE_KINDS and feature not in models and feature != EVERY_EMBEDDING:
            raise ConfigError(f"config key 'autoencoder.features' lists {feature!r}: neither a feature "
                              f"({', '.join(FEATURE_KINDS)}), a model of embeddings.models nor "
                              f"{EVERY_EMBEDDING!r} (every model of embeddings.models)")
    if "kmeans" not in cfg.autoencoder.algorithms:
        raise ConfigError(f"config key 'autoencoder.algorithms' = {cfg.autoencoder.algorithms} must list kmeans: "
                          "DCEC starts from its centres")
    if len(cfg.autoencoder.input_size) != 2:
        raise ConfigError(f"config key 'autoencoder.input_size' = {cfg.autoencoder.input_size} must be [time, frequency]")
    sg = cfg.segments
    if sg.hop_length > sg.n_fft:
        raise ConfigError(f"config key 'segments.hop_length' = {sg.hop_length} must be <= segments.n_fft ({sg.n_fft})")
    if sg.scatter and len(sg.scatter) != 2:
        raise ConfigError(f"config key 'segments.scatter' = {sg.scatter} must name two feature columns "
                          "(e.g. [zcr, rms]) or be [] for the first two PCA components")
    if len(cfg.report.thumbnail_size) != 2:
        raise ConfigError(f"config key 'report.thumbnail_size' = {cfg.report.thumbnail_size} must be [width, height]")


#: names an embedding model cannot take: the features' folders and the views' own words
_RESERVED_NAMES = frozenset(FEATURE_KINDS) | {"descriptors", "views", "store", "embeddings"}


def _check_embedding_models(models: list[Any]) -> None:
    """Each entry of ``embeddings.models`` is a shipped name or a mapping with a usable name and type."""
    names: list[str] = []
    for i, entry in enumerate(models):
        where = f"config key 'embeddings.models[{i}]'"
        if isinstance(entry, str):
            if entry not in SHIPPED_EMBEDDINGS:
                raise ConfigError(f"{where} = {entry!r} is not a shipped model ({', '.join(SHIPPED_EMBEDDINGS)}); "
                                  "for a local checkpoint give a mapping {name, type, path}")
            names.append(entry)
            continue
        unknown = sorted(set(entry) - set(EMBEDDING_MODEL_KEYS))
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {', '.join(unknown)}; allowed: "
                              f"{', '.join(EMBEDDING_MODEL_KEYS)}")
        name, kind = entry.get("name"), entry.get("type")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in _RESERVED_NAMES:
            raise ConfigError(f"{where} needs a 'name' of lower-case letters, digits and _ (it names the feature "
                              f"folder and the view), not one of {', '.join(sorted(_RESERVED_NAMES))}; got {name!r}")
        if kind not in EMBEDDING_TYPES:
            raise ConfigError(f"{where} 'type' = {kind!r}; choose one of {', '.join(EMBEDDING_TYPES)}")
        if kind in SHIPPED_EMBEDDINGS and entry.get("path") is not None:
            raise ConfigError(f"{where}: {kind} ships with its weights; leave 'path' out")
        if kind not in SHIPPED_EMBEDDINGS and not entry.get("path"):
            raise ConfigError(f"{where}: a {kind} model needs 'path' (its directory or file on this disk)")
        if kind in ("torchscript", "onnx") and not entry.get("sample_rate"):
            raise ConfigError(f"{where}: a {kind} model needs 'sample_rate' (the rate it expects, in Hz)")
        for key in ("layer", "sample_rate", "batch_size"):
            value = entry.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or (key != "layer" and value < 1)):
                raise ConfigError(f"{where} '{key}' = {value!r} must be a{' positive' if key != 'layer' else 'n'} "
                                  "integer")
        names.append(name)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"config key 'embeddings.models' names {', '.join(twice)} twice: give each model its "
                          "own name")


# --------------------------------------------------------------------------- hashing

def section_hash(cfg: Config, *sections: str, extra: Any = None) -> str:
    """Short, stable hash of the named config sections (the cache key of a stage)."""
    payload = {s: getattr(cfg, s) if s == "seed" else dataclasses.asdict(getattr(cfg, s)) for s in sections}
    if extra is not None:
        payload["extra"] = extra
    return stable_hash(payload)


# --------------------------------------------------------------------------- schema and default.yaml

#: Order of the top-level keys in ``configs/default.yaml`` and the reference (stage order: 04
#: before 05). The dataclass field order of :class:`Config` stays as it is; nested keys follow
#: their dataclass.
YAML_ORDER: tuple[str, ...] = ("seed", "experiment", "dataset", "audio", "features", "embeddings", "parallel",
                               "cluster", "autoencoder", "views", "images", "segments", "grouping", "report")

YAML_HEADER: tuple[str, ...] = (
    "audioclust defaults: every parameter, its default and what it does.",
    "Generated from the schema in src/audioclust/config.py: do not edit by hand, regenerate with",
    "  python -m audioclust.config > configs/default.yaml",
    "(a test checks that this file is the generated one).",
    "configs/<dataset>.yaml holds only the overrides for one dataset;",
    "`--set section.key=value` overrides on the command line.",
)

_COMMENT_COLUMN = 29  # the '#' of a key's comment stands in this column when the key is short enough


@dataclass(frozen=True)
class KeySpec:
    """One key of the schema: a section (``hint`` is its dataclass) or a value."""

    path: tuple[str, ...]
    hint: Any
    default: Any          # the default value; None for a section
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    items: Mapping[str, str] = dataclasses.field(default_factory=dict)  # docs of a mapping's entries

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def is_section(self) -> bool:
        return isinstance(self.hint, type) and dataclasses.is_dataclass(self.hint)


def schema(cls: type = Config, prefix: tuple[str, ...] = ()) -> Iterator[KeySpec]:
    """Every key of the configuration, sections before their keys, in ``configs/default.yaml`` order."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    order = YAML_ORDER if cls is Config else tuple(fields)
    if sorted(order) != sorted(fields):
        raise AssertionError(f"YAML_ORDER {order} does not list the fields of {cls.__name__}: {tuple(fields)}")
    hints = typing.get_type_hints(cls)
    instance = cls()
    for name in order:
        f = fields[name]
        meta = f.metadata
        if "doc" not in meta or not str(meta["doc"]).strip() or "\n" in meta["doc"]:
            raise AssertionError(f"config key {'.'.join((*prefix, name))} needs a one-line doc in its field")
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            yield KeySpec(path=(*prefix, name), hint=hint, default=None, doc=meta["doc"])
            yield from schema(hint, (*prefix, name))
        else:
            yield KeySpec(path=(*prefix, name), hint=hint, default=getattr(instance, name), doc=meta["doc"],
                          minimum=meta.get("min"), maximum=meta.get("max"), items=meta.get("items", {}))


def yaml_value(value: Any) -> str:
    """``value`` as one line of YAML in flow style (``[a, b]``, ``{k: v}``, ``null``, ``1.0e-05``)."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, allow_unicode=True,
                          width=float("inf")).rstrip("\n")
    return text[:-4] if text.endswith("\n...") else text


def _commented(head: str, doc: str) -> str:
    pad = max(_COMMENT_COLUMN - len(head), 2) if doc else 0
    return f"{head}{' ' * pad}# {doc}" if doc else head


def default_yaml() -> str:
    """The text of ``configs/default.yaml``: every key, its default and its doc as a comment."""
    lines = [f"# {line}".rstrip() for line in YAML_HEADER]
    for spec in schema():
        indent = "  " * (len(spec.path) - 1)
        key = spec.path[-1]
        if len(spec.path) == 1:
            lines.append("")
        if spec.is_section:
            lines.append(_commented(f"{indent}{key}:", spec.doc))
        elif spec.items and isinstance(spec.default, dict) and spec.default:
            lines.append(_commented(f"{indent}{key}:", spec.doc))
            for item, value in spec.default.items():
                lines.append(_commented(f"{indent}  {item}: {yaml_value(value)}", spec.items.get(item, "")))
        else:
            lines.append(_commented(f"{indent}{key}: {yaml_value(spec.default)}", spec.doc))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.buffer.write(default_yaml().encode("utf-8"))
