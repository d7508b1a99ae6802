"""Grid search of a clusterer's parameters by an internal criterion (never by labels), and the
stability gain that the ``stability`` criterion scores.
"""

from __future__ import annotations

import itertools
import logging
import time
import warnings
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from audioclust.clustering.estimators.fuzzy import uniform_memberships
from audioclust.clustering.metrics import (
    CRITERIA,
    HIGHER_IS_BETTER,
    NOISE,
    internal_scores,
)
from audioclust.clustering.registry import check_params, get_spec, make
from audioclust.clustering.selection import degenerate, gaussian_reference, stability
from audioclust.core.errors import AudioclustError, ConfigError

log = logging.getLogger(__name__)


def quiet_fit_predict(name: str, n_clusters: int | None, random_state: int, params: dict[str, Any],
                       X: np.ndarray) -> np.ndarray:
    """A fresh estimator's labels of X, without the convergence warnings of many small fits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(make(name, n_clusters, random_state, **params).fit_predict(X))


def _fit_point(name, X, n_clusters, random_state, params, sample_size):
    """Fit one grid point; return (estimator or None, its labels or None, row of scores)."""
    est = make(name, n_clusters, random_state, **params)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            labels = np.asarray(est.fit_predict(X))
        except (ValueError, np.linalg.LinAlgError) as exc:
            log.debug("%s %s failed: %s", name, params, exc)
            return None, None, {"fit_s": time.perf_counter() - start, "error": f"{type(exc).__name__}: {exc}",
                                "warning": ""}
    row = {"fit_s": time.perf_counter() - start, "error": "",
           "warning": str(caught[0].message) if caught else ""}
    row.update(internal_scores(X, labels, sample_size=sample_size, random_state=random_state))
    return est, labels, row


def select_params(
    name: str,
    X,
    n_clusters: int | None = None,
    random_state: int = 0,
    criterion: str = "silhouette",
    params: dict[str, Any] | None = None,
    grid: dict[str, list[Any]] | None = None,
    sample_size: int | None = None,
    min_cluster_share: float = 0.0,
    max_noise_share: float = 1.0,
    n_resamples: int = 5,
    stability_max_samples: int | None = 3000,
) -> tuple[BaseEstimator, dict[str, Any], pd.DataFrame]:
    """Fit every grid point and keep the best by a label-free criterion (labels are never seen).

    Parameters
    ----------
    name : str
        Registry key.
    X : array-like of shape (n_samples, n_features)
    n_clusters : int or None
        k for estimators that need it.
    random_state : int
        The pipeline's seed (estimators, the silhouette sample, the stability samples).
    criterion : {"silhouette", "calinski_harabasz", "davies_bouldin", "stability"}
        Higher is better except for Davies-Bouldin; ``stability`` is :func:`stability_gain`.
    params : dict or None
        Fixed parameters for every point (e.g. ``params_from_config(cfg)[name]``).
    grid : dict or None
        Parameter -> values; the points are their Cartesian product, in the given order,
        each overriding ``params``. None: the registry's grid; ``{}``: ``params`` only.
    sample_size : int or None
        Silhouette sample (see :func:`audioclust.clustering.metrics.silhouette`).
    min_cluster_share, max_noise_share : float
        See :func:`audioclust.clustering.selection.degenerate`.
    n_resamples, stability_max_samples : int
        Of :func:`stability_gain` (criterion ``stability`` only).

    Returns
    -------
    best_estimator : fitted estimator
    best_params : dict
        The parameters given to :func:`make` for it (fixed + grid point).
    table : DataFrame
        One row per grid point in grid order: the grid's parameters, ``silhouette,
        calinski_harabasz, davies_bouldin, n_clusters, noise_fraction, fit_s, error,
        warning``, with criterion ``stability`` also ``stability, stability_raw,
        stability_null``; ``degenerate`` (why the point is not eligible, ``""`` when it
        is), ``rank`` (1 = best) and ``selected``.

    Notes
    -----
    A point is degenerate when it failed to fit (ValueError or LinAlgError, kept in
    ``error``), its partition is degenerate (:func:`audioclust.clustering.selection.degenerate` with
    ``n_clusters``, ``min_cluster_share`` and ``max_noise_share``) or its criterion is NaN. Degenerate points
    rank after every other (failed ones last); ties keep grid order. If every point
    failed, AudioclustError is raised with the first error.
    """
    if criterion not in CRITERIA:
        raise ConfigError(f"unknown selection criterion {criterion!r}; allowed: {', '.join(CRITERIA)}")
    params = dict(params or {})
    grid = get_spec(name).grid if grid is None else grid
    check_params(name, {**params, **dict.fromkeys(grid)})
    asked = n_clusters if get_spec(name).needs_k else None
    keys = list(grid)
    points = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]

    rows, fitted = [], []
    for point in points:
        est, labels, row = _fit_point(name, X, n_clusters, random_state, {**params, **point}, sample_size)
        reason = "fit failed" if est is None else (degenerate(labels, asked, min_cluster_share, max_noise_share)
                                                   or uniform_memberships(est))
        if criterion == "stability" and not reason:
            try:
                row.update(stability_gain(name, X, n_clusters, random_state, {**params, **point}, labels=labels,
                                          n_resamples=n_resamples, max_samples=stability_max_samples))
            except (ValueError, np.linalg.LinAlgError) as exc:
                log.debug("%s %s: stability failed: %s", name, point, exc)
                row["stability"] = np.nan
        if not reason and np.isnan(row.get(criterion, np.nan)):
            reason = f"{criterion} is NaN"
        row["degenerate"] = reason
        rows.append({**point, **row})
        fitted.append(est)
    table = pd.DataFrame(rows)

    sign = 1.0 if HIGHER_IS_BETTER[criterion] else -1.0
    # failed after degenerate after the rest; best criterion first; ties keep grid order
    order = sorted(range(len(rows)), key=lambda i: (fitted[i] is None, bool(rows[i]["degenerate"]),
                                                    0.0 if rows[i]["degenerate"] else -sign * rows[i][criterion], i))
    table["rank"] = np.argsort(order) + 1
    best = order[0]
    if fitted[best] is None:
        raise AudioclustError(f"{name}: every grid point failed to fit; first error: {rows[0]['error']}")
    # the table says it (``degenerate`` of the selected point); a stage logs one summary of its rows
    # (stage 04 runs this in worker processes, once per view)
    log.debug("%s: best of %d grid points by %s: %s%s", name, len(points), criterion, points[best],
              f" (every point is degenerate: {rows[best]['degenerate']})" if rows[best]["degenerate"] else "")
    table["selected"] = table["rank"] == 1
    best_params = {**params, **points[best]}
    return fitted[best], best_params, table


# --------------------------------------------------------------------------- selection

def stability_gain(
    name: str,
    X,
    n_clusters: int | None = None,
    random_state: int = 0,
    params: dict[str, Any] | None = None,
    labels=None,
    n_resamples: int = 5,
    max_samples: int | None = 3000,
) -> dict[str, float]:
    """Stability of ``name`` on X above its stability on a structure-less Gaussian of the same shape.

    Parameters
    ----------
    name : str
        Registry key.
    X : array-like of shape (n_samples, n_features)
    n_clusters : int or None
        k for estimators that need it.
    random_state : int
        Seeds the estimators, the sample, the half-samples and the Gaussian reference.
    params : dict or None
        Parameters of every fit (as for :func:`make`).
    labels : array-like of shape (n_samples,) or None
        The partition of all of X by the same estimator, when already fitted (used when X
        is not sampled; saves one fit).
    n_resamples : int
        Half-samples per stability (B).
    max_samples : int or None
        Above this many samples, both stabilities are computed on a seeded sample of this size.

    Returns
    -------
    dict
        ``stability`` (= ``stability_raw - stability_null``), ``stability_raw`` (S of the
        data), ``stability_null`` (S of the Gaussian reference; of K-Means with the number
        of clusters found in the data when the estimator finds fewer than two there).
    """
    X = np.asarray(X, dtype=np.float64)
    params = dict(params or {})
    n = X.shape[0]
    if max_samples is not None and n > max_samples:
        X = X[np.sort(np.random.default_rng(random_state).choice(n, size=max_samples, replace=False))]
        labels = None

    fit_predict = partial(quiet_fit_predict, name, n_clusters, random_state, params)
    labels = fit_predict(X) if labels is None else np.asarray(labels)
    raw = stability(X, fit_predict, labels=labels, n_resamples=n_resamples, random_state=random_state)
    reference = gaussian_reference(X, random_state)
    ref_labels = fit_predict(reference)
    if np.setdiff1d(ref_labels, [NOISE]).size < 2:
        # a density clusterer rightly finds nothing in the reference; what the shape alone gives a
        # partition into as many groups as it found in the data is measured with K-Means instead
        found = max(2, np.setdiff1d(labels, [NOISE]).size)
        kmeans = partial(quiet_fit_predict, "kmeans", found, random_state, {})
        null = stability(reference, kmeans, n_resamples=n_resamples, random_state=random_state)
    else:
        null = stability(reference, fit_predict, labels=ref_labels, n_resamples=n_resamples,
                         random_state=random_state)
    return {"stability": raw - null, "stability_raw": raw, "stability_null": null}
