"""Typed configuration: dataclass schema, YAML merge and validation.

Precedence, lowest first: the dataclass defaults below (mirrored, with comments,
in ``configs/default.yaml``), ``<root>/configs/default.yaml``,
``<root>/configs/<dataset>.yaml``, an explicit ``--config`` file, ``--set key=value``.
Unknown keys and bad values raise :class:`ConfigError` naming the key before any work.

Each field's ``metadata`` may hold ``min``/``max`` bounds; ``Literal`` types list the
allowed values. A stage's cache key is :func:`section_hash` of the sections it reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from .errors import ConfigError

FeatureKind = Literal["spectrogram", "mel", "chroma", "mfcc", "mfcc_no_c0"]
FEATURE_KINDS: tuple[str, ...] = typing.get_args(FeatureKind)


def _f(default: Any, **bounds: float) -> Any:
    """A field with a default (copied if mutable) and optional min/max bounds."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: json.loads(json.dumps(default)), metadata=bounds)
    return field(default=default, metadata=bounds)


@dataclass
class DatasetConfig:
    labels: Literal["folder", "regex", "csv", "none"] = "folder"
    label_regex: str | None = None
    label_csv: str | None = None
    extensions: list[str] = _f(["wav", "flac", "ogg", "mp3", "aiff", "aif", "au"])
    ffmpeg_extensions: list[str] = _f(["m4a", "aac", "wma", "opus", "webm", "mp4"])
    max_duration: float | None = _f(3600.0, min=0.001)


@dataclass
class AudioConfig:
    sample_rate: int = _f(22050, min=1000, max=384000)
    cutoff: float | None = _f(8192.0, min=1.0)
    order: int = _f(8, min=1, max=32)
    silence_db: float = _f(-60.0, max=0.0)


@dataclass
class FeaturesConfig:
    kinds: list[FeatureKind] = _f(list(FEATURE_KINDS))
    n_fft: int = _f(2048, min=16)
    hop_length: int = _f(512, min=1)
    n_mels: int = _f(128, min=1)
    n_mfcc: int = _f(20, min=2)
    n_chroma: int = _f(12, min=1)
    mfcc_top_db: float | None = _f(80.0, min=1.0)
    fmin: float = _f(0.0, min=0.0)
    fmax: float | None = _f(None, min=1.0)
    png: bool = True
    png_ranges: dict[str, list[float]] = _f({
        "spectrogram": [-80.0, 60.0],
        "mel": [-80.0, 50.0],
        "chroma": [0.0, 1.0],
        "mfcc": [-800.0, 400.0],
        "mfcc_no_c0": [-400.0, 400.0],
    })


@dataclass
class ParallelConfig:
    n_jobs: int = _f(2, min=-1)
    scheduler: str | None = None
    batch_size: int = _f(16, min=1)
    retries: int = _f(2, min=0)


ViewFeature = Literal["spectrogram", "mel", "chroma", "mfcc", "mfcc_no_c0", "descriptors"]
PerFile = Literal["none", "peak", "mean", "meanvar"]


@dataclass
class StatsViewConfig:
    trim_db: float | None = _f(None, min=0.0)
    clip: float | None = _f(None, min=0.1)
    pca: float | None = _f(0.95, min=1e-6)
    whiten: bool = True
    umap: int | None = _f(None, min=1)


@dataclass
class ImageViewConfig:
    trim_db: float | None = _f(20.0, min=0.0)
    n_frames: int = _f(8, min=1)
    per_file: dict[str, PerFile] = _f(
        {"spectrogram": "peak", "mel": "peak", "mfcc": "meanvar", "mfcc_no_c0": "meanvar"})
    clip: float | None = _f(None, min=0.1)
    pca: float | None = _f(40.0, min=1e-6)
    whiten: bool = False
    umap: int | None = _f(None, min=1)


@dataclass
class DescriptorsViewConfig:
    clip: float | None = _f(5.0, min=0.1)
    pca: float | None = _f(None, min=1e-6)
    whiten: bool = False
    umap: int | None = _f(None, min=1)


