"""The view transform as a scikit-learn Pipeline: the same numbers as before, and new recordings placed.

``_reference_*`` below are verbatim copies of ``audioclust.represent.pipeline`` before it became a
pipeline (``transform``, ``_umap``, ``impute_column_means``, ``n_components_for``): the frozen
reference that the pipeline must reproduce bit for bit.
"""

from __future__ import annotations

import ast
import itertools
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline

from audioclust.represent import pipeline
from audioclust.represent.pipeline import make_view_pipeline, pca_summary

log = logging.getLogger(__name__)

UMAP_MIN_SAMPLES = 16

# UMAP says so whenever it is seeded
pytestmark = pytest.mark.filterwarnings("ignore:n_jobs value:UserWarning")


# --------------------------------------------------------------------------- the reference (verbatim)

def _reference_impute_column_means(X: np.ndarray) -> np.ndarray:
    X = np.array(X, dtype=np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        counts = (~bad).sum(axis=0)
        sums = np.where(bad, 0.0, X).sum(axis=0)
        means = np.divide(sums, counts, out=np.zeros(X.shape[1]), where=counts > 0)
        X[bad] = np.take(means, np.nonzero(bad)[1])
    return X


def _reference_n_components_for(ratio: np.ndarray, pca: float) -> int:
    if pca >= 1:
        return max(1, min(int(pca), ratio.size))
    cumulative = np.cumsum(ratio)
    # tolerance: a cumulative sum that should reach 1.0 may stop at 0.9999999
    return max(1, min(int(np.searchsorted(cumulative, pca - 1e-9) + 1), ratio.size))


def _reference_transform(
    raw: np.ndarray,
    scale: str = "standard",
    clip: float | None = None,
    pca: float | None = None,
    whiten: bool = False,
    umap: int | None = None,
    umap_neighbors: int = 50,
    umap_min_dist: float = 0.0,
    umap_max_samples: int | None = None,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    X = _reference_impute_column_means(raw)
    if scale == "standard":
        std = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
        if clip is not None:
            X = np.clip(X, -clip, clip)
    elif scale == "minmax":
        lo, span = X.min(axis=0), np.ptp(X, axis=0)
        X = (X - lo) / np.where(span > 0, span, 1.0)
    ratio, n_keep = None, None
    if pca is not None and X.shape[0] >= 2:
        # every component, for the explained-variance curve; the eigen-decomposition of the
        # covariance is the cheaper exact route when there are many more samples than dimensions
        solver = "covariance_eigh" if X.shape[0] >= 2 * X.shape[1] else "full"
        model = PCA(n_components=None, svd_solver=solver).fit(X)
        ratio = np.nan_to_num(model.explained_variance_ratio_)
        n_keep = _reference_n_components_for(ratio, pca)
        X = model.transform(X)[:, :n_keep]
        if whiten:
            sd = np.sqrt(model.explained_variance_[:n_keep])
            X = X / np.where(sd > 1e-12, sd, 1.0)
    if umap is not None:
        X = _reference_umap(X, umap, umap_neighbors, umap_min_dist, umap_max_samples, random_state)
    return X.astype(np.float32), ratio, n_keep


def _reference_umap(X: np.ndarray, n_components: int, n_neighbors: int, min_dist: float, max_samples: int | None,
                    random_state: int) -> np.ndarray:
    n = X.shape[0]
    if n < UMAP_MIN_SAMPLES:
        log.warning("UMAP skipped: %d samples, it needs at least %d", n, UMAP_MIN_SAMPLES)
        return X
    import umap as umap_learn  # heavy import (numba), only when asked for
    model = umap_learn.UMAP(n_components=min(n_components, n - 2), n_neighbors=min(n_neighbors, n - 1),
                            min_dist=min_dist, random_state=random_state)
    if max_samples is None or n <= max_samples:
        return model.fit_transform(X)
    fit = np.sort(np.random.default_rng(random_state).choice(n, max_samples, replace=False))
    out = np.empty((n, model.n_components), dtype=np.float32)
    out[fit] = model.fit_transform(X[fit])
    rest = np.setdiff1d(np.arange(n), fit)
    out[rest] = model.transform(X[rest])
    return out


# --------------------------------------------------------------------------- inputs

def _matrices() -> dict[str, np.ndarray]:
    """Raw matrices (n_samples, n_dims) covering the edge cases of every step."""
    rng = np.random.default_rng(7)
    wide = rng.normal(0, 1, (60, 8)) * rng.uniform(0.1, 50, 8) + rng.normal(0, 20, 8)
    wide[rng.random(wide.shape) < 0.1] = np.nan
    wide[:, 2] = 0.1                       # constant, but not exactly representable: its std is ~1e-17
    wide[:, 5] = np.nan                    # all missing -> 0
    wide[3, 0], wide[7, 1] = np.inf, -np.inf
    ints = rng.integers(-3, 4, (40, 5)).astype(float)
    ints[:, 4] = 3.0                       # exactly constant: std 0
    ints[::7, 1] = np.nan
    few = rng.normal(5, 2, (12, 30)).astype(np.float32)   # n < dims (PCA: full solver, 12 components)
    few[0, :3] = np.nan
    tall = rng.normal(0, 1, (200, 3)) @ np.array([[3.0, 0, 0], [1, 0.5, 0], [0, 0, 1e-3]])
    tall[0] = [40.0, -40.0, 0.0]           # one far-out row: clipped at 3
    return {"wide": wide, "ints": ints, "few": few, "tall": tall, "one_row": rng.normal(0, 1, (1, 4)),
            "two_rows": rng.normal(0, 1, (2, 6))}


MATRICES = _matrices()
SETTINGS = list(itertools.product(("standard", "minmax", "none"), (None, 3.0), (None, 0.9, 5), (False, True)))


def _assert_same(new: tuple, old: tuple) -> None:
    np.testing.assert_array_equal(new[0], old[0])
    assert new[0].dtype == old[0].dtype == np.float32 and new[0].shape == old[0].shape
    if old[1] is None:
        assert new[1] is None
    else:
        np.testing.assert_array_equal(new[1], old[1])
    assert new[2] == old[2]


# --------------------------------------------------------------------------- bit-identical to the reference

@pytest.mark.parametrize("name", list(MATRICES))
def test_transform_is_bit_identical_to_the_reference(name):
    raw = MATRICES[name]
    for scale, clip, pca, whiten in SETTINGS:
        kwargs = {"scale": scale, "clip": clip, "pca": pca, "whiten": whiten}
        _assert_same(pipeline.transform(raw, **kwargs), _reference_transform(raw, **kwargs))
        # and the pipeline itself, fitted and read
        pipe = make_view_pipeline(**kwargs)
        X = pipe.fit_transform(raw)
        np.testing.assert_array_equal(X, _reference_transform(raw, **kwargs)[0])


def test_impute_column_means_is_the_reference():
    for raw in MATRICES.values():
        np.testing.assert_array_equal(pipeline.impute_column_means(raw), _reference_impute_column_means(raw))


def _groups(n: int, dims: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated groups: raw (n, dims) with a few NaNs, and the group of each row."""
    rng = np.random.default_rng(seed)
    truth = np.arange(n) % 3
    X = rng.normal(0, 10, (3, dims))[truth] + rng.normal(0, 1, (n, dims))
    X[rng.random(X.shape) < 0.03] = np.nan
    return X, truth


@pytest.mark.parametrize(("n", "pca", "max_samples"), [(45, 4, None), (45, None, 30), (10, 3, None)])
def test_umap_is_bit_identical_to_the_reference(n, pca, max_samples):
    # UMAP is seeded (and then single-threaded): same inputs, same embedding, bit for bit;
    # n = 10 is below UMAP_MIN_SAMPLES: UMAP is skipped, the PCA output comes back
    raw, _ = _groups(n)
    kwargs = {"scale": "standard", "clip": 3.0, "pca": pca, "umap": 2, "umap_neighbors": 10,
              "umap_max_samples": max_samples, "random_state": 3}
    _assert_same(pipeline.transform(raw, **kwargs), _reference_transform(raw, **kwargs))


# --------------------------------------------------------------------------- placing new recordings

@pytest.mark.parametrize("name", ["wide", "ints", "tall"])
def test_fitted_pipeline_places_new_recordings(name):
    raw = MATRICES[name]
    train, new = raw[:-10], raw[-10:]
    for scale, clip, pca, whiten in SETTINGS:
        pipe = make_view_pipeline(scale=scale, clip=clip, pca=pca, whiten=whiten)
        fitted = pipe.fit_transform(train)
        placed = pipe.transform(new)
        assert placed.shape == (10, fitted.shape[1]) and placed.dtype == np.float32 and np.isfinite(placed).all()
        # the training rows again: the fit_transform output (here exactly; float32 round-off allowed)
        np.testing.assert_allclose(pipe.transform(train), fitted, rtol=1e-6, atol=1e-6)
        # a new row is placed alone as in a batch: nothing is learnt from the new rows
        np.testing.assert_allclose(np.vstack([pipe.transform(new[i:i + 1]) for i in range(10)]), placed,
                                   rtol=1e-6, atol=1e-6)
        # by hand: the training rows' means, scale and components
        X = _reference_impute_column_means(train)
        bad = ~np.isfinite(new)
        cols = np.nonzero(bad)[1]
        Xn = np.where(bad, 0.0, new)
        ok = np.isfinite(train)
        means = np.divide(np.where(ok, train, 0.0).sum(axis=0), ok.sum(axis=0), out=np.zeros(train.shape[1]),
                          where=ok.any(axis=0))
        Xn[bad] = np.take(means, cols)
        if scale == "standard":
            sd = X.std(axis=0)
            Xn = (Xn - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
            if clip is not None:
                Xn = np.clip(Xn, -clip, clip)
        elif scale == "minmax":
            span = np.ptp(X, axis=0)
            Xn = (Xn - X.min(axis=0)) / np.where(span > 0, span, 1.0)
        if pca is not None:
            step = pipe.named_steps["pca"]
            Xn = (Xn - step.pca_.mean_) @ step.pca_.components_[:step.n_components_].T
            if whiten:
                Xn = Xn / step.scale_
        np.testing.assert_allclose(placed, Xn, rtol=1e-5, atol=1e-5)


def test_umap_pipeline_places_new_recordings_in_their_groups():
    raw, truth = _groups(90)
    for max_samples in (None, 40):
        pipe = make_view_pipeline(scale="standard", pca=4, umap=2, umap_neighbors=10, umap_max_samples=max_samples)
        fitted = pipe.fit_transform(raw[:-10])
        placed = pipe.transform(raw[-10:])
        assert fitted.shape == (80, 2) and placed.shape == (10, 2) and placed.dtype == np.float32
        centres = np.array([fitted[truth[:-10] == g].mean(axis=0) for g in range(3)])
        nearest = np.linalg.norm(placed[:, None, :] - centres[None], axis=2).argmin(axis=1)
        np.testing.assert_array_equal(nearest, truth[-10:])
        sample = pipe.named_steps["umap"].sample_
        assert (sample is None) == (max_samples is None) and (sample is None or sample.size == 40)


def test_fitted_pipeline_survives_pickling():
    raw = MATRICES["wide"]
    pipe = make_view_pipeline(scale="standard", clip=3.0, pca=0.9, whiten=True).fit(raw[:-10])
    again = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(again.transform(raw[-10:]), pipe.transform(raw[-10:]))


def test_new_recordings_with_another_width_are_refused():
    pipe = make_view_pipeline(pca=2).fit(MATRICES["ints"])
    with pytest.raises(ValueError, match="columns"):
        pipe.transform(np.zeros((3, 4)))


# --------------------------------------------------------------------------- shape of the pipeline

def test_steps_and_pca_summary():
    pipe = make_view_pipeline(scale="minmax", clip=3.0, pca=0.9, umap=2)
    assert isinstance(pipe, Pipeline)
    assert [name for name, _ in pipe.steps] == ["impute", "l2", "scale", "clip", "pca", "float32", "umap"]
    assert pipe.named_steps["clip"] == "passthrough"             # clipping is for z-scores only
    assert pca_summary(make_view_pipeline().fit(MATRICES["ints"])) == (None, None)
    ratio, n = pca_summary(make_view_pipeline(pca=0.9).fit(MATRICES["ints"]))
    assert ratio.shape == (5,) and 1 <= n <= 5
    # too few samples for a PCA: the step passes its input through
    assert pca_summary(make_view_pipeline(pca=0.9).fit(MATRICES["one_row"])) == (None, None)


def test_arguments_are_keyword_only_and_checked():
    with pytest.raises(TypeError):
        make_view_pipeline("standard")                          # positional: refused
    with pytest.raises(TypeError):
        pipeline.transform(MATRICES["ints"], "standard")
    with pytest.raises(ValueError, match="scale"):
        make_view_pipeline(scale="robust")


def test_module_does_not_read_the_config():
    tree = ast.parse(Path(pipeline.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in names if m == "audioclust.config" or m.startswith("audioclust.config.")]
