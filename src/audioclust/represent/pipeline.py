"""The dataset-wide transform of a view as a scikit-learn pipeline: impute, L2, scale, clip, PCA, UMAP.

:func:`make_view_pipeline` builds the pipeline; fitted on a collection (``fit`` or
``fit_transform``), it places new recordings in the same space with ``transform``::

    pipe = make_view_pipeline(scale="standard", clip=3.0, pca=0.9)
    X = pipe.fit_transform(raw)          # the collection, as :func:`transform` returns it
    X_new = pipe.transform(raw_new)      # new recordings, scaled and projected like the collection

:func:`transform` is the one-call form (fit and transform one matrix) that the views use.

Steps, in order (a step that is off is ``"passthrough"``, so the names are always there):

``impute``
    :class:`ColumnMeanImputer`: non-finite entries -> the column's mean over the finite ones
    (0 when none is), as float64.
``l2``
    scikit-learn's ``Normalizer``: each row to unit length (embedding views; off for the others).
``scale``
    :class:`ZScoreScaler` (``standard``), :class:`RangeScaler` (``minmax``) or off (``none``).
    A column with zero spread is divided by 1. scikit-learn's ``StandardScaler`` and
    ``MinMaxScaler`` compute the same quantities in another order (the last bits differ,
    and ``StandardScaler`` treats a nearly constant column differently), so these small
    transformers keep the numbers the views have always had.
``clip``
    With ``standard`` scaling only: z-scores beyond ±``clip`` are set to ±``clip``
    (a ``FunctionTransformer`` of :func:`numpy.clip`).
``pca``
    :class:`VariancePCA`: the full PCA (for the explained-variance curve), of which the first
    :func:`n_components_for` components are kept, optionally whitened.
``float32``
    The cast to float32 (what the views hold; UMAP works in float32 anyway).
``umap``
    :class:`SampledUMAP`: seeded UMAP, fitted on at most ``umap_max_samples`` rows.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, Normalizer
from sklearn.utils.validation import check_is_fitted

log = logging.getLogger(__name__)


#: fewer samples than this are not embedded by UMAP (its spectral start needs a few more than its dimensions)
UMAP_MIN_SAMPLES = 16

#: the values of ``scale``
SCALES: tuple[str, ...] = ("standard", "minmax", "none")


# --------------------------------------------------------------------------- helpers

def _matrix(X, estimator: BaseEstimator | None = None, *, reset: bool = False) -> np.ndarray:
    """``X`` as a 2-D float64 array (not copied when it already is one), its width checked against a fit.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_dims)
    estimator : the step; with ``reset`` its ``n_features_in_`` is set, else ``X`` must have that width.
    reset : bool

    Returns
    -------
    ndarray of shape (n_samples, n_dims), float64
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"expected a matrix of shape (n_samples, n_dims), got an array of shape {X.shape}")
    if estimator is not None:
        if reset:
            estimator.n_features_in_ = X.shape[1]
        elif X.shape[1] != estimator.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} columns, but {type(estimator).__name__} was fitted on "
                             f"{estimator.n_features_in_}")
    return X


def _as_float32(X) -> np.ndarray:
    """A float32 copy of ``X``: ndarray of the same shape."""
    return np.asarray(X).astype(np.float32)


def impute_column_means(X: np.ndarray) -> np.ndarray:
    """Replace non-finite entries by their column's mean over the finite ones (0 when none is finite).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_dims)

    Returns
    -------
    ndarray of shape (n_samples, n_dims), float64 (a copy)
    """
    return ColumnMeanImputer().fit_transform(X)


def n_components_for(ratio: np.ndarray, pca: float) -> int:
    """Components kept for ``pca``: ``int(pca)`` when >= 1, else the fewest reaching that variance fraction.

    Parameters
    ----------
    ratio : ndarray of shape (n_all,)
        Explained-variance ratios, decreasing.
    pca : float

    Returns
    -------
    int in [1, n_all]
    """
    if pca >= 1:
        return max(1, min(int(pca), ratio.size))
    cumulative = np.cumsum(ratio)
    # tolerance: a cumulative sum that should reach 1.0 may stop at 0.9999999
    return max(1, min(int(np.searchsorted(cumulative, pca - 1e-9) + 1), ratio.size))


# --------------------------------------------------------------------------- steps

