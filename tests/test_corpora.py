"""audioclust.corpora: the generated benchmark corpora, tiny versions rendered for real.

The instrument and speech corpora need FluidSynth with its General MIDI soundfont and
espeak-ng (Debian packages fluidsynth, fluid-soundfont-gm, espeak-ng); their tests skip,
saying so, when those are missing.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audioclust.core.errors import DatasetError
from audioclust.core.labels import LabelResolver
from audioclust.corpora import MANIFEST, SR, csv_paths, instruments, music, speech, textures, write_corpus
from audioclust.corpora.__main__ import main
from audioclust.corpora.midi import midi_file

HAVE_FLUIDSYNTH = shutil.which("fluidsynth") is not None and instruments.SOUNDFONT.is_file()
HAVE_ESPEAK = shutil.which("espeak-ng") is not None
needs_fluidsynth = pytest.mark.skipif(
    not HAVE_FLUIDSYNTH, reason=f"fluidsynth or {instruments.SOUNDFONT} missing "
                                "(apt-get install fluidsynth fluid-soundfont-gm)")
needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng missing (apt-get install espeak-ng)")

#: kind -> (module, marks, expected duration range in s, number of tiny files)
KINDS = {
    "instruments": (instruments, [needs_fluidsynth], (1.35, 1.95), 12),
    "music": (music, [needs_fluidsynth], (4.0, 4.0), 6),
    "speech": (speech, [needs_espeak], (0.2, 1.5), 12),
    "textures": (textures, [], (2.0, 5.0), 16),
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    """Generate each tiny corpus once (seed 0) on first use: ``tiny(kind) -> (folder, summary)``."""
    made: dict[str, tuple[Path, object]] = {}
    root = tmp_path_factory.mktemp("corpora")

    def get(kind: str):
        if kind not in made:
            dest = root / kind
            made[kind] = (dest, KINDS[kind][0].generate(dest, size="tiny", seed=0, n_jobs=2))
        return made[kind]

    return get


def _kinds():
    return [pytest.param(kind, marks=marks, id=kind) for kind, (_, marks, _, _) in KINDS.items()]


def _wavs(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.wav"))


def _hashes(folder: Path) -> dict[str, str]:
    return {rel: hashlib.sha256((folder / rel).read_bytes()).hexdigest() for rel in _wavs(folder)}


# --------------------------------------------------------------------------- every corpus

@pytest.mark.parametrize("kind", _kinds())
def test_layout_counts_and_audio(tiny, kind):
    module, _, (shortest, longest), n_files = KINDS[kind]
    dest, summary = tiny(kind)
    clips = module.plan("tiny", seed=0)
    rels = _wavs(dest)
    assert rels == sorted(c.rel for c in clips) and len(rels) == n_files == summary.files
    # nothing but audio in the folder (the manifest is hidden); one folder per primary label, balanced
    assert sorted(p.name for p in dest.iterdir() if p.is_file()) == [MANIFEST]
    primary = next(iter(clips[0].labels))
    counts = pd.Series([r.split("/")[0] for r in rels]).value_counts()
    assert sorted(counts.index) == sorted({c.labels[primary] for c in clips}) and counts.nunique() == 1
    assert summary.counts[primary] == counts.sort_index().to_dict()
    for rel in rels:
        info = sf.info(dest / rel)
        assert (info.channels, info.samplerate, info.subtype) == (1, SR, "PCM_16"), rel
        assert shortest <= info.duration <= longest, (rel, info.duration)
        y, _ = sf.read(dest / rel, dtype="float64")
        rms_db = 10 * np.log10(np.mean(y ** 2))
        peak = np.abs(y).max()
        assert rms_db > -55, (rel, rms_db)  # not silent
        assert peak < 0.99, (rel, peak)  # not clipped
    assert summary.seconds == pytest.approx(sum(sf.info(dest / r).duration for r in rels), abs=1e-3)


@pytest.mark.parametrize("kind", _kinds())
def test_label_csvs_agree_with_the_folders_and_feed_the_label_resolver(tiny, kind):
    dest, summary = tiny(kind)
    clips = KINDS[kind][0].plan("tiny", seed=0)
    columns = list(clips[0].labels)
    assert summary.csvs == csv_paths(dest, columns=columns)
    assert all(p.parent == dest.parent for p in summary.csvs.values())  # beside the folder, not in it
    table = pd.read_csv(summary.csvs["labels"], dtype=str, keep_default_na=False)
    assert list(table.columns) == ["path", *columns]
    assert sorted(table["path"]) == _wavs(dest)
    assert (table["path"].str.split("/").str[0] == table[columns[0]]).all()  # first label set = folder
    rels = list(table["path"])
    by_folder = LabelResolver(dest, labels="folder")(rels)
    assert by_folder == list(table[columns[0]])
    for column in columns:
        # the way a user points audioclust at it: dataset.label_csv relative to the dataset folder
        resolver = LabelResolver(dest, labels="csv", label_csv=f"../{summary.csvs[column].name}")
        assert resolver(rels) == list(table[column]) and resolver.misses == 0, column
        assert len(resolver.table) == len(rels)


@pytest.mark.parametrize("kind", _kinds())
def test_same_seed_same_corpus(tiny, tmp_path, kind):
    dest, _ = tiny(kind)
    again = KINDS[kind][0].generate(tmp_path / kind, size="tiny", seed=0, n_jobs=1)
    assert _wavs(again.dest) == _wavs(dest)
    frames = {r: sf.info(dest / r).frames for r in _wavs(dest)}
    assert {r: sf.info(again.dest / r).frames for r in _wavs(dest)} == frames
    assert again.csvs["labels"].read_bytes() == (dest.parent / f"{kind}.labels.csv").read_bytes()
    if kind == "textures":
        assert _hashes(again.dest) == _hashes(dest)


def test_textures_are_byte_identical_per_seed_and_differ_across_seeds(tiny, tmp_path):
    dest, _ = tiny("textures")
    other = textures.generate(tmp_path / "other", size="tiny", seed=1, n_jobs=1).dest
    a, b = _hashes(dest), _hashes(other)
    assert a.keys() == b.keys() and all(a[k] != b[k] for k in a)


# --------------------------------------------------------------------------- re-runs and refusals

def test_rerun_keeps_unchanged_files_and_follows_new_arguments(tmp_path):
    dest = tmp_path / "tex"
    textures.generate(dest, size="tiny", n_jobs=1)
    first = dest / "rain" / "rain_000.wav"
    stamp = first.stat().st_mtime_ns
    assert textures.generate(dest, size="tiny", n_jobs=1).written == 0
    assert first.stat().st_mtime_ns == stamp
    (dest / "wind" / "wind_001.wav").write_bytes(b"damaged")
    (dest / "fire" / "fire_000.wav").unlink()
    assert textures.generate(dest, size="tiny", n_jobs=1).written == 2
    assert sf.info(dest / "wind" / "wind_001.wav").frames > 0 and (dest / "fire" / "fire_000.wav").is_file()
    changed = textures.generate(dest, size="tiny", seed=5, n_jobs=1)
    assert changed.written == 16 and first.stat().st_mtime_ns != stamp
    (dest / "rain" / "rain_001.wav").unlink()
    assert textures.generate(dest, size="tiny", seed=5, n_jobs=1).written == 1


def test_a_smaller_plan_removes_the_files_it_no_longer_makes(tmp_path):
    dest = tmp_path / "tex"
    textures.generate(dest, size="tiny", n_jobs=1)
    fewer = write_corpus(dest, kind="textures", clips=textures.plan("tiny")[::4], render=textures.render, n_jobs=1)
    assert (fewer.files, fewer.written) == (4, 0) and len(_wavs(dest)) == 4
    assert sorted(pd.read_csv(fewer.csvs["class"])["path"]) == _wavs(dest)
    # the folders left empty are removed too
    assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == ["engine", "rain", "siren", "stream"]
    # the sizes nest, so growing a corpus keeps what a smaller one made
    small = {c.rel: c.params for c in textures.plan("small")}
    assert all(small[c.rel] == c.params for c in textures.plan("tiny"))


def test_a_foreign_folder_is_refused_and_left_untouched(tmp_path):
    dest = tmp_path / "mine"
    (dest / "rain").mkdir(parents=True)
    (dest / "rain" / "field_recording.wav").write_bytes(b"someone's data")
    with pytest.raises(DatasetError, match="no textures generator wrote"):
        textures.generate(dest, size="tiny")
    assert [p.relative_to(dest).as_posix() for p in dest.rglob("*")] == ["rain", "rain/field_recording.wav"]
    assert not list(tmp_path.glob("*.csv"))


def test_a_foreign_label_csv_beside_the_folder_is_refused(tmp_path):
    (tmp_path / "tex.class.csv").write_text("path,label\nmy.wav,mine\n")
    with pytest.raises(DatasetError, match="tex.class.csv already exist"):
        textures.generate(tmp_path / "tex", size="tiny")
    assert not (tmp_path / "tex").exists()
    assert (tmp_path / "tex.class.csv").read_text() == "path,label\nmy.wav,mine\n"


def test_another_generators_folder_is_refused(tmp_path):
    textures.generate(tmp_path / "corpus", size="tiny", n_jobs=1)
    before = _hashes(tmp_path / "corpus")
    with pytest.raises(DatasetError, match="generated 'textures' corpus, not 'speech'"):
        write_corpus(tmp_path / "corpus", kind="speech", clips=textures.plan("tiny", seed=1), render=textures.render)
    assert _hashes(tmp_path / "corpus") == before


def test_an_unknown_size_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="unknown corpus size"):
        textures.generate(tmp_path / "x", size="huge")
    assert not (tmp_path / "x").exists()


def test_a_missing_tool_names_its_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DatasetError, match="apt-get install fluidsynth"):
        instruments.generate(tmp_path / "notes")
    with pytest.raises(DatasetError, match="apt-get install espeak-ng"):
        speech.generate(tmp_path / "words")
    assert not (tmp_path / "notes").exists() and not (tmp_path / "words").exists()


@needs_fluidsynth
def test_a_missing_soundfont_names_its_package(tmp_path):
    with pytest.raises(DatasetError, match="apt-get install fluid-soundfont-gm"):
        instruments.generate(tmp_path / "notes", soundfont=tmp_path / "none.sf2")


# --------------------------------------------------------------------------- instruments

def test_every_size_plays_notes_inside_each_instruments_range():
    for size, (names, notes, velocities) in instruments.SIZES.items():
        for name in names:
            inst = instruments.INSTRUMENTS[name]
            assert inst.low <= min(notes) and max(notes) <= inst.high, (size, name)
        assert all(1 <= v <= 127 for v in velocities)
    names, notes, velocities = instruments.SIZES["bench"]
    clips = instruments.plan("bench")
    assert len(clips) == 576 and len(notes) % 12 == 0  # every pitch class equally often
    for column in ("instrument", "pitch_class", "velocity"):
        assert pd.Series([c.labels[column] for c in clips]).value_counts().nunique() == 1, column


def test_midi_file_bytes():
    data = instruments.midi_note_file(program=40, note=69, velocity=90, hold=1.0, tail=0.5)
    # header: format 0, one track, 480 ticks per quarter note; 960 ticks = 1 s at 120 bpm
    assert data[:14] == b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0"
    assert data[14:18] == b"MTrk" and int.from_bytes(data[18:22], "big") == len(data) - 22
    assert b"\x00\xc0\x28\x00\x90\x45\x5a\x87\x40\x80\x45\x00\x83\x60\xff\x2f\x00" in data


@needs_fluidsynth
def test_rendered_notes_have_the_pitch_of_their_midi_note(tiny):
    dest, _ = tiny("instruments")
    table = pd.read_csv(dest.parent / "instruments.labels.csv")
    assert table["midi_note"].nunique() == 4
    for rel, note in zip(table["path"], table["midi_note"]):
        y, _ = sf.read(dest / rel, dtype="float32")
        f0, voiced, _ = librosa.pyin(y[int(0.1 * SR):int(0.9 * SR)], fmin=150, fmax=1200, sr=SR, frame_length=2048)
        estimate = np.nanmedian(f0[voiced])
        assert abs(12 * np.log2(estimate / librosa.midi_to_hz(note))) < 0.5, (rel, estimate)


# --------------------------------------------------------------------------- music

def _midi_events(data: bytes) -> tuple[float, list[tuple[int, int, int, int]], dict[int, int]]:
    """Read back a format-0 file of :func:`audioclust.corpora.midi.midi_file`: its tempo (bpm), its
    note-ons as (tick, channel, note, velocity) and each channel's program."""
    assert data[:8] == b"MThd\x00\x00\x00\x06" and data[14:18] == b"MTrk"
    pos, now, tempo, notes, programs = 22, 0, None, [], {}
    while pos < len(data):
        delta = 0
        while True:
            byte = data[pos]
            pos += 1
            delta = (delta << 7) | (byte & 0x7F)
            if byte < 0x80:
                break
        now += delta
        status = data[pos]
        if status == 0xFF:
            kind, length = data[pos + 1], data[pos + 2]
            if kind == 0x51:
                tempo = 60_000_000 / int.from_bytes(data[pos + 3:pos + 6], "big")
            pos += 3 + length
        elif status & 0xF0 == 0xC0:
            programs[status & 0x0F] = data[pos + 1]
            pos += 2
        else:
            if status & 0xF0 == 0x90:
                notes.append((now, status & 0x0F, data[pos + 1], data[pos + 2]))
            pos += 3
    return tempo, notes, programs


