"""Is the ``stability`` criterion biased by a view's dimension or by its clumpiness?

Usage::

    .venv/bin/python benchmarks/bench_stability_bias.py [--out stability_bias.json] [--seed 0]
        [--n-seeds 3] [--n-samples 600] [--algorithms kmeans agglomerative gmm] [--l2]
        [--experiments dimension structureless clumps] [--clump-dim 32] [--dup-ratio 0.5]

Stage 04 picks its label-free row by :func:`audioclust.clustering.tuning.stability_gain`:
``S(X) - S(G)``, S the mean ARI between the partition of X and those of seeded half-samples,
G one Gaussian with X's mean and covariance
(:func:`audioclust.clustering.selection.gaussian_reference`). The views it compares differ in
dimension (20-d statistics to 1024-d embeddings) and the embeddings of near-duplicate
recordings form tight clumps. This script measures, on seeded synthetic data with k = 10,
whether the gain follows the recoverable structure or the dimension, and whether clumps
that are not the structure at k score as if they were. Every matrix goes through the views'
transform, :func:`audioclust.represent.pipeline.transform` (``scale="standard"``,
``pca=0.95``, ``l2`` by ``--l2``), before it is clustered.

Experiments (each run for ``--n-seeds`` seeds; the tables give mean ± sd):

1. ``dimension``: 10 Gaussian clusters (unit within-cluster spread) whose centres are drawn
   from N(0, separation² I) in an 8-d subspace, ``clear`` (K-Means ARI about 0.9) and
   ``weak`` (about 0.4), with D - 8 noise dimensions appended and the whole rotated by a
   random orthogonal D x D map, D in 8 (nothing added), 32, 128, 512. Noise
   ``fixed_total``: the added dimensions carry a total variance of 8 (the structure's own
   within-cluster variance), however many there are, so the structure stays equally
   recoverable; ``per_dim``: variance 1 in each added dimension, so the structure is
   diluted as D grows.
2. ``structureless``: an isotropic Gaussian and a uniform cube in D dimensions: no groups
   at all, so a fair criterion gives about 0 at every D.
3. ``clumps`` in ``--clump-dim`` dimensions: ``clumps_only``, ``n / 5`` clumps of 5
   near-duplicates (per-dimension spread 0.1 or 0.3 around their centre) whose centres
   are one standard isotropic Gaussian, so nothing is there at k = 10; ``clumps_in_clusters``, the
   same clumps with their centres drawn from the 10 clusters of experiment 1 (``per_dim``
   noise), so the clusters are the structure at k = 10; ``clusters``, the clusters of
   experiment 1 without clumps.

Each case reports, per algorithm: ``p`` (components PCA kept), ``ari`` (the algorithm's
partition of all samples against the truth, where there is one), ``raw`` = S(X),
``null`` = S(G) and ``gain`` = the package's criterion. Two other references are computed
here for comparison, with the same estimator, half-samples and seed:

- ``permuted``: each column of X permuted independently (keeps every marginal, loses the
  joint grouping, and with it the clumps);
- ``clumps``: the proposed correction, a reference that keeps the data's own near-duplicate
  clumps and loses only their arrangement: rows are linked when they are closer than
  ``--dup-ratio`` x the median nearest-neighbour distance of the Gaussian reference (pairs
  far closer than structure-less data of the same covariance would put them), the linked
  groups' centres are redrawn from one Gaussian with the mean and covariance of the groups'
  centres, matched exactly (:func:`matched_gaussian`: with 120 independent draws in 28
  dimensions the reference would be more elongated than the data, hence more stable), and
  every row keeps its offset from its group's centre. Without near-duplicates every row is
  its own group and the reference is the package's Gaussian with its covariance matched
  exactly. ``dup`` is the share of rows that were linked to another.

``--experiments`` runs a subset, ``--clump-dim`` sets experiment 3's dimension. Every fit
runs on one thread (threadpoolctl). ``--out`` writes every (case, seed, algorithm) record
and the arguments as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors, radius_neighbors_graph
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from audioclust.clustering.registry import get_spec, make
from audioclust.clustering.selection import gaussian_reference, stability
from audioclust.clustering.tuning import stability_gain
from audioclust.represent.pipeline import transform

#: the number of clusters asked for, and of true clusters
K = 10
#: dimension of the subspace that holds the clusters
STRUCTURE_DIMS = 8
#: ambient dimensions of experiments 1 and 2
DIMS = (8, 32, 128, 512)
#: spread of the cluster centres in units of the within-cluster spread
SEPARATIONS = {"clear": 2.0, "weak": 1.0}
#: how the noise of the added dimensions grows with D (experiment 1)
NOISES = ("fixed_total", "per_dim")
#: near-duplicates per clump (experiment 3)
CLUMP_SIZE = 5
#: per-dimension spread of a clump around its centre (centres have spread about 1)
CLUMP_SPREADS = (0.1, 0.3)
#: the experiments, in the order they run
EXPERIMENTS = ("dimension", "structureless", "clumps")

Case = tuple[dict[str, Any], np.ndarray, np.ndarray | None]


# --------------------------------------------------------------------------- data

def rotation(dims: int, rng: np.random.Generator) -> np.ndarray:
    """A random orthogonal matrix.

    Parameters
    ----------
    dims : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (dims, dims)
    """
    q, r = np.linalg.qr(rng.standard_normal((dims, dims)))
    return q * np.sign(np.diag(r))


def clusters(n: int, separation: float, dims: int, noise: str, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
    """K Gaussian clusters in an 8-d subspace of ``dims`` dimensions, randomly rotated.

    Parameters
    ----------
    n : int
        Samples (assigned to the clusters in turn).
    separation : float
        Standard deviation of the centres; the within-cluster standard deviation is 1.
    dims : int
        Ambient dimension D (>= 8).
    noise : {"fixed_total", "per_dim"}
        Variance of each of the D - 8 added dimensions: ``8 / (D - 8)`` or 1.
    rng : numpy.random.Generator

    Returns
    -------
    X : ndarray of shape (n, dims)
    y : ndarray of shape (n,)
        The cluster of each row.
    """
    y = np.arange(n) % K
    centres = separation * rng.standard_normal((K, STRUCTURE_DIMS))
    parts = [centres[y] + rng.standard_normal((n, STRUCTURE_DIMS))]
    added = dims - STRUCTURE_DIMS
    if added:
        variance = STRUCTURE_DIMS / added if noise == "fixed_total" else 1.0
        parts.append(np.sqrt(variance) * rng.standard_normal((n, added)))
    return np.hstack(parts) @ rotation(dims, rng), y


def structureless(n: int, dims: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Data without groups.

    Parameters
    ----------
    n, dims : int
    kind : {"gaussian", "uniform"}
        An isotropic standard Gaussian or the cube [-1, 1]^dims.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n, dims)
    """
    return rng.standard_normal((n, dims)) if kind == "gaussian" else rng.uniform(-1.0, 1.0, (n, dims))