class ColumnMeanImputer(TransformerMixin, BaseEstimator):
    """Non-finite entries (NaN, ±inf) -> the fitted column's mean over its finite entries.

    A column with no finite entry at fit time is filled with 0. scikit-learn's
    ``SimpleImputer`` rejects infinities and keeps float32 input in float32, hence this step.

    Attributes
    ----------
    means_ : ndarray of shape (n_dims,), float64
    n_features_in_ : int
    """

    def fit(self, X, y=None):
        """Learn the column means.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_dims)
        y : ignored

        Returns
        -------
        self
        """
        X = _matrix(X, self, reset=True)
        bad = ~np.isfinite(X)
        counts = (~bad).sum(axis=0)
        sums = np.where(bad, 0.0, X).sum(axis=0)
        self.means_ = np.divide(sums, counts, out=np.zeros(X.shape[1]), where=counts > 0)
        return self

    def transform(self, X):
        """Fill the non-finite entries.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_dims)

        Returns
        -------
        ndarray of shape (n_samples, n_dims), float64 (a copy)
        """
        check_is_fitted(self, "means_")
        X = np.array(_matrix(X, self), dtype=np.float64)
        bad = ~np.isfinite(X)
        if bad.any():
            X[bad] = np.take(self.means_, np.nonzero(bad)[1])
        return X


