"""Clustering: the estimators behind one registry, k selection, metrics and the label-free selection."""