def clumped(centres: np.ndarray, spread: float, rng: np.random.Generator) -> np.ndarray:
    """:data:`CLUMP_SIZE` near-duplicates around each centre.

    Parameters
    ----------
    centres : ndarray of shape (n_clumps, dims)
    spread : float
        Per-dimension standard deviation around the centre.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_clumps * CLUMP_SIZE, dims)
        Row ``i`` belongs to clump ``i // CLUMP_SIZE``.
    """
    rows = np.repeat(centres, CLUMP_SIZE, axis=0)
    return rows + spread * rng.standard_normal(rows.shape)


def dimension_cases(n: int, seed: int) -> Iterator[Case]:
    """Experiment 1: the same clusters in ever more dimensions (D = 8 once: nothing is added)."""
    for name, separation in SEPARATIONS.items():
        X, y = clusters(n, separation, STRUCTURE_DIMS, NOISES[0], np.random.default_rng(seed))
        yield {"experiment": "dimension", "case": f"{name} / no added dims", "D": STRUCTURE_DIMS}, X, y
        for noise in NOISES:
            for dims in DIMS[1:]:
                X, y = clusters(n, separation, dims, noise, np.random.default_rng(seed))
                yield {"experiment": "dimension", "case": f"{name} / {noise}", "D": dims}, X, y


