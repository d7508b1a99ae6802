"""Label sources: where a file's label comes from (its folder, a pattern in its name, a CSV).

Labels only ever score results; they never choose anything.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import pandas as pd

from audioclust.core.errors import ConfigError, DatasetError
from audioclust.core.paths import safe_name

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- label sources

def folder_label(rel: str) -> str:
    """Label of a file from its path relative to the dataset folder: the first folder, or ``''`` at the root."""
    parts = PurePosixPath(rel).parts
    return parts[0] if len(parts) > 1 else ""


def compile_label_regex(pattern: str) -> re.Pattern[str]:
    """Compile ``dataset.label_regex``; it must hold at least one group (the first is the label)."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"config key 'dataset.label_regex' = {pattern!r} is not a valid regex: {exc}") from exc
    if regex.groups < 1:
        raise ConfigError(f"config key 'dataset.label_regex' = {pattern!r} needs a group, e.g. '^(\\d+)_': "
                          "the text it captures in the file name is the label")
    return regex


def regex_label(name: str, regex: re.Pattern[str]) -> str:
    """The first group of ``regex`` searched in the file name ``name``; ``''`` without a match."""
    match = regex.search(name)
    return (match.group(1) or "") if match else ""


def read_label_csv(csv_path: Path, raw: Path) -> dict[str, str]:
    """Read a label CSV: ``{path relative to raw (posix): label}``.

    Parameters
    ----------
    csv_path : CSV with columns ``path`` and ``label``; a relative ``csv_path`` is taken
        relative to ``raw``. ``path`` values are relative to ``raw`` (``./`` and ``\\`` allowed).
    raw : the dataset folder ``datasets/<name>/``.
    """
    csv_path = csv_path if csv_path.is_absolute() else raw / csv_path
    if not csv_path.is_file():
        raise DatasetError(f"label CSV {csv_path} not found: set 'dataset.label_csv' to a CSV of path,label "
                           f"relative to {raw}")
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise DatasetError(f"label CSV {csv_path} lacks column(s) {', '.join(missing)}; "
                           f"it has: {', '.join(map(str, table.columns))}")
    return {_norm_rel(p): lab.strip() for p, lab in zip(table["path"], table["label"])}


def _norm_rel(path: str) -> str:
    return PurePosixPath(path.strip().replace("\\", "/")).as_posix().removeprefix("./")


class LabelResolver:
    """Labels of files from one label source, chunk by chunk (a label CSV is read once).

    ``labels`` is the source: ``folder`` (the first folder below ``raw``), ``regex`` (the first
    group of ``label_regex`` in the file name), ``csv`` (``label_csv``: rows ``path,label``,
    paths relative to ``raw``) or ``none``.

    Call it with paths relative to ``raw`` (posix) as often as needed, then :meth:`report`
    once: the files no source could label (label ``''``) are logged as one warning per kind.
    Labels are made safe as folder names (:func:`safe_name`).
    """

    def __init__(self, raw: Path, *, labels: str, label_regex: str | None = None, label_csv: str | None = None) -> None:
        self.raw, self.labels, self.label_regex, self.label_csv = raw, labels, label_regex, label_csv
        self.regex = compile_label_regex(label_regex or "") if labels == "regex" else None
        self.table = read_label_csv(Path(label_csv or ""), raw) if labels == "csv" else None
        self.n = self.misses = 0
        self.examples: list[str] = []
        self.listed: set[str] = set()

    def __call__(self, rels: Sequence[str]) -> list[str]:
        if self.labels == "none":
            labels = [""] * len(rels)
        elif self.labels == "folder":
            labels = [folder_label(r) for r in rels]
        elif self.regex is not None:
            labels = [regex_label(PurePosixPath(r).name, self.regex) for r in rels]
        else:
            assert self.table is not None
            labels = [self.table.get(r, "") for r in rels]
            self.listed.update(r for r in rels if r in self.table)
        self.n += len(rels)
        for r, lab in zip(rels, labels):
            if not lab:
                self.misses += 1
                if len(self.examples) < 3:
                    self.examples.append(r)
        return [safe_name(lab) if lab else "" for lab in labels]

    def report(self) -> None:
        """Log, once, how many files got no label and why."""
        examples = ", ".join(self.examples)
        if self.labels == "folder" and 0 < self.misses < self.n:
            log.warning("%d file(s) lie directly in %s, outside any label folder: label ''", self.misses, self.raw)
        elif self.labels == "regex" and self.misses:
            log.warning("label_regex %r matched no label in %d file name(s) (label ''), e.g. %s",
                        self.label_regex, self.misses, examples)
        elif self.labels == "csv" and self.table is not None:
            if self.misses:
                log.warning("%d file(s) are not listed in %s (label ''), e.g. %s", self.misses, self.label_csv,
                            examples)
            absent = len(self.table) - len(self.listed)
            if absent:
                log.warning("%d row(s) of %s name files that were not found", absent, self.label_csv)


def resolve_labels(rels: Sequence[str], raw: Path, **source: Any) -> list[str]:
    """Labels of files given by their paths relative to ``raw`` (posix), from the label source
    ``source`` (``labels``, ``label_regex``, ``label_csv``: :class:`LabelResolver` in one call)."""
    resolver = LabelResolver(raw, **source)
    labels = resolver(rels)
    resolver.report()
    return labels
