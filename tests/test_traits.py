"""Recording traits: a structure that follows how the files were stored is named, in stages 02, 04 and 05's tables."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_mutual_info_score

from audioclust.clustering.traits import follows_text, mark_followed_traits, traits_followed
from audioclust.core.storage import write_csv
from audioclust.results import read_partitions, read_recording_traits, read_table
from audioclust.stages import cluster
from audioclust.stages.transform import mixed_band_note
from test_views import make_features


def test_a_partition_follows_the_traits_it_agrees_with_strongest_first():
    split = np.array([0] * 6 + [1] * 6)
    traits = pd.DataFrame({"band": [4000.0] * 6 + [8192.0] * 6,          # the split itself
                           "format": ["mp3", "wav"] * 6,                   # independent of it
                           "channels": [1] * 12})                          # one value: tells nothing
    assert traits_followed(split, traits, threshold=0.3) == {"band": pytest.approx(1.0)}
    three = np.array([0] * 4 + [1] * 4 + [2] * 4)    # one more split inside the 8 kHz files' group
    found = traits_followed(three, traits, threshold=0.3)
    assert list(found) == ["band"]
    assert found["band"] == pytest.approx(adjusted_mutual_info_score(traits["band"].astype(str), three))
    assert traits_followed(three, traits, threshold=0.99) == {}


def test_files_without_a_trait_and_noise_points_count_as_they_should():
    partition = np.array([0, 0, 0, -1, 1, 1, 1, -1])
    band = pd.Series([4000.0, 4000.0, 4000.0, np.nan, 8192.0, 8192.0, 8192.0, np.nan])
    # the two files without metadata are left out; on the others the split is the band's
    assert traits_followed(partition, pd.DataFrame({"band": band}), 0.3) == {"band": pytest.approx(1.0)}
    # a noise point is a cluster of its own, not one cluster with the other noise points
    noisy = np.array([0, 0, -1, -1, 1, 1, -1, -1])
    both = pd.DataFrame({"band": [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]})
    expected = adjusted_mutual_info_score(both["band"].astype(str), [0, 0, 2, 3, 1, 1, 4, 5])
    assert traits_followed(noisy, both, 0.0)["band"] == pytest.approx(expected)


def test_the_follows_column_names_each_structures_traits_in_words():
    structures = pd.DataFrame({"structure": [1, 2], "representative": ["a", "b"]})
    partitions = {"a": np.array([0, 1] * 6), "b": np.array([0] * 6 + [1] * 6)}
    traits = pd.DataFrame({"band": [4000.0] * 6 + [8192.0] * 6, "format": ["mp3"] * 6 + ["wav"] * 6})
    mark_followed_traits(structures, partitions, traits, 0.3)
    assert structures["follows"].tolist() == ["", "band stored 1.00; file format 1.00"]
    assert mark_followed_traits(structures, partitions, None, 0.3)["follows"].tolist() == ["", ""]
    assert follows_text({"channels": 0.456}) == "channels 0.46"


def test_stage_02_says_when_some_files_hold_less_of_the_band():
    note = mixed_band_note(Counter({8000: 10, 22050: 40, 44100: 30}), 8192.0)
    assert note.startswith("10 of 80 files were stored at 8000 Hz and hold nothing above 4000 Hz, while 70 hold "
                           "more, up to 8192 Hz")
    assert note.endswith("--set audio.cutoff=3600 keeps only the band every file holds")
    two_low = mixed_band_note(Counter({8000: 2, 11025: 3, 16000: 5}), 8192.0)
    assert two_low.startswith("2 of 10 files were stored at 8000 Hz") and "cutoff=3600" in two_low
    assert "11025" not in two_low.split(" and ")[0]
    # every file above the band stage 02 keeps, or all at one rate: nothing to say
    assert mixed_band_note(Counter({22050: 10, 48000: 4, 96000: 1}), 8192.0) is None
    assert mixed_band_note(Counter({8000: 30}), 8192.0) is None
    # no low-pass: the band is the new Nyquist frequency's (audio.sample_rate 22050)
    assert mixed_band_note(Counter({16000: 3, 44100: 3}), 11025.0).startswith("3 of 6 files were stored at 16000 Hz "
                                                                              "and hold nothing above 8000 Hz")


def _stage_01_and_02_tables(paths, stored_at: dict[str, int], formats: dict[str, str]) -> None:
    """The metadata tables of stages 01 and 02 for the files of ``features.csv``, each source at its sample rate and
    format (by stem), in another order than stage 03's rows."""
    table = read_table(paths)
    sources = {stem: f"datasets/tiny/{label}/{stem}.{formats[stem]}" for stem, label in zip(table["stem"],
                                                                                             table["label"])}
    meta = pd.DataFrame({"name": [s.rsplit("/", 1)[1] for s in sources.values()], "extension": list(formats.values()),
                         "path": list(sources.values()), "label": table["label"], "stem": table["stem"],
                         "sample_rate": [stored_at[s] for s in table["stem"]], "channels": 1, "status": "ok",
                         "reason": ""})
    transformed = pd.DataFrame({"name": meta["name"], "label": table["label"], "stem": table["stem"],
                                "source_path": meta["path"], "path": table["path"], "sample_rate": 22050,
                                "status": "ok", "reason": ""})
    write_csv(paths.metadata_csv, meta.iloc[::-1])
    write_csv(paths.transformed_csv, transformed.sample(frac=1.0, random_state=0))