def structureless_cases(n: int, seed: int) -> Iterator[Case]:
    """Experiment 2: no groups, in ever more dimensions."""
    for kind in ("gaussian", "uniform"):
        for dims in DIMS:
            X = structureless(n, dims, kind, np.random.default_rng(seed))
            yield {"experiment": "structureless", "case": kind, "D": dims}, X, None


def clump_cases(n: int, seed: int, dims: int) -> Iterator[Case]:
    """Experiment 3: clumps without and with clusters at k, and the clusters alone."""
    n_clumps = n // CLUMP_SIZE
    for spread in CLUMP_SPREADS:
        rng = np.random.default_rng(seed)
        X = clumped(rng.standard_normal((n_clumps, dims)), spread, rng)
        yield {"experiment": "clumps", "case": f"clumps_only / spread {spread:g}", "D": dims}, X, None
    for name, separation in SEPARATIONS.items():
        for spread in CLUMP_SPREADS:
            rng = np.random.default_rng(seed)
            centres, y = clusters(n_clumps, separation, dims, "per_dim", rng)
            X = clumped(centres, spread, rng)
            yield ({"experiment": "clumps", "case": f"clumps_in_clusters {name} / spread {spread:g}", "D": dims},
                   X, np.repeat(y, CLUMP_SIZE))
        X, y = clusters(n, separation, dims, "per_dim", np.random.default_rng(seed))
        yield {"experiment": "clumps", "case": f"clusters {name}", "D": dims}, X, y


# --------------------------------------------------------------------------- references

def permuted_reference(X: np.ndarray, random_state: int) -> np.ndarray:
    """Each column of X permuted independently (seeded): X's marginals, no joint grouping.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    random_state : int

    Returns
    -------
    ndarray of shape (n_samples, n_features)
    """
    rng = np.random.default_rng(random_state)
    return np.column_stack([rng.permutation(column) for column in X.T])


def near_duplicate_groups(X: np.ndarray, random_state: int, ratio: float) -> np.ndarray:
    """Groups of rows linked by distances far below those of structure-less data.

    Two rows are linked when closer than ``ratio`` times the median nearest-neighbour
    distance of X's Gaussian reference; the groups are the connected components.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    random_state : int
        Seed of the Gaussian reference.
    ratio : float

    Returns
    -------
    ndarray of shape (n_samples,)
        Group codes 0..n_groups-1 (a row linked to none is a group of its own).
    """
    reference = gaussian_reference(X, random_state)
    distances = NearestNeighbors(n_neighbors=2).fit(reference).kneighbors(reference)[0][:, 1]
    graph = radius_neighbors_graph(X, ratio * float(np.median(distances)))
    return connected_components(graph, directed=False)[1]


def matched_gaussian(points: np.ndarray, random_state: int) -> np.ndarray:
    """Gaussian draws whose sample mean and covariance are exactly those of ``points``.

    ``mean + sqrt(n) Q (V sqrt(w))^T``, ``Q`` the orthonormal, centred columns of a seeded
    standard normal matrix and ``w, V`` the eigen-decomposition of the points' (population)
    covariance. Independent draws (as :func:`gaussian_reference` makes) have a sample
    covariance whose eigenvalues are spread further than the points' own, which matters
    when there are few draws per dimension (one per clump here): the reference is then more
    elongated, hence more stable, than the data. With fewer than ``p + 1`` points the draws
    are independent.

    Parameters
    ----------
    points : ndarray of shape (n, p)
    random_state : int

    Returns
    -------
    ndarray of shape (n, p)
    """
    n, p = points.shape
    z = np.random.default_rng(random_state).standard_normal((n, p))
    if n > p:
        z = np.sqrt(n) * np.linalg.qr(z - z.mean(axis=0))[0]
    centred = points - points.mean(axis=0)
    w, V = np.linalg.eigh(centred.T @ centred / n)
    return points.mean(axis=0) + z @ (V * np.sqrt(np.clip(w, 0.0, None))).T


