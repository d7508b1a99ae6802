"""Segment clustering: onsets, per-segment features, scaling, clusters and click tracks."""

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audioclust.analysis import segments
from audioclust.clustering.metrics import ari
from audioclust.config import load_config
from audioclust.core.errors import ConfigError
from audioclust.dsp.decode import write_wav

SR = 22050


@pytest.fixture(scope="module")
def cfg():
    return load_config()


@pytest.fixture(scope="module")
def example(cfg):
    y, sr, events = segments.make_rhythm_example(sr=SR, seed=0, seconds=8.0)
    return y, sr, events, segments.cluster_segments(y, sr, cfg.segments, seed=0)


def test_rhythm_example_is_what_it_says():
    y, sr, events = segments.make_rhythm_example(sr=SR, seed=3, seconds=8.0)
    assert y.dtype == np.float32 and y.shape == (8 * SR,) and sr == SR
    assert np.abs(y).max() == pytest.approx(0.8)
    assert len(events) == 31                                   # one per 0.25 s after a silent first step
    assert events["time"].tolist() == pytest.approx([0.25 * i for i in range(1, 32)], abs=1 / SR)  # whole samples
    assert events["kind"].value_counts().to_dict() == {"kick": 8, "snare": 8, "hihat": 8, "blip": 7}
    assert np.all(np.abs(y[: events["sample"].iloc[0]]) == 0)  # silence before the first event
    again, _, same = segments.make_rhythm_example(sr=SR, seed=3, seconds=8.0)
    assert np.array_equal(y, again) and same.equals(events)


def test_every_event_is_found_within_a_hop_and_a_half(example, cfg):
    y, sr, events, result = example
    hop = cfg.segments.hop_length
    assert result.status == "ok" and len(result.onsets) == len(events) == 31
    error = result.onsets - events["sample"].to_numpy()        # one onset per event, in order
    # backtracked to the last energy frame (one hop, centred) without the event: 0.5 to 1.5 hops early
    assert np.all(error <= -hop // 2) and np.all(error > -1.5 * hop), error
    assert np.allclose(result.onset_times, result.onsets / sr)
    table = result.table
    assert table["start"].tolist() == result.onsets.tolist()
    assert table["end"].tolist() == [*result.onsets[1:].tolist(), len(y)]


def test_kmeans_and_affinity_propagation_recover_the_kinds(example):
    _, _, events, result = example
    kinds = segments.match_events(result.onsets, events, tolerance=384)
    assert (kinds == events["kind"].to_numpy()).all()
    assert ari(kinds, result.labels["kmeans"]) >= 0.9           # 1.0 on seeds 0-9
    assert ari(kinds, result.labels["affinity_propagation"]) >= 0.9
    assert len(set(result.labels["kmeans"])) == 4
    # renumbered by first appearance: the first segment is cluster 0, the next new one cluster 1
    first_new = pd.unique(result.labels["kmeans"])
    assert first_new.tolist() == [0, 1, 2, 3]
    scores = segments.kind_scores(result, kinds).set_index("algorithm")
    assert scores.loc["kmeans", "ari"] == pytest.approx(ari(kinds, result.labels["kmeans"]))
    assert scores.loc["kmeans", "n_scored"] == 31


def test_segment_features_by_hand(cfg):
    # 11000 samples of 441 Hz at 0.5 (220 periods), then 11000 of 2205 Hz at 0.25 (1100 periods)
    n = np.arange(11000)
    y = np.concatenate([0.5 * np.sin(2 * np.pi * 441 * n / SR), 0.25 * np.sin(2 * np.pi * 2205 * n / SR)])
    y = y.astype(np.float32)
    starts, ends = np.array([0, 11000]), np.array([11000, 22000])
    sg = cfg.segments
    table = segments.segment_features(y, SR, starts, ends, n_fft=sg.n_fft, hop_length=sg.hop_length,
                                      n_mels=sg.n_mels, n_mfcc=sg.n_mfcc)
    assert list(table.columns) == ["zcr", "rms"] + [f"mfcc{i}" for i in range(13)]
    assert table["rms"].to_numpy() == pytest.approx([0.5 / np.sqrt(2), 0.25 / np.sqrt(2)], rel=1e-5)
    # a sine crosses zero 2f/sr times per sample (one crossing more or less at the ends)
    assert np.abs(table["zcr"].to_numpy() - [2 * 441 / SR, 2 * 2205 / SR]).max() <= 1.5 / 11000
    # MFCC means over the frames centred inside each segment: 0..42 and 43..85 (hop 256)
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=sg.n_fft, hop_length=sg.hop_length, n_mels=sg.n_mels,
                                         fmin=0.0, fmax=SR / 2, power=2.0)
    reference = librosa.feature.mfcc(S=librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0), n_mfcc=13)
    assert reference.shape[1] == 86
    got = table[[f"mfcc{i}" for i in range(13)]].to_numpy()
    assert got[0] == pytest.approx(reference[:, :43].mean(axis=1), rel=1e-3, abs=0.05)
    assert got[1] == pytest.approx(reference[:, 43:86].mean(axis=1), rel=1e-3, abs=0.05)


def test_fixed_length_segments():
    starts, ends = segments.segment_bounds(np.array([0, 1000, 9000]), 10000, SR, length=0.1)
    assert starts.tolist() == [0, 1000, 9000] and ends.tolist() == [2205, 3205, 10000]
    starts, ends = segments.segment_bounds(np.array([0, 1000, 9000]), 10000, SR)
    assert ends.tolist() == [1000, 9000, 10000]