def test_midi_file_orders_events_and_sets_the_tempo():
    data = midi_file([(480, bytes([0x91, 64, 90])), (0, bytes([0x90, 60, 100])), (0, bytes([0x91, 62, 80]))],
                     tempo_bpm=150, end_tick=960)
    assert data[22:29] == b"\x00\xff\x51\x03\x06\x1a\x80"  # 400,000 µs per quarter note
    tempo, notes, _ = _midi_events(data)
    assert tempo == 150 and notes == [(0, 0, 60, 100), (0, 1, 62, 80), (480, 1, 64, 90)]
    assert data.endswith(b"\x83\x60\xff\x2f\x00")  # the end 480 ticks after the last event
    with pytest.raises(ValueError, match="outside"):
        midi_file([(961, bytes([0x90, 60, 1]))], tempo_bpm=120, end_tick=960)


@pytest.mark.parametrize("name", list(music.STYLES))
def test_every_style_plays_its_key_at_its_tempo(name):
    style = music.STYLES[name]
    scale = music.MINOR if style.minor else music.MAJOR
    for tonic in (0, 7):
        tempo, notes, programs = _midi_events(music.piece_file(style, tonic=tonic, tempo=100.0, seconds=6.0,
                                                               rng=np.random.default_rng(tonic)))
        assert tempo == 100
        pitched = [(tick, channel, note) for tick, channel, note, _ in notes if channel != music.DRUMS]
        assert {channel for _, channel, _ in pitched} == ({1, 2} if style.melody[0] is None else {0, 1, 2})
        in_key = [(note - tonic) % 12 in scale for _, channel, note in pitched]
        if name == "jazz":  # a walking bass approaches each root from a semitone below
            assert np.mean(in_key) > 0.85
        else:
            assert all(in_key), name
        # the bars that fill the excerpt and one more, so that it ends before the track does
        bars = max(tick for tick, _, _ in pitched) // (music.TICKS_PER_QUARTER * style.metre) + 1
        bar_s = style.metre * 60 / tempo
        assert (bars - 2) * bar_s < 6.0 <= (bars - 1) * bar_s
        assert any(channel == music.DRUMS for _, channel, _, _ in notes) == bool(style.drums)
        # the band plays the same notes on its own instruments
        _, band_notes, band_programs = _midi_events(music.piece_file(
            style, tonic=tonic, tempo=100.0, seconds=6.0, rng=np.random.default_rng(tonic), band=True))
        assert band_notes == notes
        own = {1: style.comp[0], 2: style.bass[0]} | ({} if style.melody[0] is None else {0: style.melody[0]})
        assert programs == own and band_programs == {1: 0, 2: 32} | ({} if style.melody[0] is None else {0: 0})