def clump_reference(X: np.ndarray, groups: np.ndarray, random_state: int) -> np.ndarray:
    """X's near-duplicate groups, each moved to a centre drawn from one Gaussian.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    groups : ndarray of shape (n_samples,)
        From :func:`near_duplicate_groups`.
    random_state : int
        Seed of the centres.

    Returns
    -------
    ndarray of shape (n_samples, n_features)
        ``centre[group] + (x - mean of its group)``, one centre per group from
        :func:`matched_gaussian` of the groups' means (each group counted once).
    """
    sizes = np.bincount(groups)
    means = np.stack([np.bincount(groups, weights=column) for column in X.T], axis=1) / sizes[:, None]
    return matched_gaussian(means, random_state)[groups] + (X - means[groups])


# --------------------------------------------------------------------------- measurement

def quiet_fit_predict(name: str, random_state: int, X: np.ndarray) -> np.ndarray:
    """Labels of X by a fresh registry estimator with k = :data:`K`, warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(make(name, K, random_state).fit_predict(X))


def measure(X: np.ndarray, truth: np.ndarray | None, name: str, seed: int, groups: np.ndarray
            ) -> dict[str, float]:
    """The package's stability gain and the gains against the two other references.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The transformed view.
    truth : ndarray of shape (n_samples,) or None
    name : str
        Registry key.
    seed : int
        ``random_state`` of everything.
    groups : ndarray of shape (n_samples,)
        Near-duplicate groups of X.

    Returns
    -------
    dict
        ``ari`` (NaN without truth), ``raw``, ``null_<reference>`` and ``gain_<reference>``
        for each reference (``gaussian``: the package's; ``permuted``; ``clumps``), ``fit_s``
        (seconds of the whole measurement).
    """
    start = time.perf_counter()
    fit_predict: Callable[[np.ndarray], np.ndarray] = partial(quiet_fit_predict, name, seed)
    labels = fit_predict(X)
    package = stability_gain(name, X, K, seed, labels=labels)
    row = {"ari": float("nan") if truth is None else float(adjusted_rand_score(truth, labels)),
           "raw": package["stability_raw"], "null_gaussian": package["stability_null"],
           "gain_gaussian": package["stability"]}
    others = {"permuted": permuted_reference(X, seed), "clumps": clump_reference(X, groups, seed)}
    for reference, Y in others.items():
        row[f"null_{reference}"] = stability(Y, fit_predict, random_state=seed)
        row[f"gain_{reference}"] = row["raw"] - row[f"null_{reference}"]
    row["fit_s"] = time.perf_counter() - start
    return row


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every case for every seed and algorithm, as flat records."""
    records = []
    for seed in range(args.seed, args.seed + args.n_seeds):
        makers = {"dimension": partial(dimension_cases, args.n_samples, seed),
                  "structureless": partial(structureless_cases, args.n_samples, seed),
                  "clumps": partial(clump_cases, args.n_samples, seed, args.clump_dim)}
        for info, raw, truth in (case for experiment in args.experiments for case in makers[experiment]()):
            X, _, kept = transform(raw, l2=args.l2, scale="standard", pca=0.95)
            X = np.asarray(X, dtype=np.float64)
            groups = near_duplicate_groups(X, seed, args.dup_ratio)
            dup = float(np.mean(np.bincount(groups)[groups] > 1))
            for name in args.algorithms:
                row = measure(X, truth, name, seed, groups)
                records.append({**info, "seed": seed, "algorithm": name, "p": kept, "dup": dup, **row})
            print(f"seed {seed} {info['experiment']} {info['case']} D={info['D']}: p={kept}", file=sys.stderr)
    return records


# --------------------------------------------------------------------------- report

def mean_sd(values: list[float], digits: int = 2) -> str:
    """``mean ± sd`` of the finite values, ``–`` when there are none."""
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return "–"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def markdown(records: list[dict[str, Any]], experiment: str) -> str:
    """One experiment's table: a row per case, D and algorithm, the seeds' mean ± sd."""
    columns = ["ari", "raw", "null_gaussian", "gain_gaussian", "gain_permuted", "gain_clumps", "dup"]
    heads = ["ARI vs truth", "S(X)", "S(Gauss)", "**gain** (package)", "gain (permuted ref)",
             "gain (clump ref)", "dup share"]
    lines = ["| case | D | p | algorithm | " + " | ".join(heads) + " |",
             "|---|---:|---:|---|" + "---:|" * len(heads)]
    chosen = [r for r in records if r["experiment"] == experiment]
    keys = list(dict.fromkeys((r["case"], r["D"], r["algorithm"]) for r in chosen))
    for case, dims, name in keys:
        rows = [r for r in chosen if (r["case"], r["D"], r["algorithm"]) == (case, dims, name)]
        kept = f"{np.mean([r['p'] for r in rows]):.0f}"
        cells = [mean_sd([r[c] for r in rows]) for c in columns]
        lines.append(f"| {case} | {dims} | {kept} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run every case, print the tables and write ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="JSON file of every record")
    parser.add_argument("--seed", type=int, default=0, help="first seed (data and estimators)")
    parser.add_argument("--n-seeds", type=int, default=3)
    parser.add_argument("--n-samples", type=int, default=600,
                        help="at most 3000 (stability_gain's max_samples), so that every reference sees the same rows")
    parser.add_argument("--algorithms", nargs="+", default=["kmeans", "agglomerative", "gmm"],
                        help="registry keys that take k (gmm: most of the time, about 9 s per 512-d case)")
    parser.add_argument("--experiments", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS))
    parser.add_argument("--clump-dim", type=int, default=32, help="ambient dimension of experiment 3")
    parser.add_argument("--dup-ratio", type=float, default=0.5,
                        help="near-duplicate link distance / median nearest-neighbour distance of the Gaussian")
    parser.add_argument("--l2", action="store_true", help="L2-normalise rows before scaling (embedding views)")
    args = parser.parse_args(argv)
    if args.n_samples > 3000:
        parser.error("--n-samples must be at most 3000")
    for name in args.algorithms:
        if not get_spec(name).needs_k:
            parser.error(f"{name} finds its own number of clusters; the benchmark asks for k = {K}")

    start = time.perf_counter()
    # one thread per fit: with other jobs on the machine, K-Means' OpenMP threads made an
    # 8-d fit over a hundred times slower
    with threadpool_limits(1):
        records = run(args)
    titles = {"dimension": "1. Same clusters in D dimensions (noise fixed in total, or per added dimension)",
              "structureless": "2. Structure-less data (gain should be about 0 at every D)",
              "clumps": f"3. Clumps of {CLUMP_SIZE} near-duplicates (n / {CLUMP_SIZE} clumps) in "
                        f"{args.clump_dim} dimensions"}
    print(f"k = {K}, n = {args.n_samples}, seeds {args.seed}..{args.seed + args.n_seeds - 1} (mean ± sd), "
          f"transform: scale standard, PCA 0.95{', L2' if args.l2 else ''}; p = components kept\n")
    for experiment in args.experiments:
        print(f"### {titles[experiment]}\n\n{markdown(records, experiment)}\n")
    print(f"{time.perf_counter() - start:.0f} s")
    if args.out is not None:
        args.out.write_text(json.dumps({"args": {k: str(v) if isinstance(v, Path) else v
                                                 for k, v in vars(args).items()},
                                        "records": records}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