def test_read_recording_traits_follows_each_file_back_to_its_source(project):
    cfg, paths = make_features(project)
    table = read_table(paths)
    rates = {stem: 8000 if i % 3 == 0 else 44100 for i, stem in enumerate(table["stem"])}
    formats = {stem: "mp3" if i % 2 else "wav" for i, stem in enumerate(table["stem"])}
    _stage_01_and_02_tables(paths, rates, formats)
    traits = read_recording_traits(paths, table, band_limit_hz=8192.0)
    assert traits["band"].tolist() == [4000.0 if rates[s] == 8000 else 8192.0 for s in table["stem"]]
    assert traits["format"].tolist() == [formats[s] for s in table["stem"]]
    assert traits["channels"].tolist() == [1] * len(table)
    paths.transformed_csv.unlink()
    assert read_recording_traits(paths, table, 8192.0).empty


def test_stage_04_names_the_structure_that_follows_the_stored_band(project, caplog):
    cfg, paths = make_features(project, overrides={"cluster.algorithms": ["kmeans"]})
    table = read_table(paths)
    # the "low" class was recorded at 8 kHz: the class structure is also the band's
    rates = {stem: 8000 if label == "low" else 44100 for stem, label in zip(table["stem"], table["label"])}
    _stage_01_and_02_tables(paths, rates, {stem: "wav" for stem in table["stem"]})
    with caplog.at_level(logging.WARNING, logger="audioclust"):
        cluster.run(cfg, paths)
    structures = pd.read_csv(paths.results / "clustering" / "structures.csv", keep_default_na=False)
    pick = structures[structures["pick"]].iloc[0]
    band = np.where(table["label"] == "low", 4000.0, 8192.0).astype(str)
    expected = adjusted_mutual_info_score(band, read_partitions(paths, "clustering")[pick["representative"]])
    assert expected > 0.5
    assert pick["follows"] == f"band stored {expected:.2f}"
    assert f"follows how the files were stored (AMI with band stored {expected:.2f})" in caplog.text
    summary = (paths.results / "clustering" / "summary.md").read_text()
    assert "| Follows (AMI) |" in summary and f"| band stored {expected:.2f} |" in summary

    # the same band spread over every class: no structure follows it, and the table has no such column
    caplog.clear()
    rates = {stem: 8000 if i % 2 else 44100 for i, stem in enumerate(table["stem"])}
    _stage_01_and_02_tables(paths, rates, {stem: "wav" for stem in table["stem"]})
    cluster.run(cfg, paths)
    structures = pd.read_csv(paths.results / "clustering" / "structures.csv", keep_default_na=False)
    assert set(structures["follows"]) == {""}
    assert "follows how the files were stored" not in caplog.text
    assert "Follows (AMI)" not in (paths.results / "clustering" / "summary.md").read_text()