class _ColumnScaler(TransformerMixin, BaseEstimator):
    """``(X - offset_) / scale_`` per column, both learned by :meth:`_fit_columns`; a zero scale divides by 1.

    Attributes
    ----------
    offset_ : ndarray of shape (n_dims,)
    scale_ : ndarray of shape (n_dims,)
    n_features_in_ : int
    """

    def _fit_columns(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def fit(self, X, y=None):
        """Learn each column's offset and scale.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_dims), finite
        y : ignored

        Returns
        -------
        self
        """
        X = _matrix(X, self, reset=True)
        self.offset_, scale = self._fit_columns(X)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        return self

    def transform(self, X):
        """Scale (new recordings may fall outside the range of the fitted ones).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_dims)

        Returns
        -------
        ndarray of shape (n_samples, n_dims), float64
        """
        check_is_fitted(self, "scale_")
        return (_matrix(X, self) - self.offset_) / self.scale_


class ZScoreScaler(_ColumnScaler):
    """``(X - mean) / std`` per column, with the population standard deviation (``views.scale: standard``)."""

    def _fit_columns(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return X.mean(axis=0), X.std(axis=0)


class RangeScaler(_ColumnScaler):
    """``(X - min) / (max - min)`` per column: the fitted range onto [0, 1] (``views.scale: minmax``)."""

    def _fit_columns(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return X.min(axis=0), np.ptp(X, axis=0)


class VariancePCA(TransformerMixin, BaseEstimator):
    """PCA that keeps a number of components or a fraction of the variance, optionally whitened.

    The full PCA is fitted (every component, for the explained-variance curve) with the
    ``covariance_eigh`` solver when there are at least twice as many samples as dimensions
    (the cheaper exact route), else ``full``. With fewer than 2 samples at fit time nothing
    is fitted and the step passes its input through.

    Parameters
    ----------
    n_components : float
        >= 1: that many components (at most all of them); < 1: the fewest whose cumulative
        explained variance reaches it (:func:`n_components_for`).
    whiten : bool
        Divide each kept component by its standard deviation (components with a standard
        deviation below 1e-12 are left as they are).

    Attributes
    ----------
    pca_ : sklearn.decomposition.PCA or None
        The full PCA; None when fitted on fewer than 2 samples.
    explained_variance_ratio_ : ndarray of shape (min(n_samples, n_dims),) or None
        Of every component, NaN -> 0.
    n_components_ : int or None
        Components kept.
    scale_ : ndarray of shape (n_components_,) or None
        What each kept component is divided by when whitening.
    n_features_in_ : int
    """

    def __init__(self, n_components: float = 0.9, whiten: bool = False):
        self.n_components = n_components
        self.whiten = whiten

    def fit(self, X, y=None):
        """Fit the full PCA and choose the components to keep.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_dims), finite
        y : ignored

        Returns
        -------
        self
        """
        X = _matrix(X, self, reset=True)
        self.pca_, self.explained_variance_ratio_, self.n_components_, self.scale_ = None, None, None, None
        if X.shape[0] < 2:
            return self
        solver = "covariance_eigh" if X.shape[0] >= 2 * X.shape[1] else "full"
        self.pca_ = PCA(n_components=None, svd_solver=solver).fit(X)
        self.explained_variance_ratio_ = np.nan_to_num(self.pca_.explained_variance_ratio_)
        self.n_components_ = n_components_for(self.explained_variance_ratio_, self.n_components)
        if self.whiten:
            sd = np.sqrt(self.pca_.explained_variance_[:self.n_components_])
            self.scale_ = np.where(sd > 1e-12, sd, 1.0)
        return self

    def transform(self, X):
        """Project on the kept components.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_dims)

        Returns
        -------
        ndarray of shape (n_samples, n_components_), float64; ``X`` itself (as float64) when
        nothing was fitted
        """
        check_is_fitted(self, "n_features_in_")
        X = _matrix(X, self)
        if self.pca_ is None:
            return X
        Z = self.pca_.transform(X)[:, :self.n_components_]
        return Z / self.scale_ if self.scale_ is not None else Z


class SampledUMAP(TransformerMixin, BaseEstimator):
    """Seeded UMAP, fitted on at most ``max_samples`` rows; new rows are placed with its ``transform``.

    Below :data:`UMAP_MIN_SAMPLES` samples at fit time nothing is fitted (with a warning) and
    the step passes its input through. The output dimensions are at most ``n - 2`` and the
    neighbours at most ``n - 1``, ``n`` being the number of rows given to ``fit``.

    Parameters
    ----------
    n_components : int
        Output dimensions.
    n_neighbors : int
    min_dist : float
    max_samples : int or None
        Above this many rows, UMAP is fitted on a seeded sample of this size
        (``numpy.random.default_rng(random_state)``) and the other rows are placed with its
        ``transform`` (the fit grows faster than n). None: fitted on every row.
    random_state : int
        Seeds UMAP and its sample.

    Attributes
    ----------
    umap_ : umap.UMAP or None
        None when fitted on fewer than :data:`UMAP_MIN_SAMPLES` rows.
    sample_ : ndarray of shape (n_fitted,) or None
        The rows UMAP was fitted on, when fewer than all of them.
    n_features_in_ : int
    """

    def __init__(self, n_components: int = 2, n_neighbors: int = 50, min_dist: float = 0.0,
                 max_samples: int | None = None, random_state: int = 0):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.max_samples = max_samples
        self.random_state = random_state

    def _fit(self, X, *, embed: bool) -> np.ndarray | None:
        """Fit; with ``embed``, return the embedding of every row of ``X`` (float32, or ``X`` when skipped)."""
        X = np.asarray(X)
        self.n_features_in_ = X.shape[1]
        self.umap_, self.sample_ = None, None
        n = X.shape[0]
        if n < UMAP_MIN_SAMPLES:
            log.warning("UMAP skipped: %d samples, it needs at least %d", n, UMAP_MIN_SAMPLES)
            return X
        import umap as umap_learn  # heavy import (numba), only when asked for
        self.umap_ = umap_learn.UMAP(n_components=min(self.n_components, n - 2),
                                     n_neighbors=min(self.n_neighbors, n - 1), min_dist=self.min_dist,
                                     random_state=self.random_state)
        if self.max_samples is None or n <= self.max_samples:
            return self.umap_.fit_transform(X).astype(np.float32, copy=False)
        self.sample_ = np.sort(np.random.default_rng(self.random_state).choice(n, self.max_samples, replace=False))
        out = np.empty((n, self.umap_.n_components), dtype=np.float32)
        out[self.sample_] = self.umap_.fit_transform(X[self.sample_])
        if embed:
            rest = np.setdiff1d(np.arange(n), self.sample_)
            out[rest] = self.umap_.transform(X[rest])
        return out

    def fit(self, X, y=None):
        """Fit UMAP (on the sample when there are more than ``max_samples`` rows).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_dims), finite
        y : ignored

        Returns
        -------
        self
        """
        self._fit(X, embed=False)
        return self

    def fit_transform(self, X, y=None):
        """Fit and embed every row: UMAP's own embedding of the fitted rows, ``transform`` of the others.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_dims), finite
        y : ignored

        Returns
        -------
        ndarray of shape (n_samples, n_out), float32 (``X`` unchanged when UMAP was skipped)
        """
        return self._fit(X, embed=True)

    def transform(self, X):
        """Place rows in the fitted embedding.

        For the rows UMAP was fitted on this differs from :meth:`fit_transform` (UMAP places
        points with a few optimisation steps against the fitted embedding).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_dims)

        Returns
        -------
        ndarray of shape (n_samples, n_out), float32 (``X`` unchanged when UMAP was skipped)
        """
        check_is_fitted(self, "n_features_in_")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {X.shape}, but SampledUMAP was fitted on {self.n_features_in_} columns")
        if self.umap_ is None:
            return X
        return self.umap_.transform(X).astype(np.float32, copy=False)


# --------------------------------------------------------------------------- the pipeline

def make_view_pipeline(
    *,
    l2: bool = False,
    scale: str = "standard",
    clip: float | None = None,
    pca: float | None = None,
    whiten: bool = False,
    umap: int | None = None,
    umap_neighbors: int = 50,
    umap_min_dist: float = 0.0,
    umap_max_samples: int | None = None,
    random_state: int = 0,
) -> Pipeline:
    """The unfitted transform of a view: impute, L2, scale, clip, PCA, float32, UMAP.

    Parameters
    ----------
    l2 : bool
        Scale each row to unit Euclidean length first (after imputation): for pretrained
        embeddings, whose direction carries the meaning and whose length follows loudness
        or duration.
    scale : ``standard`` | ``minmax`` | ``none``
    clip : float or None
        With ``standard`` scaling, z-scores beyond ±clip are set to ±clip, so that one
        far-out file cannot take a cluster (or a principal component) for itself. Ignored
        with the other scalings.
    pca : float or None
        See :func:`n_components_for`; None: no PCA.
    whiten : bool
        Divide each kept component by its standard deviation.
    umap : int or None
        UMAP output dimensions (after PCA); None: no UMAP. Skipped, with a warning, when
        fitted on fewer than :data:`UMAP_MIN_SAMPLES` samples.
    umap_neighbors, umap_min_dist : UMAP parameters.
    umap_max_samples : int or None
        Above this many samples UMAP is fitted on a seeded sample of this size and the
        other samples are placed with its ``transform`` (the fit grows faster than n).
    random_state : int
        Seeds UMAP and its sample.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``impute``, ``l2``, ``scale``, ``clip``, ``pca``, ``float32``, ``umap`` (``"passthrough"``
        when off). Takes (n_samples, n_dims) and gives (n_samples, n_out) float32.

    Raises
    ------
    ValueError
        ``scale`` not one of :data:`SCALES`.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    scaler = {"standard": ZScoreScaler(), "minmax": RangeScaler(), "none": "passthrough"}[scale]
    clipper = (FunctionTransformer(np.clip, kw_args={"a_min": -clip, "a_max": clip})
               if scale == "standard" and clip is not None else "passthrough")
    return Pipeline([
        ("impute", ColumnMeanImputer()),
        ("l2", Normalizer(norm="l2") if l2 else "passthrough"),
        ("scale", scaler),
        ("clip", clipper),
        ("pca", "passthrough" if pca is None else VariancePCA(n_components=pca, whiten=whiten)),
        ("float32", FunctionTransformer(_as_float32)),
        ("umap", "passthrough" if umap is None else SampledUMAP(
            n_components=umap, n_neighbors=umap_neighbors, min_dist=umap_min_dist, max_samples=umap_max_samples,
            random_state=random_state)),
    ])


def pca_summary(pipe: Pipeline) -> tuple[np.ndarray | None, int | None]:
    """What the fitted PCA step of a view pipeline kept.

    Parameters
    ----------
    pipe : Pipeline
        Fitted, from :func:`make_view_pipeline`.

    Returns
    -------
    explained_variance_ratio : ndarray of shape (min(n_samples, n_dims),) or None
        Of every component (None: no PCA, or fitted on fewer than 2 samples).
    n_components : int or None
        Components kept.
    """
    step = pipe.named_steps["pca"]
    if not isinstance(step, VariancePCA):
        return None, None
    return step.explained_variance_ratio_, step.n_components_


def transform(
    raw: np.ndarray,
    *,
    l2: bool = False,
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
    """Impute, scale, reduce: fit :func:`make_view_pipeline` on ``raw`` and transform it.

    Parameters
    ----------
    raw : ndarray of shape (n_samples, n_dims)
    l2, scale, clip, pca, whiten, umap, umap_neighbors, umap_min_dist, umap_max_samples, random_state
        See :func:`make_view_pipeline`.

    Returns
    -------
    X : ndarray of shape (n_samples, n_out), float32
    explained_variance_ratio : ndarray of shape (min(n_samples, n_dims),) or None
    n_components : int or None
    """
    pipe = make_view_pipeline(l2=l2, scale=scale, clip=clip, pca=pca, whiten=whiten, umap=umap,
                              umap_neighbors=umap_neighbors, umap_min_dist=umap_min_dist,
                              umap_max_samples=umap_max_samples, random_state=random_state)
    X = pipe.fit_transform(raw)
    return (X, *pca_summary(pipe))
