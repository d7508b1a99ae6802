"""Analyses beyond one clustering: the events inside one recording, and external groupings."""