@dataclass
class ViewsConfig:
    features: list[ViewFeature] = _f(["mel", "mfcc", "mfcc_no_c0", "chroma", "spectrogram", "descriptors"])
    kinds: list[Literal["stats", "image"]] = _f(["stats", "image"])
    sources: list[Literal["npy", "png"]] = _f(["npy", "png"])
    max_bins: int = _f(128, min=1)
    store: bool = True
    scale: Literal["standard", "minmax", "none"] = "standard"
    umap_neighbors: int = _f(50, min=2)
    umap_min_dist: float = _f(0.0, min=0.0)
    umap_max_samples: int | None = _f(20000, min=10)
    stats: StatsViewConfig = field(default_factory=StatsViewConfig)
    image: ImageViewConfig = field(default_factory=ImageViewConfig)
    descriptors: DescriptorsViewConfig = field(default_factory=DescriptorsViewConfig)


AlgorithmName = Literal["kmeans", "minibatch_kmeans", "fcm", "gmm", "agglomerative", "spectral",
                        "birch", "dbscan", "hdbscan", "affinity_propagation"]
ALGORITHMS: tuple[str, ...] = typing.get_args(AlgorithmName)
KMethod = Literal["elbow", "silhouette", "davies_bouldin", "calinski_harabasz", "gap"]
K_METHODS: tuple[str, ...] = typing.get_args(KMethod)


@dataclass
class ClusterConfig:
    algorithms: list[AlgorithmName] = _f(["kmeans", "fcm", "agglomerative", "spectral", "hdbscan"])
    k: int | Literal["auto"] = _f("auto", min=2)
    k_min: int = _f(2, min=1)
    k_max: int = _f(10, min=1)
    k_methods: list[KMethod] = _f(list(K_METHODS))
    gap_references: int = _f(10, min=1)
    criterion: Literal["silhouette", "calinski_harabasz", "davies_bouldin", "stability"] = "stability"
    tune_criterion: Literal["silhouette", "calinski_harabasz", "davies_bouldin", "stability"] = "silhouette"
    stability_resamples: int = _f(5, min=1)
    stability_max_samples: int | None = _f(3000, min=10)
    tune: bool = True
    n_init: int = _f(10, min=1)
    fcm_m: float | Literal["auto"] = _f("auto", min=1.01)
    fcm_error: float = _f(1e-5, min=0.0)
    fcm_maxiter: int = _f(1000, min=1)
    dbscan_eps: float | None = _f(None, min=1e-12)
    dbscan_min_samples: int = _f(5, min=1)
    hdbscan_min_cluster_size: int = _f(5, min=2)
    max_samples_quadratic: int = _f(5000, min=2)
    max_samples_slow: int = _f(20000, min=2)
    silhouette_sample_size: int | None = _f(2000, min=2)
    grids: dict[str, dict[str, list[Any]]] = _f({})
    figures: bool = True
    tsne: bool = True
    tsne_max_samples: int | None = _f(5000, min=10)
    kselect_max_samples: int | None = _f(1000, min=10)
    min_cluster_share: float = _f(0.1, min=0.0, max=1.0)
    max_noise_share: float = _f(0.5, min=0.0, max=1.0)


@dataclass
class AutoencoderConfig:
    enabled: bool = True
    architecture: Literal["dcec", "conv4", "vae"] = "dcec"
    features: list[FeatureKind] = _f(["mel", "mfcc"])
    source: Literal["npy", "png"] = "npy"
    input_size: list[int] = _f([96, 48], min=1)
    scale: Literal["percentile", "minmax", "none"] = "percentile"
    trim_db: float | None = _f(20.0, min=0.0)
    per_file: dict[str, PerFile] = _f(
        {"spectrogram": "peak", "mel": "peak", "mfcc": "meanvar", "mfcc_no_c0": "meanvar"})
    latent_dims: list[int] = _f([10], min=1)
    batch_size: int = _f(64, min=1)
    max_epochs: int = _f(25, min=1)
    patience: int = _f(2, min=1)
    min_delta: float = _f(1e-4, min=0.0)
    lr: float = _f(1e-3, min=1e-7, max=1.0)
    lr_factor: float = _f(0.5, min=0.01, max=0.99)
    lr_patience: int = _f(1, min=0)
    val_fraction: float = _f(0.1, min=0.0, max=0.5)
    num_workers: int = _f(0, min=0)
    num_threads: int = _f(0, min=0)
    beta: float = _f(1.0, min=0.0)
    update_interval: int = _f(50, min=1)
    gamma: float = _f(0.1, min=0.0)
    dcec_lr: float = _f(1e-4, min=1e-7, max=1.0)
    tol: float = _f(0.001, min=0.0, max=1.0)
    max_iter: int = _f(400, min=1)
    alpha: float = _f(1.0, min=1e-6)
    kmeans_n_init: int = _f(20, min=1)