def test_scaling_maps_every_column_onto_minus_one_one():
    F = np.array([[0.0, -5.0, 7.0, 1e-4],
                  [10.0, 5.0, 7.0, 3e-4],
                  [2.5, 0.0, 7.0, 2e-4]])
    X = segments.scale_features(F)
    assert X.dtype == np.float32
    assert X[:, [0, 1, 3]].min(axis=0).tolist() == [-1.0, -1.0, -1.0]
    assert X[:, [0, 1, 3]].max(axis=0).tolist() == [1.0, 1.0, 1.0]
    assert X[:, 2].tolist() == [-1.0, -1.0, -1.0]               # a constant column
    assert X[2, 0] == pytest.approx(-0.5) and X[2, 1] == pytest.approx(0.0) and X[2, 3] == pytest.approx(0.0)


def test_scaled_matrix_of_the_example_spans_minus_one_one(example):
    X = example[3].X
    assert X.shape == (31, 15)
    assert np.all(X.min(axis=0) == -1.0) and np.all(X.max(axis=0) == 1.0)


def test_click_wavs_have_the_recording_length_and_clicks_at_the_cluster_onsets(tmp_path, cfg):
    y, sr, _ = segments.make_rhythm_example(sr=SR, seed=1, seconds=4.0)
    quiet = 0.05 * y                                            # clicks (0.5) stand out from the recording
    path = tmp_path / "quiet.wav"
    write_wav(path, quiet, sr=sr)
    result, files = segments.run_segments(path, tmp_path / "out", cfg.segments, sample_rate=cfg.audio.sample_rate, seed=0)
    assert result.status == "ok" and files["folder"] == tmp_path / "out" / "quiet"
    clicks = files["clicks"]
    assert set(clicks) == {"kmeans", "affinity_propagation"}
    labels = result.labels["kmeans"]
    assert sorted(clicks["kmeans"]) == sorted(set(labels.tolist()))
    for cluster, wav in clicks["kmeans"].items():
        assert wav == tmp_path / "out" / "quiet" / "kmeans" / f"cluster_{cluster}.wav"
        data, file_sr = sf.read(wav, dtype="float32")
        assert file_sr == SR and data.shape == quiet.shape
        onsets = result.onsets[labels == cluster]
        expected = segments.click_mix(quiet, SR, onsets, click_freq=1000.0, click_duration=0.1, gain=0.5)
        assert np.array_equal(data, expected)
        # each click is a 1 kHz sine from its onset: |x| passes 0.2 within a quarter period (5.5 samples)
        loud = np.flatnonzero(np.abs(data) > 0.2)
        starts = loud[np.diff(loud, prepend=-SR) > 0.05 * SR]
        assert len(starts) == len(onsets)
        assert np.all((starts - onsets >= 0) & (starts - onsets <= 6)), starts - onsets
    for name in ("scatter", "waveform"):
        assert [p.suffix for p in files[name]] == [".png", ".pdf"] and all(p.stat().st_size for p in files[name])
    table = pd.read_csv(files["table"])
    assert table["kmeans"].tolist() == labels.tolist() and table["start"].tolist() == result.onsets.tolist()


def test_click_mix_is_scaled_only_when_it_would_clip():
    y = np.zeros(SR, dtype=np.float32)
    mix = segments.click_mix(y, SR, np.array([1000]), gain=0.5)
    assert np.abs(mix).max() == pytest.approx(0.5, abs=0.02) and np.all(mix[:1000] == 0)
    loud = segments.click_mix(np.full(SR, 0.9, dtype=np.float32), SR, np.array([1000]), gain=0.5)
    assert np.abs(loud).max() == pytest.approx(1.0)


def test_generated_example_run_writes_everything(tmp_path, cfg):
    cfg_short = load_config(overrides=["segments.example_seconds=4.0", "segments.algorithms=[kmeans]",
                                       "segments.scatter=[zcr, rms]"])
    result, files = segments.run_segments(None, tmp_path, cfg_short.segments, sample_rate=cfg_short.audio.sample_rate, seed=0)
    assert files["folder"] == tmp_path / "rhythm_example"
    assert (result.table["true_kind"] == files["events"]["kind"].to_numpy()).all()
    assert len(result.table) == 15 and list(files["clicks"]) == ["kmeans"]


def test_silence_gives_a_clear_result_not_a_crash(tmp_path, cfg):
    path = tmp_path / "silence.wav"
    write_wav(path, np.zeros(SR, dtype=np.float32), sr=SR)
    result, files = segments.run_segments(path, tmp_path / "out", cfg.segments, sample_rate=cfg.audio.sample_rate, seed=0)
    assert result.status == "silent" and "segments.silence_db" in result.reason
    assert result.table.empty and "zcr" in result.table.columns and result.labels == {}
    assert result.X.shape == (0, 15)
    assert "clicks" not in files and "scatter" not in files
    assert pd.read_csv(files["table"]).empty


def test_unreadable_file_and_single_event(tmp_path, cfg):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    result, _ = segments.run_segments(bad, tmp_path / "out", cfg.segments, sample_rate=cfg.audio.sample_rate, seed=0)
    assert result.status == "error" and "libsndfile" in result.reason
    tone = np.zeros(SR, dtype=np.float32)
    tone[SR // 2:] = 0.5 * np.sin(2 * np.pi * 440 * np.arange(SR // 2) / SR)
    result = segments.cluster_segments(tone, SR, cfg.segments)
    assert result.status == "too_few_segments" and len(result.table) == 1 and "segments.delta" in result.reason


def test_scatter_columns_are_checked(example):
    with pytest.raises(ConfigError, match="not a segment feature; choose two of: zcr, rms, mfcc0"):
        segments.scatter_figure(example[3], ["zcr", "loudness"])
    with pytest.raises(ConfigError, match="segments.scatter"):
        load_config(overrides=["segments.scatter=[zcr]"])
