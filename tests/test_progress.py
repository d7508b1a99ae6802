"""The console: progress lines off a terminal, problem lists with their tail, path errors with a hint."""

from __future__ import annotations

import io
import logging
import re
import sys

import pandas as pd
import pytest

from audioclust.cli import main
from audioclust.core import progress as console
from audioclust.core.progress import Progress, progress
from audioclust.stages._skeleton import MAX_LISTED, StageSummary

LINE = re.compile(r"^cluster: (\d+)/200 views \((\d+) %\), [\d.]+ views/s, ~\d+ s left$")


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == console.__name__]


def test_off_a_terminal_progress_is_plain_lines(monkeypatch):
    monkeypatch.delenv(console.ENV, raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: a pipe, a file, papermill
    assert console.console_kind() == "plain"
    monkeypatch.setenv(console.ENV, "off")
    assert console.console_kind() == "off"


def test_plain_lines_come_every_tenth_with_count_rate_and_time_left(monkeypatch, caplog):
    monkeypatch.setenv(console.ENV, "plain")
    caplog.set_level(logging.INFO, logger=console.__name__)
    with Progress(200, "cluster", unit="view", interval=0.0) as bar:
        for _ in range(200):
            bar.update()
    lines = _lines(caplog)
    # one line per tenth of the work (none at 100 %: the final line says it), then the final count
    assert len(lines) == 10
    counts = [int(LINE.match(line).group(1)) for line in lines[:-1]]
    assert counts == [20, 40, 60, 80, 100, 120, 140, 160, 180]
    assert [int(LINE.match(line).group(2)) for line in lines[:-1]] == [c // 2 for c in counts]
    assert re.match(r"^cluster: 200/200 views in \d+ s \([\d.]+ views/s\)$", lines[-1])


def test_a_quick_loop_writes_nothing_and_inner_loops_stay_silent(monkeypatch, caplog):
    monkeypatch.setenv(console.ENV, "plain")
    caplog.set_level(logging.INFO, logger=console.__name__)
    assert list(progress(range(50), "extract")) == list(range(50))  # well under 10 s: no line at all
    with Progress(50, "k selection", unit="k", inner=True, interval=0.0) as bar:
        for _ in range(50):
            bar.update()
    assert _lines(caplog) == []


def test_an_interrupted_loop_writes_no_final_count(monkeypatch, caplog):
    monkeypatch.setenv(console.ENV, "plain")
    caplog.set_level(logging.INFO, logger=console.__name__)
    with pytest.raises(KeyError), Progress(10, "embed", interval=0.0) as bar:
        bar.update(5)
        raise KeyError("boom")
    lines = _lines(caplog)
    assert len(lines) == 1 and lines[0].startswith("embed: 5/10 files (50 %), ")


def test_problem_lists_end_with_how_many_more_and_where(caplog):
    caplog.set_level(logging.WARNING)
    summary = StageSummary("metadata", "path")
    for first in (0, 15):  # two chunks: 15 problems, then 6 more and some ok rows
        n = 15 if first == 0 else 6
        summary.add(pd.DataFrame({"path": [f"a/{i}.wav" for i in range(first, first + n)] + ["ok.wav"],
                                  "status": ["error"] * n + ["ok"], "reason": ["cannot decode"] * n + [""]}))
    summary.log("metadata/x/metadata.csv")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings[:MAX_LISTED] == [f"a/{i}.wav: error — cannot decode" for i in range(MAX_LISTED)]
    assert warnings[MAX_LISTED:] == ["metadata: ... and 11 more: see the reason column of metadata/x/metadata.csv"]


def test_a_missing_dataset_in_the_current_folder_says_where_it_looked_and_about_root(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    assert main(["metadata", "--dataset", "nope"]) == 2
    error = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert f"dataset folder {tmp_path.resolve() / 'datasets' / 'nope'} does not exist" in error
    assert "--root PROJECT_FOLDER" in error
    caplog.clear()
    # a project folder given on the command line: the path, and no advice to give one
    elsewhere = tmp_path / "project"
    elsewhere.mkdir()
    assert main(["metadata", "--dataset", "nope", "--root", str(elsewhere)]) == 2
    error = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert str(elsewhere.resolve() / "datasets" / "nope") in error and "--root" not in error