SegmentAlgorithm = Literal["kmeans", "affinity_propagation"]


@dataclass
class SegmentsConfig:
    algorithms: list[SegmentAlgorithm] = _f(["kmeans", "affinity_propagation"])
    k: int = _f(4, min=2)
    n_fft: int = _f(2048, min=16)
    hop_length: int = _f(256, min=1)
    n_mels: int = _f(64, min=1)
    n_mfcc: int = _f(13, min=1)
    backtrack: bool = True
    delta: float = _f(0.07, min=0.0)
    wait: float = _f(0.03, min=0.0)
    length: float | None = _f(None, min=0.001)
    silence_db: float = _f(-60.0, max=0.0)
    ap_damping: float = _f(0.9, min=0.5, max=0.99)
    scatter: list[str] = _f([])
    click_freq: float = _f(1000.0, min=1.0)
    click_duration: float = _f(0.1, min=0.001)
    click_gain: float = _f(0.5, min=0.0)
    example_seconds: float = _f(8.0, min=1.0)


@dataclass
class GroupingConfig:
    pairs_csv: str | None = None
    n_communities: int | None = _f(None, min=1)


@dataclass
class ReportConfig:
    source: Literal["clustering", "autoencoder"] = "clustering"
    result: str | None = None
    projection: Literal["tsne", "pca", "umap"] = "tsne"
    audio_seconds: float = _f(5.0, min=0.1)
    audio_rate: int = _f(16000, min=4000, max=48000)
    audio_format: Literal["ogg", "wav"] = "ogg"
    thumbnail_feature: FeatureKind = "mel"
    thumbnail_size: list[int] = _f([128, 64], min=8, max=1024)
    n_members: int = _f(6, min=1)
    max_files: int | None = _f(5000, min=10)


@dataclass
class Config:
    seed: int = _f(0, min=0)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    views: ViewsConfig = field(default_factory=ViewsConfig)
    segments: SegmentsConfig = field(default_factory=SegmentsConfig)
    grouping: GroupingConfig = field(default_factory=GroupingConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- loading

def load_config(
    root: str | Path | None = None,
    dataset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> Config:
    """Build the configuration for one run.

    Parameters
    ----------
    root : project folder holding ``configs/``; None uses only the built-in defaults.
    dataset : dataset name; ``<root>/configs/<dataset>.yaml`` is merged when it exists.
    config_file : an extra YAML file of overrides.
    overrides : ``["features.n_fft=1024", ...]`` (values parsed as YAML) or a dotted dict.
    """
    cfg = Config()
    sources: list[tuple[str, Any]] = []
    if root is not None:
        for path in (Path(root) / "configs" / "default.yaml",
                     Path(root) / "configs" / f"{dataset}.yaml" if dataset else None):
            if path is not None and path.is_file():
                sources.append((str(path), _read_yaml(path)))
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
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
    for kind in v.image.per_file:
        if kind not in FEATURE_KINDS:
            raise ConfigError(f"unknown feature '{kind}' in 'views.image.per_file'; allowed: {', '.join(FEATURE_KINDS)}")
    for name in ("stats", "image", "descriptors"):
        pca = getattr(v, name).pca
        if pca is not None and pca >= 1 and pca != int(pca):
            raise ConfigError(f"config key 'views.{name}.pca' = {pca} must be a fraction of variance in (0, 1) "
                              "or a whole number of components")
    c = cfg.cluster
    if c.k_min > c.k_max:
        raise ConfigError(f"config key 'cluster.k_min' = {c.k_min} must be <= cluster.k_max ({c.k_max})")
    unknown = sorted(set(c.grids) - set(ALGORITHMS))
    if unknown:
        raise ConfigError(f"unknown algorithm {unknown[0]!r} in 'cluster.grids'; allowed: {', '.join(ALGORITHMS)}")

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

# --------------------------------------------------------------------------- hashing

def section_hash(cfg: Config, *sections: str, extra: Any = None) -> str:
    """Short, stable hash of the named config sections (the cache key of a stage)."""
    payload = {s: getattr(cfg, s) if s == "seed" else dataclasses.asdict(getattr(cfg, s)) for s in sections}
    if extra is not None:
        payload["extra"] = extra
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
