"""Clustering estimators with the scikit-learn API, one module per family (fuzzy, mixture, density, BIRCH)."""

from __future__ import annotations

import numpy as np

#: Input dtypes the estimators accept without a copy.
_FLOATS = [np.float64, np.float32]
