"""metadata.py (stage 01): scan, labels, stems, header values, statuses, the CSV."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone

from audioclust.config import load_config
from audioclust.core.errors import DatasetError
from audioclust.core.paths import ProjectPaths
from audioclust.results import read_metadata
from audioclust.stages import metadata

CONTRACT = ["name", "extension", "path", "label", "stem", "duration", "sample_rate", "channels", "frames",
            "subtype", "status", "reason"]


def _wav(path: Path, seconds: float = 0.1, sr: int = 16000, channels: int = 1, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    y = np.repeat(tone(440.0, seconds, sr)[:, None], channels, axis=1)
    sf.write(path, y, sr, subtype=subtype)
    return path


def _run(project: Path, dataset: str = "ds", **overrides):
    cfg = load_config(project, dataset, overrides={"parallel.n_jobs": 1, **overrides})
    paths = ProjectPaths(project, dataset)
    return metadata.run(cfg, paths), paths


def test_scan_labels_stems_and_header_values(project, caplog):
    raw = project / "datasets" / "ds"
    _wav(raw / "dog" / "b.wav", seconds=0.5, sr=8000)
    _wav(raw / "dog" / "a.flac", seconds=0.25, sr=44100, channels=2, subtype="PCM_24")
    _wav(raw / "dog" / "a.wav")
    _wav(raw / "dog" / "night" / "a.wav")
    _wav(raw / "cat" / "A.WAV")
    _wav(raw / "loose.wav")
    (raw / "cat" / "notes.txt").write_text("x")
    (raw / "cat" / ".hidden.wav").write_bytes(b"x")
    _wav(raw / ".cache" / "c.wav")
    with caplog.at_level(logging.INFO, logger="audioclust"):
        table, paths = _run(project)
    assert table.columns.tolist()[:len(CONTRACT)] == CONTRACT
    assert table["path"].tolist() == [
        "datasets/ds/cat/A.WAV", "datasets/ds/dog/a.flac", "datasets/ds/dog/a.wav", "datasets/ds/dog/b.wav",
        "datasets/ds/dog/night/a.wav", "datasets/ds/loose.wav"]
    assert table["label"].tolist() == ["cat", "dog", "dog", "dog", "dog", ""]
    # nested files carry their sub-folder; a.flac and a.wav clash on 'a' (the second gets its extension)
    assert table["stem"].tolist() == ["A", "a", "a_wav", "b", "night__a", "loose"]
    assert table["extension"].tolist() == ["wav", "flac", "wav", "wav", "wav", "wav"]
    flac = table.iloc[1]
    assert (flac["sample_rate"], flac["channels"], flac["frames"], flac["subtype"]) == (44100, 2, 11025, "PCM_24")
    assert flac["duration"] == pytest.approx(0.25)
    assert table.iloc[3]["duration"] == pytest.approx(0.5) and table.iloc[3]["frames"] == 4000
    assert (table["status"] == "ok").all() and (table["reason"] == "").all()
    assert "skipped: 2 hidden, 1 other extension" in caplog.text
    assert "ok 6" in caplog.text and "cat 1, dog 4" in caplog.text
    back = read_metadata(paths.metadata_csv)
    assert back["label"].tolist() == table["label"].tolist() and back["frames"].tolist() == table["frames"].tolist()


def test_output_is_deterministic(project):
    raw = project / "datasets" / "ds"
    for name in ["z/1.wav", "a/2.wav", "m/k/3.wav"]:
        _wav(raw / name)
    _, paths = _run(project)
    first = paths.metadata_csv.read_bytes()
    _run(project)
    assert paths.metadata_csv.read_bytes() == first


def test_symlinked_folders_are_followed_once(project, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("corpus")
    _wav(elsewhere / "x.wav")
    raw = project / "datasets" / "ds"
    (raw / "birds").mkdir(parents=True)
    (raw / "birds" / "linked").symlink_to(elsewhere, target_is_directory=True)
    (raw / "birds" / "loop").symlink_to(raw, target_is_directory=True)  # a cycle must not hang the scan
    _wav(raw / "birds" / "own.wav")
    table, _ = _run(project)
    assert table["path"].tolist() == ["datasets/ds/birds/linked/x.wav", "datasets/ds/birds/own.wav"]
    assert table["status"].tolist() == ["ok", "ok"]


def test_regex_csv_and_no_labels(project):
    raw = project / "datasets" / "ds"
    for name in ["7_george_0.wav", "3_lucas_1.wav", "sub/5_jo_2.wav", "x.wav"]:
        _wav(raw / name)
    table, _ = _run(project, **{"dataset.labels": "regex", "dataset.label_regex": r"^\d+_([a-z]+)_"})
    assert table["label"].tolist() == ["lucas", "george", "jo", ""]
    assert table["stem"].tolist() == ["3_lucas_1", "7_george_0", "sub__5_jo_2", "x"]
    (raw / "labels.csv").write_text("path,label\nx.wav,odd\nsub/5_jo_2.wav,five\n")
    table, _ = _run(project, **{"dataset.labels": "csv", "dataset.label_csv": "labels.csv"})
    assert table["label"].tolist() == ["", "", "five", "odd"]
    table, _ = _run(project, **{"dataset.labels": "none"})
    assert (table["label"] == "").all()


def test_missing_or_empty_dataset_says_what_to_do(project):
    with pytest.raises(DatasetError) as err:
        _run(project, dataset="nothing")
    for words in ["datasets/nothing does not exist", "audioclust generate-demo", "audioclust prepare"]:
        assert words in str(err.value)
    (project / "datasets" / "empty").mkdir(parents=True)
    (project / "datasets" / "empty" / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match="no audio files"):
        _run(project, dataset="empty")


def test_folder_overview_counts_what_stage_01_lists_per_label_folder(project):
    """Notebook 00's table: audio files per first folder at any depth, files directly in the dataset folder as
    ``(top level)``, hidden files and other extensions left out, and an example that is not empty."""
    raw = project / "datasets" / "ds"
    (raw / "dog").mkdir(parents=True)
    (raw / "dog" / "a.wav").write_bytes(b"")  # empty: listed, but no example
    _wav(raw / "dog" / "b.wav")
    _wav(raw / "dog" / "park" / "c.flac")
    _wav(raw / "dog" / ".hidden.wav")
    (raw / "dog" / "notes.txt").write_text("x")
    _wav(raw / "loose.wav")
    _wav(raw / "zz.wav")
    (raw / "cat").mkdir()
    (raw / "cat" / "empty.wav").write_bytes(b"")
    cfg = load_config(project, "ds")
    table = metadata.folder_overview(cfg, ProjectPaths(project, "ds"))
    assert table["files"].to_dict() == {"(top level)": 2, "cat": 1, "dog": 3}
    assert table.loc["dog", "example"] == raw / "dog" / "b.wav"
    assert table.loc["(top level)", "example"] == raw / "loose.wav"
    assert table.loc["cat", "example"] is None
    assert metadata.run(cfg, ProjectPaths(project, "ds")).shape[0] == table["files"].sum()
    (project / "datasets" / "none").mkdir()
    (project / "datasets" / "none" / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match="no audio files"):
        metadata.folder_overview(load_config(project, "none"), ProjectPaths(project, "none"))


def test_make_stems_are_unique_per_output_folder_ignoring_case():
    rels = ["a/X.wav", "a/x.flac", "a/x.ogg", "b/x.wav", "y.wav", "y.mp3"]
    labels = ["a", "a", "a", "b", "", "unlabelled"]
    assert metadata.make_stems(rels, labels, folder_labels=True) == ["X", "x_flac", "x_ogg", "x", "y", "y_mp3"]