def test_music_bench_is_balanced_over_styles_and_keys():
    clips = music.plan("bench")
    assert len(clips) == 384 and len({c.rel for c in clips}) == 384
    table = pd.DataFrame([c.labels for c in clips])
    assert (pd.crosstab(table["style"], table["key"]) == 4).all().all()  # every style plays every key 4 times
    for clip in clips:
        low, high = music.STYLES[clip.labels["style"]].tempo
        assert low <= clip.params["tempo"] <= high and 0.3 <= clip.params["level"] <= 0.8


@needs_fluidsynth
def test_rendered_music_sounds_its_notes_and_its_style(tiny):
    dest, _ = tiny("music")
    profiles = {}
    for clip in music.plan("tiny"):
        p = clip.params
        y, _ = sf.read(dest / clip.rel, dtype="float32")
        # the audio's pitch classes are the score's, not another transposition of them
        _, notes, _ = _midi_events(music.piece_file(music.STYLES[p["style"]], tonic=p["tonic"], tempo=p["tempo"],
                                                 seconds=p["seconds"], rng=np.random.default_rng(p["seed"])))
        heard = p["seconds"] * p["tempo"] / 60 * music.TICKS_PER_QUARTER
        score = np.bincount([n % 12 for t, ch, n, _ in notes if ch != music.DRUMS and t < heard], minlength=12)
        chroma = librosa.feature.chroma_cqt(y=y, sr=SR).mean(axis=1)
        fits = [np.corrcoef(np.roll(score, shift), chroma)[0, 1] for shift in range(12)]
        assert np.argmax(fits) == 0, (clip.rel, np.round(fits, 2))
        profiles.setdefault(clip.labels["style"], []).append(librosa.power_to_db(
            librosa.feature.melspectrogram(y=y, sr=SR, n_mels=40)).mean(axis=1))
    # two pieces of a style are nearer in spectrum than pieces of two styles
    within = max(np.linalg.norm(a - b) for a, b in profiles.values())
    across = min(np.linalg.norm(profiles[s][i] - profiles[t][j]) for s in profiles for t in profiles if s < t
                 for i in range(2) for j in range(2))
    assert across > within, (across, within)


