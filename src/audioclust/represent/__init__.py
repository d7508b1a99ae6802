"""Representations: per-file vectors, the views built from them, the packed store, the projection."""
