"""Exceptions of audioclust. Messages say what to do, not only what went wrong."""

from __future__ import annotations


class AudioclustError(Exception):
    """Base class of every error raised on purpose by audioclust."""


class ConfigError(AudioclustError):
    """A configuration key is unknown or its value is not allowed."""


class DatasetError(AudioclustError):
    """A dataset folder, label source or adapter input is missing or malformed."""


class AudioReadError(AudioclustError):
    """An audio file cannot be decoded; the message is stored as the row's ``reason``."""


class StageInputError(AudioclustError):
    """A stage's input (the previous stage's files) is missing: run that stage first."""


class ComparisonError(AudioclustError):
    """Runs cannot be compared as asked: their settings differ, or they share no result."""