# --------------------------------------------------------------------------- speech

@needs_espeak
def test_speech_words_differ_and_repetitions_vary(tiny):
    dest, _ = tiny("speech")

    def mel(rel):
        y, _ = sf.read(dest / rel, dtype="float32")
        return librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_mels=40)).mean(axis=1)

    voice = speech.VOICES[0].name
    zero, zero_again, seven = (mel(f"{word}/{word}_{voice}_r{rep}.wav") for word, rep in
                               (("zero", 1), ("zero", 2), ("seven", 1)))
    # another word by the same voice is farther in spectrum than the same word again
    assert np.linalg.norm(zero - seven) > 1.5 * np.linalg.norm(zero - zero_again)
    assert (dest / f"zero/zero_{voice}_r1.wav").read_bytes() != (dest / f"zero/zero_{voice}_r2.wav").read_bytes()


def test_speech_bench_is_balanced():
    clips = speech.plan("bench")
    assert len(clips) == 480 and len({c.rel for c in clips}) == 480
    for column in ("word", "voice"):
        assert pd.Series([c.labels[column] for c in clips]).value_counts().nunique() == 1, column
    assert len({(c.params["speed"], c.params["pitch"], c.params["gain_db"]) for c in clips}) > 400


# --------------------------------------------------------------------------- command line

def test_command_line_prints_what_it_wrote(tmp_path, capsys):
    assert main(["textures", str(tmp_path / "tex"), "--size", "tiny", "--seed", "2", "--n-jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "textures: 16 files" in out and "rain 2" in out and str(tmp_path / "tex.class.csv") in out
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "a.wav").write_bytes(b"x")
    assert main(["textures", str(tmp_path / "foreign")]) == 2
    assert "no textures generator wrote" in capsys.readouterr().err
    assert main(["textures", str(tmp_path / "tex2"), "--band"]) == 2
    assert "--band is an option of the music corpus" in capsys.readouterr().err and not (tmp_path / "tex2").exists()
