"""Number of clusters from the data alone: elbow, silhouette, Davies-Bouldin, Calinski-Harabasz, gap.

Every criterion is read off K-Means partitions (seeded, ``n_init`` restarts) of the same
matrix for each candidate k; labels are never looked at. :func:`estimate_k` returns one
table row per k, each criterion's choice and their consensus.

Choices
    ``elbow``: the knee of the inertia curve (:func:`knee`); ``silhouette``: max;
    ``davies_bouldin``: min; ``calinski_harabasz``: max; ``gap``: Tibshirani, Walther &
    Hastie (2001): the smallest k with Gap(k) >= Gap(k+1) - s(k+1), where k+1 is the next
    candidate; when no k qualifies, the largest candidate. Ties pick the smallest k.
    Silhouette, Davies-Bouldin and Calinski-Harabasz are undefined at k = 1 (NaN there);
    only the elbow and the gap statistic can answer "one cluster".

Consensus
    The k chosen by the most criteria; when several ks are chosen equally often, the
    lower median of those ks (for 2 tied values the smaller, for 3 the middle one).
    A choice at either end of the candidate range counts only when no criterion found an
    optimum inside it, or when all criteria but at most one chose that end: an end is
    where a curve that rises or falls over the whole range stops (silhouette and
    Davies-Bouldin drift to k_min on weakly separated audio views, Calinski-Harabasz and
    the gap's fallback to k_max), not evidence for that k by itself. k = 1 (the gap's
    "no structure", with k_min = 1) is never set aside.
    ``benchmarks/bench_kselect.py`` (k = 2..10, views with a known number of groups): mean
    |k - truth| on the demo's 21 views 3.43 -> 1.52, on 60 subsets of FSDD's views 2.15 ->
    1.42, on 15 sets of Gaussian blobs 0.07 -> 0.00.

Large collections
    Every criterion fits K-Means about ``len(k_range) * (1 + n_references)`` times, so
    stage 04 estimates k on a seeded sample of ``cluster.kselect_max_samples`` files
    (:func:`choose_k`); inside, the silhouette and the gap statistic use a seeded sample
    of ``sample_size``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

from audioclust.clustering.metrics import calinski_harabasz, davies_bouldin, silhouette
from audioclust.core.errors import AudioclustError, ConfigError
from audioclust.core.progress import progress
from audioclust.core.vocab import K_METHODS

log = logging.getLogger(__name__)


def knee(y, x=None) -> int:
    """Index of the knee (or elbow) of a curve: the point farthest from its chord.

    Both axes are first scaled to [0, 1] (Kneedle-style), so the answer does not depend
    on units; the distance is the perpendicular one to the straight line joining the
    first and the last point. Works for increasing convex curves (sorted k-distances:
    the last point before the steep rise) and decreasing convex ones (inertia vs k: the
    elbow).

    Parameters
    ----------
    y : array-like of shape (n_points,)
        Curve values, ordered by ``x``.
    x : array-like of shape (n_points,) or None
        Abscissae; None means 0, 1, ..., n_points - 1.

    Returns
    -------
    int
        Index into ``y``; 0 for fewer than three points or a flat curve (no knee).
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    x = np.arange(y.size, dtype=np.float64) if x is None else np.asarray(x, dtype=np.float64).ravel()
    if y.size != x.size:
        raise AudioclustError(f"knee: x has {x.size} points but y has {y.size}")
    if y.size < 3 or np.ptp(y) == 0 or np.ptp(x) == 0:
        return 0
    xs = (x - x.min()) / np.ptp(x)
    ys = (y - y.min()) / np.ptp(y)
    dx, dy = xs[-1] - xs[0], ys[-1] - ys[0]
    # |cross product| / chord length = perpendicular distance to the chord
    dist = np.abs(dx * (ys - ys[0]) - dy * (xs - xs[0])) / np.hypot(dx, dy)
    return int(np.argmax(dist))


