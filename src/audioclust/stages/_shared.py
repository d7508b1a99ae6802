"""What the stages share: the config turned into the plain arguments of the layers below.

Only the stages and the command line read the config; every function here takes it and
hands the lower layers what they need (:class:`~audioclust.core.parallel.Workers`, a
views' settings, an estimator's parameters, k).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import pandas as pd

from audioclust.clustering.kselect import KSelection, estimate_k
from audioclust.clustering.registry import check_params, get_spec
from audioclust.config import ClusterConfig, Config, section_hash
from audioclust.core.paths import ProjectPaths
from audioclust.core.parallel import Workers
from audioclust.dsp.extraction import ANALYSIS_PARAMS
from audioclust.embed.fingerprint import model_key
from audioclust.embed.spec import ModelSpec
from audioclust.represent.vectors import ViewsSettings
from audioclust.results import read_recording_traits

log = logging.getLogger(__name__)


def analysis_params(cfg: Config) -> dict[str, Any]:
    """The keyword arguments of :func:`audioclust.dsp.extraction.analyse` from the ``features`` section."""
    return {name: getattr(cfg.features, name) for name in ANALYSIS_PARAMS}


def views_settings(cfg: Config) -> ViewsSettings:
    """What building views needs from the config (:class:`~audioclust.represent.vectors.ViewsSettings`)."""
    return ViewsSettings(feature_kinds=tuple(cfg.features.kinds), png_ranges=dict(cfg.features.png_ranges),
                         views=cfg.views, images=cfg.images, autoencoder=cfg.autoencoder, seed=cfg.seed,
                         analysis={"features": dataclasses.asdict(cfg.features), "audio": dataclasses.asdict(cfg.audio)},
                         embeddings={spec.name: embedding_key(cfg, spec) for spec in embedding_models(cfg)})


def embedding_models(cfg: Config) -> list[ModelSpec]:
    """The models of ``embeddings.models`` as :class:`~audioclust.embed.base.ModelSpec` (a shipped name
    becomes a spec of its own type; a model without ``batch_size`` takes ``embeddings.batch_size``)."""
    specs = []
    for entry in cfg.embeddings.models:
        entry = {"name": entry, "type": entry} if isinstance(entry, str) else dict(entry)
        entry["batch_size"] = entry.get("batch_size") or cfg.embeddings.batch_size
        specs.append(ModelSpec(**entry))
    return specs


def embedding_key(cfg: Config, spec: ModelSpec) -> str:
    """What one model's saved frames depend on: the model (:func:`~audioclust.embed.fingerprint.model_key`)
    and the stage-02 audio it hears (``audio`` section)."""
    return model_key(spec) + "-" + section_hash(cfg, "audio")


def workers(cfg: Config) -> Workers:
    """Where the stages' parallel maps run: ``parallel.n_jobs`` processes, or ``parallel.scheduler``."""
    return Workers(**dataclasses.asdict(cfg.parallel))


def choose_k(cfg: Config, X) -> tuple[int | None, str, KSelection | None]:
    """k for one matrix: ``cluster.k`` when given, else the consensus of :func:`estimate_k`.

    Stage 04 calls it per view, stage 05 per embedding. The criteria see a seeded sample
    of ``cluster.kselect_max_samples`` rows when X has more.

    Returns
    -------
    (k, ``"given"`` or ``"auto"``, the :class:`KSelection` or None); k is None (with
    ``"auto"``) when X has fewer than 3 rows, too few to compare two partitions.
    """
    c = cfg.cluster
    if c.k != "auto":
        return c.k, "given", None
    X = np.asarray(X)
    n = X.shape[0]
    if n < 3:
        return None, "auto", None
    if c.kselect_max_samples is not None and n > c.kselect_max_samples:
        X = X[np.sort(np.random.default_rng(cfg.seed).choice(n, size=c.kselect_max_samples, replace=False))]
    selection = estimate_k(X, range(c.k_min, c.k_max + 1), random_state=cfg.seed, methods=c.k_methods,
                           sample_size=c.silhouette_sample_size, n_init=c.n_init, n_references=c.gap_references)
    return selection.consensus, "auto", selection


def params_from_config(cfg: ClusterConfig) -> dict[str, dict[str, Any]]:
    """Fixed parameters per algorithm from the ``cluster`` config section (for ``make``/``select_params``)."""
    return {
        "kmeans": {"n_init": cfg.n_init},
        "gmm": {"n_init": cfg.n_init},
        "spectral": {"n_init": cfg.n_init},
        "fcm": {"m": cfg.fcm_m, "error": cfg.fcm_error, "maxiter": cfg.fcm_maxiter},
        "dbscan": {"eps": cfg.dbscan_eps, "min_samples": cfg.dbscan_min_samples},
        "hdbscan": {"min_cluster_size": cfg.hdbscan_min_cluster_size},
        "birch": {"max_subclusters": cfg.max_samples_quadratic},
    }


def grid_from_config(cfg: ClusterConfig, name: str) -> dict[str, list[Any]]:
    """Grid searched for ``name``: ``{}`` when ``cfg.tune`` is false, else ``cfg.grids[name]`` or the built-in one."""
    if not cfg.tune:
        return {}
    grid = cfg.grids.get(name, get_spec(name).grid)
    check_params(name, dict.fromkeys(grid))
    return dict(grid)


def given_k(cfg: Config) -> int | None:
    """``cluster.k`` when the researcher gave a number, None when it is ``auto``."""
    return None if cfg.cluster.k == "auto" else int(cfg.cluster.k)


def band_limit_hz(cfg: Config) -> float:
    """The highest frequency stage 02 keeps, in Hz: ``audio.cutoff`` when it lies below the Nyquist frequency of
    ``audio.sample_rate``, else that frequency."""
    nyquist = cfg.audio.sample_rate / 2
    return nyquist if cfg.audio.cutoff is None else min(float(cfg.audio.cutoff), nyquist)


def recording_traits(cfg: Config, paths: ProjectPaths, table: pd.DataFrame) -> pd.DataFrame:
    """:func:`~audioclust.results.read_recording_traits` of the files of ``table``, their band up to what stage 02
    keeps."""
    return read_recording_traits(paths, table, band_limit_hz(cfg))


def followed_traits_warnings(structures: pd.DataFrame, stage: str, table: str) -> list[str]:
    """A warning per structure whose clusters follow a recording trait (the ``follows`` column of ``table``,
    :func:`~audioclust.clustering.traits.mark_followed_traits`), for the stage to log."""
    return [f"{stage}: structure {s['structure']} ({s['features']}) follows how the files were stored (AMI with "
            f"{s['follows']}): its clusters may set the sources apart rather than the sounds; see the follows column "
            f"of {table}" for _, s in structures[structures["follows"].fillna("") != ""].iterrows()]
