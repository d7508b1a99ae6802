"""datasets.py: the demo generator, label sources and the corpus adapters (on tiny fake corpora)."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import tone

from audioclust.core import labels as ac_core_labels
from audioclust.core import paths
from audioclust.core.errors import ConfigError, DatasetError
from audioclust.dsp import synth
from audioclust.stages import prepare as datasets

SR = 8000


def _tree_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _wav(path: Path, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(freq, 0.05, SR), SR, subtype="PCM_16")
    return path


# --------------------------------------------------------------------------- demo

def test_demo_is_deterministic_per_seed(tmp_path):
    kwargs = {"n_per_class": 2, "seconds": 0.2}
    assert datasets.generate_demo(tmp_path / "a", seed=3, **kwargs) == 14
    datasets.generate_demo(tmp_path / "b", seed=3, **kwargs)
    datasets.generate_demo(tmp_path / "c", seed=4, **kwargs)
    a, b, c = (_tree_hashes(tmp_path / x) for x in "abc")
    wavs = [k for k in a if k.endswith(".wav")]
    assert len(wavs) == 14 and sorted({k.split("/")[0] for k in wavs}) == sorted(synth.DEMO_FAMILIES)
    assert all(a[k] == b[k] for k in wavs)
    assert all(a[k] != c[k] for k in wavs)


def test_demo_is_idempotent_and_follows_its_parameters(tmp_path):
    folder = tmp_path / "demo"
    datasets.generate_demo(folder, n_per_class=3, seconds=0.2)
    first = folder / "clicks" / "clicks_000.wav"
    stamp = first.stat().st_mtime_ns
    datasets.generate_demo(folder, n_per_class=3, seconds=0.2)
    assert first.stat().st_mtime_ns == stamp  # nothing rewritten
    first.unlink()
    (folder / "am_fm" / "am_fm_001.wav").write_bytes(b"damaged")
    datasets.generate_demo(folder, n_per_class=3, seconds=0.2)
    assert first.is_file() and sf.info(folder / "am_fm" / "am_fm_001.wav").frames > 0
    assert datasets.generate_demo(folder, n_per_class=2, seconds=0.2) == 14
    assert not (folder / "clicks" / "clicks_002.wav").exists()  # files of the larger set removed
    assert len(list(folder.rglob("*.wav"))) == 14
    # a researcher's own file in the folder is left alone
    (folder / "mine.wav").write_bytes(b"x")
    datasets.generate_demo(folder, n_per_class=1, seconds=0.2)
    assert (folder / "mine.wav").read_bytes() == b"x"


def test_demo_sounds_are_jittered_and_within_full_scale():
    a = synth.demo_sound("tone_low", 0, seed=0)
    b = synth.demo_sound("tone_low", 1, seed=0)
    assert a.dtype == np.float32 and 0.8 * 22050 <= len(a) <= 1.2 * 22050
    assert len(a) != len(b) or not np.array_equal(a, b)
    for label in synth.DEMO_FAMILIES:
        y = synth.demo_sound(label, 5, seed=1)
        peak = 20 * np.log10(np.max(np.abs(y)))
        assert -12.01 <= peak <= -0.99, label


def _centroid(y: np.ndarray, sr: int) -> float:
    """Power-weighted mean frequency of the whole signal."""
    power = np.abs(np.fft.rfft(y)) ** 2
    return float((power * np.fft.rfftfreq(len(y), 1 / sr)).sum() / power.sum())


def test_demo_families_are_separable():
    sr, n = 22050, 8
    cen = {lab: [_centroid(synth.demo_sound(lab, i, sr=sr), sr) for i in range(n)] for lab in synth.DEMO_FAMILIES}
    # pitch families: low tones (100-200 Hz f0) < AM/FM (400-700 Hz carrier) < high tones (1-2 kHz f0)
    assert max(cen["tone_low"]) < min(cen["am_fm"])
    assert max(cen["am_fm"]) < min(cen["tone_high"])
    # click rings at 2.5-4 kHz lie above every tonal family
    assert min(cen["clicks"]) > max(cen["tone_low"] + cen["am_fm"])
    # chirps: the centroid of the second half is far above (up) or below (down) the first half's
    for i in range(n):
        for lab, sign in (("chirp_up", 1), ("chirp_down", -1)):
            y = synth.demo_sound(lab, i, sr=sr)
            h = len(y) // 2
            assert sign * (_centroid(y[h:], sr) - _centroid(y[:h], sr)) > 500.0
    # clicks are impulsive: crest factor (peak / RMS) well above a tone's sqrt(2)-ish
    crest = [np.max(np.abs(y)) / np.sqrt(np.mean(y ** 2))
             for y in (synth.demo_sound("clicks", i, sr=sr) for i in range(n))]
    assert min(crest) > 8.0


# --------------------------------------------------------------------------- label sources

def test_safe_name():
    assert paths.safe_name("dog bark") == "dog bark"
    assert paths.safe_name("a/b\\c:d*e?f") == "a_b_c_d_e_f"
    assert paths.safe_name(".hidden") == "_hidden"
    assert paths.safe_name("  ") == "_"
    assert paths.safe_name("cafe\u0301") == "caf\u00e9"  # NFD -> NFC
    long_a, long_b = paths.safe_name("x" * 300 + "a"), paths.safe_name("x" * 300 + "b")
    assert long_a != long_b and len(long_a.encode()) <= 160


def test_folder_and_regex_labels():
    assert ac_core_labels.folder_label("dog/a.wav") == "dog"
    assert ac_core_labels.folder_label("dog/deep/a.wav") == "dog"
    assert ac_core_labels.folder_label("a.wav") == ""
    regex = ac_core_labels.compile_label_regex(r"^(\d+)_")
    assert ac_core_labels.regex_label("7_jackson_3.wav", regex) == "7"
    assert ac_core_labels.regex_label("x.wav", regex) == ""
    with pytest.raises(ConfigError, match="needs a group"):
        ac_core_labels.compile_label_regex(r"^\d+_")
    with pytest.raises(ConfigError, match="not a valid regex"):
        ac_core_labels.compile_label_regex(r"(")


def test_resolve_labels_each_source(tmp_path, caplog):
    rels = ["dog/1_a.wav", "dog/sub/2_b.wav", "3_c.wav", "cat/x.wav"]
    assert ac_core_labels.resolve_labels(rels, tmp_path, labels="folder") == ["dog", "dog", "", "cat"]
    assert ac_core_labels.resolve_labels(rels, tmp_path, labels="none") == [""] * 4
    with caplog.at_level(logging.WARNING):
        got = ac_core_labels.resolve_labels(rels, tmp_path, labels="regex", label_regex=r"^(\d)_")
    assert got == ["1", "2", "3", ""]
    assert "matched no label in 1 file" in caplog.text
    (tmp_path / "labels.csv").write_text("path,label\n./dog/1_a.wav,woof\ndog\\sub\\2_b.wav,a/b\n3_c.wav,NA\n"
                                         "gone.wav,x\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        got = ac_core_labels.resolve_labels(rels, tmp_path, labels="csv", label_csv="labels.csv")
    assert got == ["woof", "a_b", "NA", ""]  # 'NA' is a label, not a missing value
    assert "1 file(s) are not listed" in caplog.text and "1 row(s)" in caplog.text
    with pytest.raises(DatasetError, match="not found"):
        ac_core_labels.resolve_labels(rels, tmp_path, labels="csv", label_csv="nope.csv")
    (tmp_path / "bad.csv").write_text("file,class\na.wav,x\n")
    with pytest.raises(DatasetError, match="lacks column.*path, label"):
        ac_core_labels.resolve_labels(rels, tmp_path, labels="csv", label_csv="bad.csv")


# --------------------------------------------------------------------------- adapters

@pytest.fixture
def fake_fsdd(tmp_path) -> Path:
    rec = tmp_path / "fsdd" / "recordings"
    for name in ["0_george_0.wav", "0_jackson_1.wav", "7_george_2.wav", "7_lucas_10.wav"]:
        _wav(rec / name)
    (rec / "oddly_named.wav").write_bytes(b"x")
    (tmp_path / "fsdd" / "README.md").write_text("fsdd")
    return tmp_path / "fsdd"


def test_prepare_fsdd_digit_and_speaker(fake_fsdd, tmp_path):
    before = _tree_hashes(fake_fsdd)
    dest = tmp_path / "datasets" / "fsdd"
    assert datasets.prepare("fsdd", fake_fsdd, dest) == 4
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.wav")) == [
        "0/0_george_0.wav", "0/0_jackson_1.wav", "7/7_george_2.wav", "7/7_lucas_10.wav"]
    link = dest / "7" / "7_lucas_10.wav"
    assert link.is_symlink() and link.resolve() == (fake_fsdd / "recordings" / "7_lucas_10.wav").resolve()
    assert datasets.prepare("fsdd", fake_fsdd / "recordings", dest) == 4  # idempotent, recordings/ also accepted
    spk = tmp_path / "datasets" / "spk"
    datasets.prepare("fsdd", fake_fsdd, spk, label="speaker", mode="copy")
    assert sorted(p.name for p in spk.iterdir()) == ["george", "jackson", "lucas"]
    copy = spk / "george" / "7_george_2.wav"
    assert not copy.is_symlink() and copy.read_bytes() == (fake_fsdd / "recordings" / "7_george_2.wav").read_bytes()
    assert datasets.prepare("fsdd", fake_fsdd, spk, label="speaker", mode="copy") == 4
    assert _tree_hashes(fake_fsdd) == before  # the source is untouched
    with pytest.raises(DatasetError, match="digit, speaker"):
        datasets.prepare("fsdd", fake_fsdd, dest, label="gender")


def test_prepare_never_overwrites_a_researchers_file(fake_fsdd, tmp_path):
    dest = tmp_path / "ds"
    _wav(dest / "0" / "0_george_0.wav", freq=1000.0)
    mine = (dest / "0" / "0_george_0.wav").read_bytes()
    with pytest.raises(DatasetError, match="already exists"):
        datasets.prepare("fsdd", fake_fsdd, dest)
    assert (dest / "0" / "0_george_0.wav").read_bytes() == mine
    assert not (dest / "7").exists()  # nothing written when a conflict is found


@pytest.fixture
def fake_urbansound(tmp_path) -> Path:
    root = tmp_path / "UrbanSound8K"
    rows = [("100032-3-0-0.wav", 1, 3, "dog_bark"), ("100263-2-0-117.wav", 1, 2, "children_playing"),
            ("101415-3-0-2.wav", 2, 3, "dog_bark")]
    for name, fold, *_ in rows:
        _wav(root / "audio" / f"fold{fold}" / name)
    (root / "metadata").mkdir()
    pd.DataFrame([{"slice_file_name": n, "fsID": n.split("-")[0], "start": 0, "end": 1, "salience": 1,
                   "fold": f, "classID": c, "class": k} for n, f, c, k in rows]).to_csv(
        root / "metadata" / "UrbanSound8K.csv", index=False)
    return root


def test_prepare_urbansound8k_keeps_folds(fake_urbansound, tmp_path):
    before = _tree_hashes(fake_urbansound)
    dest = tmp_path / "us8k"
    assert datasets.prepare("urbansound8k", fake_urbansound, dest) == 3
    assert (dest / "dog_bark" / "101415-3-0-2.wav").resolve() == \
        (fake_urbansound / "audio" / "fold2" / "101415-3-0-2.wav").resolve()
    folds = pd.read_csv(dest / "folds.csv", dtype=str)
    assert folds.to_dict("records") == [
        {"path": "dog_bark/100032-3-0-0.wav", "label": "dog_bark", "fold": "1"},
        {"path": "children_playing/100263-2-0-117.wav", "label": "children_playing", "fold": "1"},
        {"path": "dog_bark/101415-3-0-2.wav", "label": "dog_bark", "fold": "2"}]
    # folds.csv doubles as a label CSV for stage 01
    labels = ac_core_labels.resolve_labels(folds["path"].tolist(), dest, labels="csv", label_csv="folds.csv")
    assert labels == ["dog_bark", "children_playing", "dog_bark"]
    ids = tmp_path / "ids"
    datasets.prepare("urbansound8k", fake_urbansound, ids, label="classID")
    assert sorted(p.name for p in ids.iterdir() if p.is_dir()) == ["2", "3"]
    assert _tree_hashes(fake_urbansound) == before


def test_prepare_urbansound8k_names_what_is_missing(fake_urbansound, tmp_path):
    (fake_urbansound / "audio" / "fold2" / "101415-3-0-2.wav").unlink()
    with pytest.raises(DatasetError, match=r"1 audio file\(s\).*fold2/101415-3-0-2.wav"):
        datasets.prepare("urbansound8k", fake_urbansound, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    csv = fake_urbansound / "metadata" / "UrbanSound8K.csv"
    pd.read_csv(csv).drop(columns=["fold"]).to_csv(csv, index=False)
    with pytest.raises(DatasetError, match="lacks column.*fold"):
        datasets.prepare("urbansound8k", fake_urbansound, tmp_path / "x")
    with pytest.raises(DatasetError, match="metadata .* not found"):
        datasets.prepare("urbansound8k", tmp_path, tmp_path / "x")


def test_prepare_esc50(tmp_path):
    root = tmp_path / "ESC-50-master"
    rows = [("1-100032-A-0.wav", 1, 0, "dog"), ("1-100038-A-14.wav", 1, 14, "chirping_birds"),
            ("2-100648-A-43.wav", 2, 43, "car_horn")]
    for name, *_ in rows:
        _wav(root / "audio" / name)
    (root / "meta").mkdir()
    pd.DataFrame([{"filename": n, "fold": f, "target": t, "category": c, "esc10": False, "src_file": 1, "take": "A"}
                  for n, f, t, c in rows]).to_csv(root / "meta" / "esc50.csv", index=False)
    dest = tmp_path / "esc"
    assert datasets.prepare("esc50", root, dest, mode="copy") == 3
    assert (dest / "car_horn" / "2-100648-A-43.wav").is_file()
    assert pd.read_csv(dest / "folds.csv")["fold"].tolist() == [1, 1, 2]
    datasets.prepare("esc50", root, tmp_path / "t", label="target")
    assert sorted(p.name for p in (tmp_path / "t").iterdir() if p.is_dir()) == ["0", "14", "43"]
    with pytest.raises(DatasetError, match="category, target"):
        datasets.prepare("esc50", root, dest, label="class")


def test_prepare_csv_relative_absolute_and_clashing_names(tmp_path):
    src = tmp_path / "src"
    a, b, c = _wav(src / "one" / "x.wav"), _wav(src / "two" / "x.wav"), _wav(tmp_path / "elsewhere" / "y.wav")
    table = src / "list.csv"
    table.write_text(f"path,label,species\none/x.wav,bird,robin\ntwo/x.wav,bird,wren\n{c},,robin\n")
    dest = tmp_path / "ds"
    assert datasets.prepare("csv", table, dest) == 3
    assert (dest / "bird" / "x.wav").resolve() == a.resolve()
    assert (dest / "bird" / "x__2.wav").resolve() == b.resolve()
    assert (dest / "y.wav").resolve() == c.resolve()  # empty label: the dataset root
    assert not (dest / "folds.csv").exists()
    datasets.prepare("csv", table, tmp_path / "sp", label="species")
    assert sorted(p.name for p in (tmp_path / "sp").iterdir()) == ["robin", "wren"]
    with pytest.raises(DatasetError, match="lacks column.*colour"):
        datasets.prepare("csv", table, dest, label="colour")
    with pytest.raises(DatasetError, match="must be a CSV file"):
        datasets.prepare("csv", src, dest)


def test_prepare_rejects_unknown_corpus_mode_and_source(tmp_path):
    with pytest.raises(DatasetError, match="unknown corpus"):
        datasets.prepare("timit", tmp_path, tmp_path / "d")
    with pytest.raises(DatasetError, match="symlink"):
        datasets.prepare("fsdd", tmp_path, tmp_path / "d", mode="hardlink")
    with pytest.raises(DatasetError, match="does not exist"):
        datasets.prepare("fsdd", tmp_path / "nope", tmp_path / "d")
    with pytest.raises(DatasetError, match="no audio files"):
        datasets.prepare("fsdd", tmp_path, tmp_path / "d")


def test_relinks_when_the_source_moves(fake_fsdd, tmp_path):
    dest = tmp_path / "ds"
    datasets.prepare("fsdd", fake_fsdd, dest)
    moved = tmp_path / "moved"
    os.rename(fake_fsdd, moved)
    datasets.prepare("fsdd", moved, dest)
    assert (dest / "0" / "0_george_0.wav").resolve() == (moved / "recordings" / "0_george_0.wav").resolve()


def test_demo_and_corpora_are_never_written_into_a_users_folder(fake_fsdd, tmp_path):
    mine = tmp_path / "datasets" / "mine"
    _wav(mine / "birds" / "robin.wav")
    (mine / "notes.txt").write_text("field notes")
    before = _tree_hashes(mine)
    with pytest.raises(DatasetError, match="holds files the demo did not write"):
        datasets.generate_demo(mine)
    with pytest.raises(DatasetError, match=r"already holds 2 file\(s\) that are not this fsdd selection's "
                                           r"\(e.g. birds/robin.wav, notes.txt\)"):
        datasets.prepare("fsdd", fake_fsdd, mine)
    with pytest.raises(DatasetError, match="holds files the demo did not write"):
        datasets.bring_in(mine, "demo")
    assert datasets.bring_in(mine, "auto") == 2  # a user's dataset: counted, not written
    assert _tree_hashes(mine) == before
    # a folder prepared with digit labels is not re-prepared with speaker labels on top
    digits = tmp_path / "datasets" / "digits"
    datasets.prepare("fsdd", fake_fsdd, digits)
    with pytest.raises(DatasetError, match=r"already holds 4 file\(s\)"):
        datasets.prepare("fsdd", fake_fsdd, digits, label="speaker")


def test_bring_in_auto_writes_the_demo_only_into_a_folder_named_demo(tmp_path):
    assert datasets.bring_in(tmp_path / "demo", "auto", seed=0) == 140
    assert datasets.bring_in(tmp_path / "demo", "auto", seed=0) == 140  # the demo's own folder: rewritten freely
    with pytest.raises(DatasetError, match="does not exist: put your audio files there"):
        datasets.bring_in(tmp_path / "other", "auto")
    assert not (tmp_path / "other").exists()
    with pytest.raises(DatasetError, match="needs SOURCE"):
        datasets.bring_in(tmp_path / "other", "fsdd")
