"""Stage 05: a convolutional autoencoder's embedding, clustered by K-Means, spectral clustering and DCEC.

For each feature of ``autoencoder.features`` (its stage-03 ``autoencoder.source`` files,
NPY arrays or PNG images, of every ``ok`` row of ``features.csv``) and each size of
``autoencoder.latent_dims`` (a model of ``embeddings.models`` listed there, or every embedded one
through ``embeddings``, instead gets DEC: the fully connected autoencoder ``mlp`` on its embedding
view, the matrix stage 04 clusters, then the same clusterers and clustering stage):

0. Each file becomes a (T, F) image (:func:`audioclust.dsp.images.fixed_size_image`): trimmed
   to its active region (``images.trim_db``, decided on the mel spectrogram:
   :func:`~audioclust.stages._autoencoder_inputs.level_arrays`), normalised per file (``images.per_file``: dB re the file's
   peak for spectrograms, CMVN for MFCC) and resized to ``autoencoder.input_size``; then one
   dataset-wide map onto [0, 1] (``autoencoder.scale``). So the autoencoder spends its
   capacity on the sound's spectral shape and time course, not on its level, its leading
   silence or its duration.

1. Pre-train ``autoencoder.architecture`` on reconstruction for as long as the training profile of
   the device allows (``autoencoder.profile``: :mod:`audioclust.deep.schedule`), or reuse its checkpoint
   in ``checkpoints/<name>/`` when data, parameters, schedule, seed, training device and
   ``autoencoder.deterministic`` are unchanged (:func:`audioclust.deep.train.train_autoencoder`;
   Lightning logs in ``logs/<name>/``).
2. Embed every file and choose k: ``cluster.k`` when given, else the consensus of the
   k-selection criteria on the embedding, with stage 04's settings (``cluster.k_min`` ..
   ``k_max``, ``k_methods``, a seeded sample of ``cluster.kselect_max_samples`` files).
   Labels never choose k.
3. ``ae_kmeans``: K-Means on the embedding (``autoencoder.kmeans_n_init`` restarts, seeded), and the other
   clusterers of ``autoencoder.algorithms`` (``ae_spectral``: stage 04's spectral clustering), each with its
   stability gain (``stability``: :func:`audioclust.clustering.tuning.stability_gain`, with
   ``autoencoder.stability_resamples`` and ``cluster.stability_max_samples``); the model's
   (``latent_stability``) is its most stable clusterer's.
4. ``dcec``: the DCEC clustering stage (:func:`audioclust.deep.train.run_dcec`), which starts
   from the centres of that K-Means, for at most ``autoencoder.max_iter`` batches (null: the profile's for the
   number of files, :func:`audioclust.deep.schedule.dcec_batches`).
5. Scores as in stage 04: internal ones on the embedding that was clustered (the
   pre-trained one for the ``ae_`` rows, DCEC's fine-tuned one for ``dcec``), external ones
   on the labelled files. Per feature, the latent size is chosen by the model's stability
   (:func:`audioclust.clustering.selection.chosen_latents`; ``latent_chosen``), and ``selected`` marks its
   row with the better ``cluster.criterion`` of K-Means and DCEC, or its spectral row when that partitions the
   embedding more stably than K-Means by over 0.02 (:func:`audioclust.clustering.selection.selectable_clusterings`;
   labels unused). ``pick`` marks the one selected row, across features, that the report and a user without
   labels get. With ``cluster.k`` given it is the most stable model's (equally stable ones: the partition the
   other features' rows agree with most; :func:`audioclust.clustering.structures.picked_model`). The selected
   rows whose partitions agree form structures, as in stage 04 (``cluster.structure_agreement``;
   :func:`audioclust.clustering.structures.mark_autoencoder_choices`): the pick's structure and the others, the
   alternatives a user may have meant. At ``k: auto``, where each model estimates its own k and gains at
   different k do not compare, the pick is the representative of the structure most selected rows agree on.
   ``cluster.focus`` (the user's prior) limits the structures and the pick to the models it names.

Outputs in ``results/<name>/autoencoder/``:

- ``results.csv``: one row per feature × latent size × stage (:data:`AUTOENCODER_COLUMNS`; the
  columns of stage 04's table plus ``architecture, latent_dim, stage, stability, latent_stability,
  latent_chosen, structure, pick, profile, max_epochs, epochs, train_stopped_by, train_s, reused, recon_mse``
  (reconstruction MSE per pixel over every file), ``val_loss`` (best validation loss of
  pre-training), ``dcec_iterations, stopped_by``);
- ``structures.csv``: one row per structure of the selected rows (stage 04's columns,
  :data:`audioclust.clustering.structures.STRUCTURE_COLUMNS`; ``pick`` on the picked row's);
- ``labels.csv``: ``stem, label`` and one column of cluster labels per row ``id``, in
  ``features.csv`` order (the layout of stage 04's ``labels.csv``);
- ``embeddings/<view>/pretrained.npy`` and ``dcec.npy`` (n_files, latent_dim) float32 and
  ``dcec_q.npy`` (n_files, k), rows in ``labels.csv`` order;
- ``k_selection.csv`` when k is estimated;
- ``summary.csv|md|tex`` followed by the original study's *Feature | Embedding | NMI | ACC*
  table; the same rows and table are added to stage 04's ``results/<name>/clustering/summary.*``
  (:func:`audioclust.report.summary.write_summaries`, which stage 04 calls too, so either order of
  the stages gives the same tables);
- ``figures/`` (PNG 300 dpi + PDF, when ``cluster.figures``): loss curves,
  input/reconstruction grid, 2-D projections (PCA; t-SNE too when ``autoencoder.tsne``, on at
  most ``cluster.tsne_max_samples`` files) by cluster and by label, contingency tables, DCEC
  history, k selection, and reconstruction error against latent size when several sizes are
  trained.

Re-runs: besides the checkpoint, each model's embeddings, clusterings, rows and
figures are reused when their inputs are unchanged: ``embeddings/<view>/memo.json``, written
after them, holds the pre-trained embedding's k selection, partitions and stability gains
(:class:`PretrainedClusters`) under :func:`pretrained_key` (the checkpoint hash, the k-selection
settings, the seed and the package version), and the rows and DCEC's labels under
:func:`memo_key` (that key, the DCEC settings and the labels; the figures under :func:`figures_key`
too). When only DCEC's settings or the labels changed, the first part is reused and DCEC alone runs
again. ``run(..., recompute=True)`` ignores every reuse and retrains.

Replicates: with several seeds (``experiment.seeds``) every model is pre-trained, embedded and
clustered once per seed (its own checkpoint: the seed is in its hash). The first seed's models
are the outputs above; the others' embeddings and memos go to ``replicates/seed_<s>/embeddings/``
(no figures), and ``replicates/`` holds every seed's rows, each row's mean and sd and the
summary over seeds (:func:`audioclust.report.summary.write_replicates`).

Stage 05 reads the figure switches of the ``cluster`` section, and ``autoencoder.tsne``, which
:mod:`audioclust.deep.train` leaves out of the checkpoint hash.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from audioclust import __version__
from audioclust.clustering import registry
from audioclust.clustering.kselect import KSelection, selection_table
from audioclust.clustering.metrics import INTERNAL, external_scores, internal_scores
from audioclust.clustering.selection import autoencoder_criterion
from audioclust.clustering.structures import mark_autoencoder_choices
from audioclust.clustering.traits import mark_followed_traits
from audioclust.clustering.tuning import quiet_fit_predict, stability_gain
from audioclust.config import Config
from audioclust.core.cache import stable_hash
from audioclust.core.errors import ConfigError, StageInputError
from audioclust.core.paths import ProjectPaths
from audioclust.core.storage import (
    read_json,
    remove_stale_temps,
    write_csv,
    write_json,
    write_npy,
)
from audioclust.core.vocab import EMBEDDING_ARCHITECTURES
from audioclust.deep.data import FeaturesDataModule, FeaturesDataset
from audioclust.deep.dcec import DCECResult
from audioclust.deep.schedule import dcec_batches
from audioclust.deep.train import (
    TrainResult,
    _reconstruct,
    cpu_threads,
    embed,
    reconstruction_mse,
    run_dcec,
    torch_flags,
    train_autoencoder,
    training_device,
)
from audioclust.report import figures as plots
from audioclust.report import names
from audioclust.report.figure_jobs import FigureJob, draw_jobs
from audioclust.report.figures import example_indices
from audioclust.report.summary import write_replicates, write_summaries
from audioclust.represent.projection import embed_2d
from audioclust.represent.vectors import EMBEDDING_KIND, SOURCE_NAMES
from audioclust.represent.views import stored_ae_images
from audioclust.results import AUTOENCODER_COLUMNS, REPLICATES, STAGE_NAMES, read_table
from audioclust.stages._autoencoder_inputs import (
    embedding_dataset,
    embedding_vectors,
    feature_files,
    input_dataset,
    model_inputs,
)
from audioclust.stages._runs import recorded, replicate_seeds, with_seed
from audioclust.stages._shared import (
    choose_k,
    followed_traits_warnings,
    given_k,
    recording_traits,
    views_settings,
    workers,
)

log = logging.getLogger(__name__)


#: examples shown in the input/reconstruction grid
N_EXAMPLES = 6

#: the keys of the ``cluster`` section a stage-05 row depends on (:func:`~audioclust.stages._shared.choose_k`,
#: the internal scores), and of the ``autoencoder`` section that DCEC reads beyond the checkpoint's
_CLUSTER_KEYS = ("k", "k_min", "k_max", "k_methods", "kselect_max_samples", "silhouette_sample_size", "n_init",
                 "gap_references", "stability_max_samples")
_DCEC_KEYS = ("gamma", "dcec_lr", "update_interval", "tol", "tol_files", "max_iter", "alpha", "kmeans_n_init")

#: a model's memo, in ``embeddings/<view>/``, and the arrays it vouches for
MEMO = "memo.json"
EMBEDDING_FILES = ("pretrained.npy", "dcec.npy", "dcec_q.npy")


@dataclass
class Partition:
    """A clusterer's partition of a pre-trained embedding: K-Means's, or another of ``autoencoder.algorithms``'s.

    labels : shape (n_samples,); seconds : its fit time; stability : its stability gain.
    """

    labels: np.ndarray
    seconds: float
    stability: float

    def to_record(self) -> dict[str, Any]:
        return {"labels": self.labels.tolist(), "seconds": self.seconds, "stability": self.stability}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Partition:
        return cls(labels=np.asarray(record["labels"], dtype=int), seconds=float(record["seconds"]),
                   stability=float(record["stability"]))


@dataclass
class PretrainedClusters:
    """The pre-trained embedding and its partitions: K-Means, which DCEC starts from, and the other clusterers of
    ``autoencoder.algorithms``; what a change of DCEC settings keeps.

    Attributes
    ----------
    z : the embedding of every file, shape (n_samples, latent_dim).
    k, k_source : the number of clusters and who chose it (``given``, ``auto``); selection : the k selection, or None.
    labels, centers : the K-Means partition, shapes (n_samples,) and (k, latent_dim); seconds : its fit time.
    stability : its stability gain; mse : the reconstruction MSE per pixel.
    others : the other clusterers' partitions, by name (``spectral``).
    """

    z: np.ndarray
    k: int
    k_source: str
    selection: KSelection | None
    labels: np.ndarray
    centers: np.ndarray
    seconds: float
    stability: float
    mse: float
    others: dict[str, Partition] = field(default_factory=dict)

    @property
    def model_stability(self) -> float:
        """The model's stability gain (``latent_stability``): its most stable clusterer's. NaN when none is finite."""
        gains = [g for g in (self.stability, *(p.stability for p in self.others.values())) if np.isfinite(g)]
        return max(gains) if gains else math.nan

    def to_record(self, key: str) -> dict[str, Any]:
        """Everything but ``z`` (kept in ``pretrained.npy``) as JSON, under ``key``."""
        return {"key": key, "k": self.k, "k_source": self.k_source,
                "selection": None if self.selection is None else self.selection.to_record(),
                "labels": self.labels.tolist(), "centers": self.centers.tolist(), "seconds": self.seconds,
                "stability": self.stability, "mse": self.mse,
                "others": {name: p.to_record() for name, p in self.others.items()}}

    @classmethod
    def from_record(cls, record: dict[str, Any], z: np.ndarray) -> PretrainedClusters:
        selection = None if record["selection"] is None else KSelection.from_record(record["selection"])
        return cls(z=z, k=int(record["k"]), k_source=record["k_source"], selection=selection,
                   labels=np.asarray(record["labels"], dtype=int), centers=np.asarray(record["centers"]),
                   seconds=float(record["seconds"]), stability=float(record["stability"]), mse=float(record["mse"]),
                   others={name: Partition.from_record(p) for name, p in record.get("others", {}).items()})


@dataclass
class ModelRun:
    """One trained (or reused) autoencoder and its two clusterings.

    Attributes
    ----------
    view : ``<feature>.<architecture>_z<latent>.<source>``, the prefix of its row ids.
    rows : its ``ae_<clusterer>`` and ``dcec`` rows of the results table.
    labels : stage -> cluster labels of shape (n_samples,).
    embeddings : stage -> the clustered embedding of shape (n_samples, latent_dim).
    selection : the k selection on the pre-trained embedding (None when ``cluster.k`` is given).
    trained : what :func:`~audioclust.deep.train.train_autoencoder` returned.
    dcec : what :func:`~audioclust.deep.train.run_dcec` returned; None when taken from the memo.
    dataset : the images.
    pretrained : the pre-trained embedding's partitions, whose K-Means DCEC started from (None when taken from the
        memo).
    from_memo : rows, labels and selection come from the memo of an earlier run (``embeddings``
        is empty then: the arrays and figures on disk are that run's).
    """

    view: str
    rows: list[dict[str, Any]]
    labels: dict[str, np.ndarray]
    embeddings: dict[str, np.ndarray]
    selection: KSelection | None
    trained: TrainResult
    dcec: DCECResult | None
    dataset: FeaturesDataset
    pretrained: PretrainedClusters | None = None
    from_memo: bool = False


@recorded("autoencoder")
def run(cfg: Config, paths: ProjectPaths, recompute: bool = False) -> pd.DataFrame:
    """Train or reuse the autoencoders, cluster their embeddings (``autoencoder.algorithms``, DCEC), write every
    output.

    Parameters
    ----------
    cfg : Config
        ``autoencoder`` (models, training, DCEC), ``cluster`` (k, its estimation, the
        criterion, figure switches), ``seed``.
    paths : ProjectPaths
    recompute : bool
        Ignore every reuse: retrain each autoencoder (its checkpoint is replaced) and redo
        the embeddings, clusterings and figures. False: reuse what is unchanged (checkpoints;
        each model's memo, see the module docstring), so an unchanged re-run takes seconds.

    Returns
    -------
    DataFrame with :data:`AUTOENCODER_COLUMNS`: per feature × latent size, a row per clusterer (``ae_kmeans``,
    ``ae_spectral``) and one for DCEC (also ``results.csv``); empty when ``autoencoder.enabled`` is false.

    Raises
    ------
    StageInputError
        When ``features.csv`` or a feature file of an ok row is missing (run ``audioclust extract``).
    ConfigError
        For an empty feature or latent list, or a ``cluster.k`` that does not fit the files.
    """
    remove_stale_temps(*paths.generated())
    ae = cfg.autoencoder
    if not ae.enabled:
        log.info("autoencoder: disabled (autoencoder.enabled is false); nothing to do")
        return pd.DataFrame(columns=AUTOENCODER_COLUMNS)
    if not ae.features or not ae.latent_dims:
        raise ConfigError("config keys 'autoencoder.features' and 'autoencoder.latent_dims' must each list at "
                          "least one value, e.g. [mel] and [10]")
    features = model_inputs(cfg, paths)
    if not features:
        raise ConfigError(f"config key 'autoencoder.features' = {ae.features} names no input: embeddings.models "
                          "is empty or was not embedded (run `audioclust embed`); list a feature, e.g. [mel]")
    table = read_table(paths)
    n = len(table)
    if n < 3:
        raise StageInputError(f"{paths.rel(paths.features_csv)} has {n} ok file(s): clustering needs at least 3")
    if cfg.cluster.k != "auto" and cfg.cluster.k >= n:
        raise ConfigError(f"config key 'cluster.k' = {cfg.cluster.k} does not fit {n} files: it must be < {n}")
    # DCEC's batch limit as the training device's profile gives it for n files, so the memos and the rows name it
    ae = replace(ae, max_iter=dcec_batches(profile=ae.profile, device=training_device(), max_iter=ae.max_iter,
                                           n_samples=n, batch_size=ae.batch_size))
    cfg = replace(cfg, autoencoder=ae)
    settings = views_settings(cfg)
    # every missing input is reported before any training
    vectors = {feature: embedding_vectors(settings, paths, table, feature) for feature in features
               if feature in settings.embeddings}
    stored = {feature: stored_ae_images(settings, paths, table, feature) for feature in features
              if feature not in vectors}
    for feature, images in stored.items():
        if images is None:
            feature_files(paths, table, feature, ae.source)
    labels = table["label"].fillna("").astype(str).to_numpy()
    labelled = labels != ""
    log.info("autoencoder: %d files, %s; %s × latent %s", n,
             f"{len(set(labels[labelled]))} labels on {int(labelled.sum())} files" if labelled.any() else "no labels",
             ", ".join(features), ae.latent_dims)
    out = paths.results / "autoencoder"
    seeds = replicate_seeds(cfg)
    cfg = with_seed(cfg, seeds[0])   # the primary seed: its models are the ones shown
    # replicates train and cluster anew with their seed; their embeddings and memos go to replicates/seed_<s>/,
    # without figures
    replicas = [with_seed(replace(cfg, cluster=replace(cfg.cluster, figures=False)), s) for s in seeds[1:]]
    if replicas:
        log.info("autoencoder: %d seeds (%s): every model is trained once per seed", len(seeds),
                 ", ".join(map(str, seeds)))

    rows: dict[int, list[dict[str, Any]]] = {s: [] for s in seeds}
    partitions: dict[int, dict[str, np.ndarray]] = {s: {} for s in seeds}   # row id -> labels, per seed
    selections: dict[str, KSelection] = {}
    for feature in features:
        if feature in vectors:
            dataset = embedding_dataset(paths, table, feature, vectors.pop(feature))
            architecture = ae.embedding_architecture
        else:
            dataset = input_dataset(cfg, paths, table, feature, stored.pop(feature))
            architecture = ae.architecture
        for latent in ae.latent_dims:
            model = _model_outputs(cfg, paths, dataset, feature, int(latent), labels, labelled, architecture, out,
                                   recompute)
            if model.selection is not None:
                selections[model.view] = model.selection
            runs = [(seeds[0], model)] + [
                (replica.seed, _model_outputs(replica, paths, dataset, feature, int(latent), labels, labelled,
                                              architecture, out / REPLICATES / f"seed_{replica.seed}", recompute))
                for replica in replicas]
            for seed, made in runs:
                rows[seed] += made.rows
                partitions[seed].update({row["id"]: made.labels[row["stage"]] for row in made.rows})

    criterion = autoencoder_criterion(cfg.cluster.criterion, cfg.cluster.tune_criterion)
    _log_focus(cfg, features)
    traits = recording_traits(cfg, paths, table)
    tables, structures = [], []
    for seed, seed_rows in rows.items():
        frame = pd.DataFrame(seed_rows, columns=AUTOENCODER_COLUMNS).assign(seed=seed)
        found = mark_autoencoder_choices(frame, criterion, given_k(cfg), partitions[seed],
                                         cfg.cluster.structure_agreement, cfg.cluster.focus)
        structures.append(mark_followed_traits(found, partitions[seed], traits,
                                               cfg.cluster.structure_agreement).assign(seed=seed))
        tables.append(frame)
    results = tables[0]
    write_csv(out / "results.csv", results)
    write_csv(out / "structures.csv", structures[0])
    for warning in followed_traits_warnings(structures[0], "autoencoder", paths.rel(out / "structures.csv")):
        log.warning(warning)
    frame = pd.DataFrame({"stem": table["stem"], "label": table["label"]})
    write_csv(out / "labels.csv", pd.concat([frame, pd.DataFrame(partitions[seeds[0]], index=frame.index)], axis=1))
    if selections:
        write_csv(out / "k_selection.csv", selection_table(selections))
    write_replicates(out, tables, structures, criterion)
    write_summaries(paths, cfg.cluster.criterion, cfg.cluster.tune_criterion)
    if cfg.cluster.figures and results["latent_dim"].nunique() > 1:  # one small figure over every model: redrawn
        plots.save_figure(plots.latent_size_curve(results, names=STAGE_NAMES),
                          out / "figures" / names.figure_stem("latent_size"))
    _log_summary(results, criterion)
    return results


def _log_focus(cfg: Config, features: list[str]) -> None:
    """Say which models of ``cluster.focus`` (the user's prior) stage 05 chooses among, and warn when it names none
    of them: :func:`~audioclust.clustering.structures.mark_autoencoder_choices` then takes every model."""
    focus = [f for f in cfg.cluster.focus if f in features]
    if cfg.cluster.focus and not focus:
        log.warning("autoencoder: cluster.focus (%s) names none of this stage's models (%s): the structures and the "
                    "pick are over every model", ", ".join(cfg.cluster.focus), ", ".join(features))
    elif focus:
        log.info("autoencoder: the structures and the pick are over the models of cluster.focus: %s", ", ".join(focus))


# --------------------------------------------------------------------------- one model

def _input_name(architecture: str, source: str) -> str:
    """What a model was trained on, for the summary's *Type*: DEC's autoencoders (``mlp``, ``mlp_pca``) read an
    embedding view (an array too, but not stage 03's), the image autoencoders the stage-03 arrays or images."""
    return EMBEDDING_KIND if architecture in EMBEDDING_ARCHITECTURES else SOURCE_NAMES[source]


def _view(cfg: Config, feature: str, latent: int, architecture: str) -> str:
    source = "npy" if architecture in EMBEDDING_ARCHITECTURES else cfg.autoencoder.source
    return f"{feature}.{architecture}_z{latent}.{source}"


def _model_outputs(cfg: Config, paths: ProjectPaths, dataset: FeaturesDataset, feature: str, latent: int,
                   labels: np.ndarray, labelled: np.ndarray, architecture: str, out: Path,
                   recompute: bool) -> ModelRun:
    """One model's rows, with its embeddings, figures and memo written; taken from the memo when it is current."""
    ae = cfg.autoencoder
    view = _view(cfg, feature, latent, architecture)
    trained = train_autoencoder(architecture, dataset, ae, cfg.seed, log_dir=paths.logs, ckpt_dir=paths.checkpoints,
                                latent_dim=latent, recompute=recompute)
    folder = out / "embeddings" / view
    start_key = pretrained_key(cfg, trained)
    key, figures = memo_key(cfg, start_key, labels), figures_key(cfg)
    stored = None if recompute else read_json(folder / MEMO)   # read once: whole, or its pre-trained part
    memo = _current_memo(stored, folder, key, figures, out / "figures")
    if memo is not None:
        log.info("%s: embeddings, clusterings%s reused (%s; autoencoder trained on %s)", view,
                 " and figures" if figures else "", paths.rel(folder / MEMO), trained.device)
        return _from_memo(memo, view, trained, dataset)
    start = _current_pretrained(stored, folder, start_key)
    if start is not None:
        log.info("%s: the pre-trained embedding's k, partitions and stability reused (%s); DCEC runs again", view,
                 paths.rel(folder / MEMO))
    model = run_model(cfg, paths, dataset, feature, latent, labels, labelled, architecture, trained=trained,
                      pretrained=start)
    _write_embeddings(folder, model)
    written = _model_figures(cfg, paths, model, labels, labelled, out / "figures") if figures else []
    _write_memo(folder, key, figures, [p.relative_to(out / "figures").as_posix() for p in written], model,
                start_key)
    return model


def run_model(cfg: Config, paths: ProjectPaths, dataset: FeaturesDataset, feature: str, latent: int,
              labels: np.ndarray, labelled: np.ndarray, architecture: str | None = None,
              trained: TrainResult | None = None, pretrained: PretrainedClusters | None = None) -> ModelRun:
    """Train or reuse one autoencoder, embed every file, choose k, partition it (``autoencoder.algorithms``), DCEC,
    score each.

    Parameters
    ----------
    cfg, paths : the run's config and paths.
    dataset : the images of ``feature`` for every ok file.
    feature : its name; latent : the embedding size.
    labels : ndarray of shape (n_samples,), '' where unlabelled; labelled : ``labels != ''``.
    architecture : the autoencoder; None: ``autoencoder.architecture`` (``mlp`` for an embedding).
    trained : the autoencoder already trained or reused for these arguments; None: done here.
    pretrained : its embedding's k, partitions and stability, kept from an earlier run with the same checkpoint and
        settings (:func:`pretrained_key`); None: computed here (:func:`cluster_pretrained`).
    """
    ae, seed = cfg.autoencoder, cfg.seed
    architecture = architecture or ae.architecture
    source = "npy" if architecture in EMBEDDING_ARCHITECTURES else ae.source
    view = _view(cfg, feature, latent, architecture)
    if trained is None:
        trained = train_autoencoder(architecture, dataset, ae, seed, log_dir=paths.logs,
                                    ckpt_dir=paths.checkpoints, latent_dim=latent)
    device = training_device()
    with cpu_threads(ae.num_threads) as n_threads, threadpool_limits(limits=n_threads):
        start = pretrained or cluster_pretrained(cfg, trained, device)
        k = start.k
        dcec = run_dcec(trained.module, trained.datamodule, k, ae, seed, log_dir=paths.logs,
                        start=(start.centers, start.labels))
        with torch_flags(ae.deterministic, device):
            dcec_mse, _ = _evaluate(dcec.module.model, trained.datamodule, device)

    marker = read_json(trained.checkpoint.with_suffix(".json")) or {}
    base = {
        "feature": feature, "view": view,
        "type": f"{architecture} autoencoder z={latent} ({_input_name(architecture, source)})",
        "kind": "autoencoder", "source": source, "architecture": architecture, "latent_dim": latent,
        "k": k, "k_source": start.k_source, "status": "ok", "reason": "", "selected": False,
        "latent_stability": start.model_stability, "profile": trained.schedule.profile,
        "max_epochs": trained.schedule.max_epochs, "epochs": trained.epochs, "train_stopped_by": trained.stopped_by,
        "reused": trained.reused,
        "train_s": round(trained.seconds, 3),  # as the checkpoint's marker keeps it: equal when reused
        "val_loss": marker.get("best_score", math.nan), "n_samples": len(dataset), "n_dims": latent,
        "checkpoint": paths.rel(trained.checkpoint),
    }
    stages = {
        "ae_kmeans": dict(pred=start.labels, Z=start.z, mse=start.mse, seconds=start.seconds, algorithm="kmeans",
                          params={"n_init": ae.kmeans_n_init}, iterations=math.nan, stopped_by="",
                          stability=start.stability),
        **{f"ae_{name}": dict(pred=p.labels, Z=start.z, mse=start.mse, seconds=p.seconds, algorithm=name,
                              params=registry.get_spec(name).defaults, iterations=math.nan, stopped_by="",
                              stability=p.stability) for name, p in start.others.items()},
        # DCEC's time includes the K-Means it starts from, as when it ran that K-Means itself
        "dcec": dict(pred=dcec.labels, Z=dcec.embedding, mse=dcec_mse, seconds=start.seconds + dcec.seconds,
                     algorithm="dcec",
                     params={"gamma": ae.gamma, "lr": ae.dcec_lr, "update_interval": ae.update_interval,
                             "tol": ae.tol, "tol_files": ae.tol_files, "max_iter": ae.max_iter, "alpha": ae.alpha},
                     iterations=dcec.iterations, stopped_by=dcec.stopped_by, stability=math.nan),
    }
    predicted = {stage: np.asarray(s["pred"]).astype(int) for stage, s in stages.items()}
    rows = []
    for stage, s in stages.items():
        pred = predicted[stage]
        row = {col: math.nan for col in AUTOENCODER_COLUMNS}
        row.update(base)
        row.update(id=f"{view}.{stage}", stage=stage, algorithm=s["algorithm"],
                   params=json.dumps(s["params"], sort_keys=True), recon_mse=s["mse"], runtime_s=s["seconds"],
                   stability=s["stability"],
                   dcec_iterations=s["iterations"], stopped_by=s["stopped_by"])
        scores = internal_scores(s["Z"], pred, sample_size=cfg.cluster.silhouette_sample_size, random_state=seed)
        row.update({key: scores[key] for key in INTERNAL})
        row["n_clusters"] = scores["n_clusters"]
        if labelled.any():
            row.update(external_scores(labels[labelled], pred[labelled]))
        rows.append(row)
    return ModelRun(view=view, rows=rows, labels=predicted, embeddings={stage: s["Z"] for stage, s in stages.items()},
                    selection=start.selection, trained=trained, dcec=dcec, dataset=dataset, pretrained=start)


def cluster_pretrained(cfg: Config, trained: TrainResult, device: torch.device) -> PretrainedClusters:
    """Embed every file with the pre-trained model (on ``device``), choose k (:func:`embedding_k`) and cluster the
    embedding (:func:`cluster_embedding`). Run under the stage's thread limits."""
    with torch_flags(cfg.autoencoder.deterministic, device):  # the embedding and the scores on the training device
        mse, z = _evaluate(trained.module.model, trained.datamodule, device, embedding=True)
    k, k_source, selection = embedding_k(cfg, z)
    km, kmeans, others = cluster_embedding(cfg, z, k)
    return PretrainedClusters(z=z, k=k, k_source=k_source, selection=selection, labels=kmeans.labels,
                              centers=km.cluster_centers_, seconds=kmeans.seconds, stability=kmeans.stability,
                              mse=mse, others=others)


def cluster_embedding(cfg: Config, z: np.ndarray, k: int) -> tuple[KMeans, Partition, dict[str, Partition]]:
    """K-Means of ``z`` at ``k`` (``autoencoder.kmeans_n_init`` restarts, seeded: the fitted model, and its partition
    with the fit seconds and stability gain), and the other clusterers of ``autoencoder.algorithms`` (stage 04's
    defaults, seeded), each with its stability gain (:func:`latent_stability`); one that cannot run is left out
    with a warning."""
    seed = cfg.seed
    began = time.perf_counter()
    km = KMeans(n_clusters=k, n_init=cfg.autoencoder.kmeans_n_init, random_state=seed).fit(z)
    seconds = time.perf_counter() - began
    kmeans = Partition(labels=km.labels_, seconds=seconds, stability=latent_stability(cfg, z, k, km.labels_))
    others = {}
    for name in cfg.autoencoder.algorithms:
        if name == "kmeans":
            continue
        began = time.perf_counter()
        try:   # quietly: a spectral graph that is not fully connected still partitions
            labels = quiet_fit_predict(name, k, seed, {}, z).astype(int)
        except (ValueError, np.linalg.LinAlgError) as exc:   # e.g. fewer files than the graph's neighbours
            log.warning("%s of the pre-trained embedding (%d files) failed, its row is left out: %s", name, len(z), exc)
            continue
        fit_s = time.perf_counter() - began
        try:
            gain = latent_stability(cfg, z, k, labels, algorithm=name)
        except (ValueError, np.linalg.LinAlgError) as exc:   # half-samples too small for it
            log.warning("%s of the pre-trained embedding: no stability gain (%s)", name, exc)
            gain = math.nan
        others[name] = Partition(labels=labels, seconds=fit_s, stability=gain)
    return km, kmeans, others


def latent_stability(cfg: Config, z: np.ndarray, k: int, labels: np.ndarray, n_resamples: int | None = None,
                     seed: int | None = None, algorithm: str = "kmeans") -> float:
    """How reproducible a clusterer's groups of an embedding are, against a Gaussian of its shape: the model's most
    stable clusterer chooses the latent size and the pick (``latent_stability``).
    :func:`audioclust.clustering.tuning.stability_gain` of ``labels`` (``algorithm``'s partition of ``z`` at ``k``) on
    ``autoencoder.stability_resamples`` half-samples (or ``n_resamples``), seeded by ``cfg.seed`` (or ``seed``), on
    at most ``cluster.stability_max_samples`` files."""
    return stability_gain(algorithm, z, n_clusters=k, random_state=cfg.seed if seed is None else seed, labels=labels,
                          n_resamples=cfg.autoencoder.stability_resamples if n_resamples is None else n_resamples,
                          max_samples=cfg.cluster.stability_max_samples)["stability"]


def _evaluate(model: torch.nn.Module, datamodule: FeaturesDataModule, device: torch.device,
              embedding: bool = False) -> tuple[float, np.ndarray | None]:
    """``model``'s reconstruction MSE over every file and (``embedding``) its embedding, computed on
    ``device``; the model is back on the CPU after."""
    model.to(device)
    try:
        return reconstruction_mse(model, datamodule.dataset), embed(model, datamodule) if embedding else None
    finally:
        model.cpu()


# --------------------------------------------------------------------------- memo

def pretrained_key(cfg: Config, trained: TrainResult) -> str:
    """Key of a model's :class:`PretrainedClusters`: its checkpoint hash (data, pre-training, seed, device),
    ``kmeans_n_init``, ``algorithms`` and ``stability_resamples``, the ``cluster`` keys of k and the scores, the seed
    and the version."""
    c = cfg.cluster
    return stable_hash({"checkpoint": trained.params_hash, "kmeans_n_init": cfg.autoencoder.kmeans_n_init,
                        "algorithms": sorted(cfg.autoencoder.algorithms),
                        "stability_resamples": cfg.autoencoder.stability_resamples,
                        "cluster": {k: getattr(c, k) for k in _CLUSTER_KEYS}, "seed": cfg.seed,
                        "version": __version__})


def memo_key(cfg: Config, pretrained: str, labels: np.ndarray) -> str:
    """Key of a model's embeddings, clusterings and rows: ``pretrained`` (its :func:`pretrained_key`), the DCEC
    keys and the labels (a change of these reruns DCEC alone)."""
    ae = cfg.autoencoder
    return stable_hash({"pretrained": pretrained, "dcec": {k: getattr(ae, k) for k in _DCEC_KEYS},
                        "labels": [str(v) for v in labels]})


def figures_key(cfg: Config) -> str | None:
    """Key of a model's figures beyond :func:`memo_key`; None when no figures are asked for (``cluster.figures``)."""
    if not cfg.cluster.figures:
        return None
    return stable_hash({"tsne": cfg.autoencoder.tsne, "tsne_max_samples": cfg.cluster.tsne_max_samples,
                        "examples": N_EXAMPLES, "version": __version__})


def _current_memo(memo: Any, folder: Path, key: str, figures: str | None,
                  figure_folder: Path) -> dict[str, Any] | None:
    """``memo`` (the content of ``folder``'s memo file) when it was written under ``key``, its arrays are there
    and, when figures are asked for, they were made under ``figures`` and are there too; else None."""
    if not isinstance(memo, dict) or memo.get("key") != key:
        return None
    if not all((folder / name).is_file() for name in EMBEDDING_FILES):
        return None
    if figures is not None and (memo.get("figures") != figures
                                or not all((figure_folder / f).is_file() for f in memo["figure_files"])):
        return None
    return memo


def _current_pretrained(memo: Any, folder: Path, key: str) -> PretrainedClusters | None:
    """``memo``'s :class:`PretrainedClusters` when it was written under ``key`` and ``folder`` holds
    ``pretrained.npy``; else None."""
    record = memo.get("pretrained") if isinstance(memo, dict) else None
    if not isinstance(record, dict) or record.get("key") != key or not (folder / "pretrained.npy").is_file():
        return None
    return PretrainedClusters.from_record(record, np.load(folder / "pretrained.npy", allow_pickle=False))


def _write_memo(folder: Path, key: str, figures: str | None, figure_files: list[str], model: ModelRun,
                pretrained: str) -> None:
    write_json(folder / MEMO, {
        "key": key, "figures": figures, "figure_files": sorted(figure_files), "rows": model.rows,
        "dcec_labels": model.labels["dcec"].tolist(),   # the other labels and the k selection: in "pretrained"
        "pretrained": model.pretrained.to_record(pretrained),
    })


def _from_memo(memo: dict[str, Any], view: str, trained: TrainResult, dataset: FeaturesDataset) -> ModelRun:
    start = memo["pretrained"]
    selection = None if start["selection"] is None else KSelection.from_record(start["selection"])
    rows = [{**row, "reused": trained.reused} for row in memo["rows"]]
    labels = {"ae_kmeans": np.asarray(start["labels"], dtype=int),
              **{f"ae_{name}": Partition.from_record(p).labels for name, p in start.get("others", {}).items()},
              "dcec": np.asarray(memo["dcec_labels"], dtype=int)}
    return ModelRun(view=view, rows=rows, labels=labels, embeddings={}, selection=selection, trained=trained,
                    dcec=None, dataset=dataset, from_memo=True)


def embedding_k(cfg: Config, z: np.ndarray) -> tuple[int, str, KSelection | None]:
    """k for an embedding: :func:`audioclust.stages._shared.choose_k`, at least 2 (DCEC needs two clusters).

    Parameters
    ----------
    cfg : the config (``cluster`` section and ``seed``).
    z : ndarray of shape (n_samples, latent_dim)

    Returns
    -------
    (k, ``"given"`` or ``"auto"``, the :class:`KSelection` or None)
    """
    k, k_source, selection = choose_k(cfg, z)
    if selection is not None and selection.dropped:
        log.warning("k selection left out k = %s: k must be below the number of files",
                    ", ".join(map(str, selection.dropped)))
    if k is None or k < 2:
        log.warning("k selection on the embedding chose k = %s; clustering with k = 2 (DCEC needs two clusters)", k)
        k = 2
    return k, k_source, selection


def _write_embeddings(folder: Path, model: ModelRun) -> None:
    write_npy(folder / "pretrained.npy", model.embeddings["ae_kmeans"])
    write_npy(folder / "dcec.npy", model.embeddings["dcec"])
    write_npy(folder / "dcec_q.npy", model.dcec.q.astype(np.float32))


def _log_summary(results: pd.DataFrame, criterion: str) -> None:
    for _, r in results.iterrows():
        log.info("%s: k=%d, %s=%.3f, NMI=%s, ACC=%s; %s%d epochs (%.1f s), recon MSE %.5f%s", r["id"], r["k"],
                 criterion, r[criterion], _fmt(r["nmi"]), _fmt(r["acc"]), "reused, " if r["reused"] else "",
                 r["epochs"], r["train_s"], r["recon_mse"],
                 f"; DCEC {r['dcec_iterations']:.0f} iterations, stopped by {r['stopped_by']} ({r['runtime_s']:.1f} s)"
                 if r["stage"] == "dcec" else "")
    models = results.drop_duplicates("view")
    log.info("autoencoder: %d rows (%d model%s, %d reused)", len(results), len(models), "" if len(models) == 1 else "s",
             int(models["reused"].sum()))


def _fmt(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.3f}"


# --------------------------------------------------------------------------- figures

def _model_figures(cfg: Config, paths: ProjectPaths, model: ModelRun, labels: np.ndarray, labelled: np.ndarray,
                   folder: Path) -> list[Path]:
    """Every figure of one model (see the module docstring), drawn by ``parallel.n_jobs`` processes; titles and
    file names in words (:mod:`audioclust.report.names`). Returns the files written."""
    view, seed, trained, dcec = model.view, cfg.seed, model.trained, model.dcec
    shown_labels = labels if labelled.any() else None   # "" (unlabelled) is drawn in light grey
    title = names.view_name(view)
    jobs: list[FigureJob] = []
    metrics = training_log(paths, trained)
    if metrics is not None:
        jobs.append(FigureJob(names.figure_stem("loss", view), plots.loss_curves, {"metrics": metrics, "title": title}))
    examples = example_indices(labels, N_EXAMPLES)
    images = model.dataset.images[examples]
    if images.shape[2] > 1:  # an image, not an embedding vector (which has nothing to look at)
        rows = {"input": images, "autoencoder": _reconstruct(trained.module.model, images),
                "after DCEC": _reconstruct(dcec.module.model, images)}
        jobs.append(FigureJob(names.figure_stem("reconstructions", view), plots.reconstruction_grid,
                              {"rows": rows, "names": [labels[i] or str(i) for i in examples], "title": title,
                               "feature": view.split(".", 1)[0]}))
    jobs.append(FigureJob(names.figure_stem("dcec_history", view), plots.dcec_history,
                          {"history": dcec.history, "tol": cfg.autoencoder.tol, "title": title,
                           "tol_files": cfg.autoencoder.tol_files, "n_samples": len(labels)}))
    if model.selection is not None:
        sel = model.selection
        jobs.append(FigureJob(names.figure_stem("k_selection", view), plots.k_selection,
                              {"table": sel.table, "choices": sel.choices, "consensus": sel.consensus, "title": title}))
    n = len(labels)
    everyone = np.arange(n)
    limit = cfg.cluster.tsne_max_samples
    # t-SNE only when asked: it is the slowest figure; on a seeded sample of large sets, as in stage 04
    tsne_rows = (np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))
                 if cfg.autoencoder.tsne and limit is not None and n > limit else everyone)
    projections = {"pca": everyone, "tsne": tsne_rows} if cfg.autoencoder.tsne else {"pca": everyone}
    for row in model.rows:
        Z, pred = model.embeddings[row["stage"]], model.labels[row["stage"]]
        for method, rows_shown in projections.items():
            with cpu_threads(cfg.autoencoder.num_threads) as n_threads, threadpool_limits(limits=n_threads):
                Y = embed_2d(Z[rows_shown], method, seed)
            jobs.append(FigureJob(names.figure_stem(f"scatter_{method}", row["id"]), plots.scatter_2d,
                                  {"Y": Y, "clusters": pred[rows_shown],
                                   "labels": None if shown_labels is None else shown_labels[rows_shown],
                                   "method": "t-SNE" if method == "tsne" else "PCA", "title": names.row_name(row)}))
        if labelled.any():
            jobs.append(FigureJob(names.figure_stem("contingency", row["id"]), plots.contingency_heatmap,
                                  {"labels_true": labels[labelled], "labels_pred": pred[labelled],
                                   "title": names.row_name(row)}))
    return draw_jobs(jobs, folder, workers(cfg), desc=f"figures {view}")


def training_log(paths: ProjectPaths, trained: TrainResult) -> pd.DataFrame | None:
    """The Lightning CSV log (``metrics.csv``) of the run that trained ``trained``'s checkpoint, or None if gone."""
    run_name = trained.checkpoint.stem.removesuffix(f"_{trained.params_hash}")
    path = paths.logs / run_name / trained.params_hash / "metrics.csv"
    if not path.is_file():
        log.info("autoencoder: no training log %s (removed?); the loss figure is skipped", paths.rel(path))
        return None
    return pd.read_csv(path)


# model_inputs: notebook 05 previews the stage's inputs from here
__all__ = ['ModelRun', 'PretrainedClusters', 'cluster_embedding', 'cluster_pretrained', 'embedding_k', 'figures_key',
           'latent_stability', 'memo_key', 'model_inputs', 'pretrained_key', 'run', 'run_model', 'training_log']
