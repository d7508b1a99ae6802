"""The label-free choice: stability against a structureless reference, degenerate partitions, and
the ``selected``/``eligible`` marks of a results table. Labels never enter here.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from audioclust.clustering.metrics import NOISE, oriented
from audioclust.core.errors import AudioclustError

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- stability

def stability(X, fit_predict, labels=None, n_resamples: int = 5, fraction: float = 0.5,
              random_state: int = 0) -> float:
    """Mean ARI between a partition and the partitions of seeded sub-samples.

    For each of ``n_resamples`` sub-samples of ``round(fraction * n_samples)`` rows drawn
    without replacement by ``numpy.random.default_rng(random_state)``, ``fit_predict`` is
    run on the sub-sample alone and compared (adjusted Rand index) with ``labels`` on the
    same rows. Scale-free: 1 when every sub-sample gives the same groups, about 0 when they
    agree only by chance. Unlike the other scores, each noise point (``-1``) counts as a
    group of its own here: rejecting the same points twice reproduces no group, and a
    clusterer that calls most samples noise must not look stable for it.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    fit_predict : callable
        ``fit_predict(X_sub) -> labels of shape (n_sub,)``; a fresh, seeded clusterer each call.
    labels : array-like of shape (n_samples,) or None
        Partition of the whole of X; None: ``fit_predict(X)``.
    n_resamples : int
        Sub-samples B (>= 1).
    fraction : float
        Share of the rows in each sub-sample, in (0, 1).
    random_state : int
        Seed of the sub-samples.

    Returns
    -------
    float in [-1, 1] (ARI can dip below 0 for worse-than-chance agreement).
    """
    X = np.asarray(X)
    n = X.shape[0]
    if not 0 < fraction < 1 or n_resamples < 1:
        raise AudioclustError(f"stability needs 0 < fraction < 1 and n_resamples >= 1; got {fraction}, {n_resamples}")
    labels = np.asarray(fit_predict(X) if labels is None else labels).ravel()
    if labels.size != n:
        raise AudioclustError(f"labels has {labels.size} entries for {n} samples")
    size = max(2, int(round(fraction * n)))
    rng = np.random.default_rng(random_state)
    scores = []
    for _ in range(n_resamples):
        rows = np.sort(rng.choice(n, size=size, replace=False))
        scores.append(skm.adjusted_rand_score(noise_apart(labels[rows]), noise_apart(fit_predict(X[rows]))))
    return float(np.mean(scores))


def noise_apart(labels) -> np.ndarray:
    """Labels as int codes, each noise point (-1) given a code of its own."""
    codes = np.unique(np.asarray(labels).ravel(), return_inverse=True)[1].astype(np.int64)
    noise = np.asarray(labels).ravel() == NOISE
    codes[noise] = codes.max(initial=0) + 1 + np.arange(noise.sum())
    return codes


def gaussian_reference(X, random_state: int = 0) -> np.ndarray:
    """Structure-less data of X's shape: one Gaussian with X's mean and covariance.

    Drawn as ``mean + Z @ (V * sqrt(w)).T`` with ``Z`` standard normal from
    ``numpy.random.default_rng(random_state)`` and ``w, V`` the eigen-decomposition of
    the (population) covariance of X, so scale, spread and elongation are kept and only
    the grouping is lost.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    ndarray of shape (n_samples, n_features), float64
    """
    X = np.asarray(X, dtype=np.float64)
    centred = X - X.mean(axis=0)
    w, V = np.linalg.eigh(centred.T @ centred / max(X.shape[0], 1))
    z = np.random.default_rng(random_state).standard_normal(X.shape)
    return X.mean(axis=0) + z @ (V * np.sqrt(np.clip(w, 0.0, None))).T


# --------------------------------------------------------------------------- degenerate partitions

def degenerate(labels, n_clusters: int | None = None, min_cluster_share: float = 0.0,
               max_noise_share: float = 1.0) -> str:
    """Why a partition finds no groups, or ``""`` when it is usable.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Cluster labels; ``-1`` is noise (not a cluster).
    n_clusters : int or None
        The number asked for (k of K-Means ...); None for clusterers that find their own.
    min_cluster_share : float
        The smallest cluster must hold at least this share of the mean cluster size
        ``(n_samples - n_noise) / n_clusters_found``.
    max_noise_share : float
        At most this share of the samples may be noise (a density clusterer that groups
        a tenth of the files and rejects the rest describes only that tenth).

    Returns
    -------
    str
        ``""``, or the first reason that applies: ``"fewer than 2 clusters"``, ``"one
        cluster per sample"``, ``"noise share > max"``, ``"c of k clusters"``,
        ``"smallest cluster s < share x mean m"``.
    """
    labels = np.asarray(labels).ravel()
    clusters, sizes = np.unique(labels[labels != NOISE], return_counts=True)
    if clusters.size < 2:
        return "fewer than 2 clusters"
    if np.unique(labels).size >= labels.size:
        return "one cluster per sample"
    noise = float(np.mean(labels == NOISE))
    if noise > max_noise_share:
        return f"noise share {noise:.2f} > {max_noise_share:g}"
    if n_clusters is not None and clusters.size < n_clusters:
        return f"{clusters.size} of {n_clusters} clusters"
    mean = sizes.sum() / clusters.size
    if sizes.min() < min_cluster_share * mean:
        return f"smallest cluster {sizes.min()} < {min_cluster_share:g} x mean {mean:.1f}"
    return ""


#: the reasons of :func:`degenerate` (and of :func:`~audioclust.clustering.estimators.fuzzy.uniform_memberships`)
#: that carry measured values, and the rule each applies
_RULES = [
    (re.compile(r"^noise share \S+ > (\S+)$"), r"noise share > \1"),
    (re.compile(r"^\d+ of \d+ clusters$"), "fewer clusters than asked for"),
    (re.compile(r"^smallest cluster \d+ < (\S+) x mean \S+$"), r"smallest cluster < \1 x mean size"),
    (re.compile(r"^memberships ~ 1/\d+ .*$"), "memberships ~ 1/c (m too large)"),
]


def degenerate_rule(reason: str) -> str:
    """The rule behind a reason of :func:`degenerate`, without the values measured, so that the
    reasons of many views can be counted: ``noise share 0.63 > 0.5`` gives ``noise share > 0.5``."""
    for pattern, rule in _RULES:
        if pattern.match(reason):
            return pattern.sub(rule, reason)
    return reason


def autoencoder_criterion(criterion: str, tune_criterion: str) -> str:
    """The criterion that marks stage 05's ``selected`` rows, given stage 04's two.

    Stability re-fits the clusterer on sub-samples, which DCEC's cannot be: then the
    autoencoder's rows are compared by the criterion that compares grid points within one view.
    """
    return tune_criterion if criterion == "stability" else criterion


#: stage 05: models whose stability gains are closer than this to the best count as equally stable (the latent
#: size of a feature, and the pick across features: :func:`audioclust.clustering.structures.picked_model`)
STABILITY_TIE = 0.02


def chosen_latents(results: pd.DataFrame, tie: float = STABILITY_TIE) -> pd.Series:
    """Stage 05's choice of latent size, per feature, without labels: a mask of the rows of the chosen size.

    The chosen size is the one whose pre-trained embedding its most stable clusterer partitions most stably
    (``latent_stability``: the stability gain of :func:`audioclust.clustering.tuning.stability_gain`, which
    subtracts the stability of a Gaussian of the embedding's shape, so sizes compare); among sizes within
    ``tie`` (:data:`STABILITY_TIE`) of the best, the lower validation loss (``val_loss``), then the smaller size.
    Validation loss alone is no guide: it falls with every added dimension, while the clusters of a larger
    embedding grow less distinct. A feature whose sizes have no finite stability gets its smallest size.

    Parameters
    ----------
    results : stage 05's rows (``feature``, ``latent_dim``, ``status``, ``latent_stability``, ``val_loss``).
    """
    chosen = pd.Series(False, index=results.index)
    ok = results[results["status"] == "ok"]
    for _, rows in ok.groupby("feature", sort=False):
        models = rows.groupby("latent_dim").agg(stability=("latent_stability", "first"), val_loss=("val_loss", "first"))
        stable = models[np.isfinite(pd.to_numeric(models["stability"], errors="coerce"))]
        if stable.empty:
            latent = models.index.min()
        else:
            near = stable[stable["stability"] >= stable["stability"].max() - tie]
            latent = near.assign(size=near.index).sort_values(["val_loss", "size"], na_position="last").index[0]
        chosen[rows.index[rows["latent_dim"] == latent]] = True
    return chosen


def selected_by_stability(stage: str) -> bool:
    """Whether a stage-05 row is of a pre-trained embedding's clusterer other than K-Means (``ae_spectral``): such a
    row is selected only for its stability (:func:`selectable_clusterings`)."""
    return stage.startswith("ae_") and stage != "ae_kmeans"


def chosen_by(row: pd.Series, criterion: str) -> str:
    """What chose a selected row, for a summary's Choice: ``stability`` for a row :func:`selected_by_stability`,
    else ``criterion``."""
    return "stability" if selected_by_stability(str(row.get("stage", ""))) else criterion


def selectable_clusterings(results: pd.DataFrame, tie: float = STABILITY_TIE) -> pd.Series:
    """Stage 05, per model: a mask of the rows its ``selected`` row may be, without labels.

    DCEC refines the K-Means partition it starts from, so K-Means' and DCEC's rows compete (by the criterion, in
    :func:`mark_selected`) unless another clusterer of the pre-trained embedding (``ae_spectral``) partitions it more
    stably than K-Means by more than ``tie`` (:data:`STABILITY_TIE`): then DCEC would refine the less reproducible
    partition, and that clusterer's row alone may be selected. Spectral clustering follows groups that are not
    round, which K-Means and DCEC's Student's t centres cut through.

    Parameters
    ----------
    results : stage 05's rows (``view``, ``stage``, ``stability``: each ``ae_`` row's clusterer's gain).
    """
    selectable = pd.Series(True, index=results.index)
    gain = pd.to_numeric(results["stability"], errors="coerce")
    for _, rows in results.groupby("view", sort=False):
        stage = rows["stage"]
        kmeans = gain[rows.index[stage == "ae_kmeans"]]
        others = gain[rows.index[stage.map(selected_by_stability).astype(bool)]].dropna()
        floor = kmeans.iloc[0] if len(kmeans) and np.isfinite(kmeans.iloc[0]) else -np.inf
        if len(others) and others.max() > floor + tie:
            selectable[rows.index] = False
            selectable[others.idxmax()] = True
        else:
            selectable[rows.index] = stage.isin(["ae_kmeans", "dcec"])
    return selectable


def mark_selected(results: pd.DataFrame, criterion: str, k: int | None = None,
                  among: pd.Series | None = None) -> None:
    """Per feature, flag the ok row with the best criterion (stages 04 and 05).

    Sets two columns: ``eligible`` (the rows the selection may choose from) and ``selected``.
    Eligible rows are ok, have at least two clusters, a finite criterion and an empty
    ``degenerate`` (the reason :func:`audioclust.clustering.selection.degenerate` gave when the grid was
    searched: e.g. a Fuzzy C-Means whose centres collapsed returns fewer clusters than asked
    for; a few split-off outliers give a high silhouette but find no groups). When ``k`` is given (``cluster.k``
    is a number), only rows with ``k`` clusters are: the researcher asked for that many
    groups, and an algorithm that finds its own number (HDBSCAN found the 60 speaker × digit
    groups of FSDD, which are more stable than any 10) answers another question. The
    summary's best-by-NMI row is chosen among the same rows, so it shows what the selection
    could have reached.

    ``among`` (a boolean mask, e.g. :func:`chosen_latents`) narrows the rows ``selected`` may mark; the
    ``eligible`` rows stay those above.
    """
    score = oriented(results[criterion], criterion)
    n_clusters = pd.to_numeric(results["n_clusters"], errors="coerce")
    degenerate = results["degenerate"].fillna("") if "degenerate" in results else ""  # stage 05 has no such column
    eligible = (results["status"] == "ok") & np.isfinite(score) & (degenerate == "") & (n_clusters >= 2)
    if k is not None:
        eligible &= n_clusters == k
    results["eligible"] = eligible
    results["selected"] = False
    selectable = eligible if among is None else eligible & among
    for feature in pd.unique(results["feature"]):
        candidates = score[selectable & (results["feature"] == feature)]
        if len(candidates):
            results.loc[candidates.idxmax(), "selected"] = True