@dataclass
class KSelection:
    """Result of :func:`estimate_k`.

    Attributes
    ----------
    table : DataFrame
        One row per candidate k (column ``k``), columns ``inertia`` (the elbow's curve),
        and per requested criterion: ``silhouette``, ``davies_bouldin``,
        ``calinski_harabasz``, ``gap`` with ``gap_s`` (its s_k = sd_k * sqrt(1 + 1/B)).
    choices : dict
        Criterion name -> chosen k (a criterion that is NaN for every k is left out).
    consensus : int
        The criteria's consensus (:func:`consensus` over the candidate ks).
    dropped : tuple of int
        Candidates left out: k must lie between 1 and n_samples - 1 (the caller says so once,
        not once per matrix).
    """

    table: pd.DataFrame
    choices: dict[str, int]
    consensus: int
    dropped: tuple[int, ...] = ()

    def to_record(self) -> dict[str, Any]:
        """Plain JSON-able values (a memo's): lists keep the order of the columns and of the criteria,
        which a JSON object with sorted keys would not."""
        return {"columns": list(self.table.columns), "table": self.table.to_dict(orient="list"),
                "choices": list(self.choices.items()), "consensus": self.consensus, "dropped": list(self.dropped)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> KSelection:
        """The selection :meth:`to_record` described."""
        return cls(table=pd.DataFrame(record["table"], columns=record["columns"]),
                   choices={m: int(k) for m, k in record["choices"]}, consensus=int(record["consensus"]),
                   dropped=tuple(record["dropped"]))


def consensus(choices: Iterable[int], ks: Sequence[int] | None = None) -> int:
    """Most common value; ties -> the lower median of the tied values.

    With ``ks`` (the candidate range), choices at its ends are set aside when another
    choice lies strictly inside it, unless one end was chosen by all but at most one.
    k = 1 is never set aside: it is the gap statistic's "no structure", not where a curve
    stops (silhouette, Davies-Bouldin and Calinski-Harabasz cannot choose it).
    """
    choices = [int(c) for c in choices]
    if ks is not None:
        ends = {min(ks), max(ks)} - {1}
        inside = [c for c in choices if c not in ends]
        at_ends = Counter(c for c in choices if c in ends)
        if inside and max(at_ends.values(), default=0) < len(choices) - 1:
            choices = inside
    counts = Counter(choices)
    if not counts:
        raise AudioclustError("no criterion chose a k: give at least one criterion and k range with 2+ values")
    top = max(counts.values())
    tied = sorted(k for k, c in counts.items() if c == top)
    return tied[(len(tied) - 1) // 2]


def _sample(n: int, sample_size: int | None, random_state: int) -> np.ndarray | None:
    if sample_size is None or sample_size >= n:
        return None
    return np.sort(np.random.default_rng(random_state).choice(n, size=sample_size, replace=False))


def _log_w(X: np.ndarray, k: int, n_init: int, random_state: int) -> float:
    inertia = KMeans(n_clusters=k, n_init=n_init, random_state=random_state).fit(X).inertia_
    # duplicates can make W exactly 0
    return float(np.log(max(inertia, np.finfo(np.float64).tiny)))


def gap_statistic(
    X,
    ks: Sequence[int],
    random_state: int = 0,
    n_references: int = 10,
    n_init: int = 10,
    reference: str = "pca",
    log_w: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gap(k) = E*[log W_k] - log W_k and its s_k, for each k.

    W_k is the pooled within-cluster sum of squares of K-Means (its inertia). The
    expectation is the mean over ``n_references`` uniform reference sets of X's size,
    drawn by ``numpy.random.default_rng(random_state)`` in the bounding box of X
    (``reference="box"``) or of X rotated onto its principal axes (``"pca"``, Tibshirani's
    recommended variant; W is rotation-invariant, so the references stay rotated).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    ks : sequence of int
        Candidate numbers of clusters (each < n_samples).
    log_w : ndarray of shape (len(ks),) or None
        log W_k of X when already computed (saves the K-Means fits on X).

    Returns
    -------
    gap : ndarray of shape (len(ks),)
    s : ndarray of shape (len(ks),)
        sd_k * sqrt(1 + 1/B), sd_k the population standard deviation of the references' log W_k.
    """
    X = np.asarray(X, dtype=np.float64)
    if reference == "pca":
        centred = X - X.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        box = centred @ vt.T
    elif reference == "box":
        box = X
    else:
        raise ConfigError(f"gap reference {reference!r} is not known; use 'pca' or 'box'")
    if log_w is None:
        log_w = np.array([_log_w(X, k, n_init, random_state) for k in ks])
    rng = np.random.default_rng(random_state)
    lo, hi = box.min(axis=0), box.max(axis=0)
    ref = np.empty((n_references, len(ks)))
    for b in range(n_references):
        Z = rng.uniform(lo, hi, size=box.shape)
        ref[b] = [_log_w(Z, k, n_init, random_state) for k in ks]
    gap = ref.mean(axis=0) - log_w
    s = ref.std(axis=0) * np.sqrt(1.0 + 1.0 / n_references)
    return gap, s


def gap_choice(ks: Sequence[int], gap: np.ndarray, s: np.ndarray) -> int:
    """Smallest k with Gap(k) >= Gap(k+1) - s(k+1) (k+1: the next candidate); else the largest k."""
    for i in range(len(ks) - 1):
        if gap[i] >= gap[i + 1] - s[i + 1]:
            return int(ks[i])
    return int(ks[-1])


def estimate_k(
    X,
    k_range: Iterable[int],
    random_state: int = 0,
    methods: Sequence[str] = K_METHODS,
    sample_size: int | None = None,
    n_init: int = 10,
    n_references: int = 10,
    reference: str = "pca",
) -> KSelection:
    """Estimate the number of clusters by several internal criteria.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The matrix to be clustered (float32 is fine).
    k_range : iterable of int
        Candidate ks, e.g. ``range(cfg.cluster.k_min, cfg.cluster.k_max + 1)``; ks >=
        n_samples are dropped with a warning. Include 1 to let elbow and gap say "one cluster".
    random_state : int
        Seeds K-Means, the samples and the gap's reference sets.
    methods : sequence of str
        Subset of ``elbow, silhouette, davies_bouldin, calinski_harabasz, gap``.
    sample_size : int or None
        Above this many samples, the silhouette is computed on a seeded sample of this
        size and the gap statistic on a seeded sample (and references) of this size;
        inertia, Davies-Bouldin and Calinski-Harabasz always use every sample.
    n_init : int
        K-Means restarts for every fit (also those on the reference sets).
    n_references : int
        Reference sets B of the gap statistic.
    reference : {"pca", "box"}
        Box of the gap's uniform references (see :func:`gap_statistic`).

    Returns
    -------
    KSelection
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise AudioclustError(f"estimate_k needs a matrix of shape (n_samples >= 2, n_features); got {X.shape}")
    unknown = [m for m in methods if m not in K_METHODS]
    if unknown or not methods:
        raise ConfigError(f"unknown k-selection method {unknown[0] if unknown else None!r}; "
                          f"allowed: {', '.join(K_METHODS)}")
    n = X.shape[0]
    candidates = sorted({int(k) for k in k_range})
    ks = [k for k in candidates if 1 <= k < n]
    if not ks:
        raise ConfigError(f"no usable k in {candidates} for {n} samples: lower cluster.k_min / cluster.k_max")

    rows = []
    for k in progress(ks, "k selection", unit="k", inner=True):  # the stage reports per view
        km = KMeans(n_clusters=k, n_init=n_init, random_state=random_state).fit(X)
        row = {"k": k, "inertia": float(km.inertia_)}
        if "silhouette" in methods:
            row["silhouette"] = silhouette(X, km.labels_, sample_size=sample_size, random_state=random_state)
        if "davies_bouldin" in methods:
            row["davies_bouldin"] = davies_bouldin(X, km.labels_)
        if "calinski_harabasz" in methods:
            row["calinski_harabasz"] = calinski_harabasz(X, km.labels_)
        rows.append(row)
    table = pd.DataFrame(rows)

    if "gap" in methods:
        idx = _sample(n, sample_size, random_state)
        if idx is None:
            log_w = np.log(np.maximum(table["inertia"].to_numpy(), np.finfo(np.float64).tiny))
            gap, s = gap_statistic(X, ks, random_state, n_references, n_init, reference, log_w=log_w)
        else:
            gap, s = gap_statistic(X[idx], ks, random_state, n_references, n_init, reference)
        table["gap"], table["gap_s"] = gap, s

    choices: dict[str, int] = {}
    for method in methods:
        if method == "elbow":
            choices[method] = ks[knee(table["inertia"], table["k"])]
        elif method == "gap":
            choices[method] = gap_choice(ks, table["gap"].to_numpy(), table["gap_s"].to_numpy())
        else:
            values = table[method].to_numpy()
            if np.all(np.isnan(values)):
                continue
            best = np.nanargmin(values) if method == "davies_bouldin" else np.nanargmax(values)
            choices[method] = ks[int(best)]
    result = KSelection(table=table, choices=choices, consensus=consensus(choices.values(), ks),
                        dropped=tuple(k for k in candidates if k not in ks))
    log.debug("k selection over %s: %s -> consensus k = %d", ks, choices, result.consensus)
    return result


def selection_table(selections: dict[str, KSelection]) -> pd.DataFrame:
    """One table of several k selections: their rows with ``view``, ``chosen_by`` (the
    criteria that chose that k) and ``consensus`` (whether it is the consensus k)."""
    parts = []
    for view, sel in selections.items():
        part = sel.table.copy()
        part.insert(0, "view", view)
        part["chosen_by"] = [",".join(m for m, kk in sel.choices.items() if kk == k) for k in part["k"]]
        part["consensus"] = part["k"] == sel.consensus
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
