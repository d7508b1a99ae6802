"""Segment clustering: group the events inside one recording.

A recording is cut at its onsets, every segment becomes one row of features, the rows
are scaled to [-1, 1] and clustered; each cluster can then be *heard* as the recording
with clicks at that cluster's onsets.

Onsets
    ``librosa.onset.onset_detect`` on the onset-strength envelope (mel spectral flux) with
    hop ``segments.hop_length``. With ``segments.backtrack`` each onset is moved back to the
    preceding minimum of the frame energy (RMS in frames of one hop, centred like the
    envelope), i.e. to the start of the event rather than its loudest moment. An event that
    follows silence is then placed 0.5 to 1.5 hops before its first sample (the last frame
    whose window holds none of it).
Segments
    From each onset to the next one (the last to the end of the recording), or, with
    ``segments.length`` set, that many seconds after each onset (cut at the end).
Features (one row per segment)
    ``zcr``: zero crossings per sample over the segment's samples (as librosa counts them:
    ``|y| <= 1e-10`` is 0 and 0 is positive; a sine of f Hz gives 2f/sr);
    ``rms``: root mean square of the segment's samples (a sine of amplitude A gives A/√2);
    ``mfcc0 .. mfcc<n-1>``: the MFCC (DCT of the dB mel spectrogram, :mod:`audioclust.dsp.features`)
    averaged over the STFT frames centred inside the segment.
Scaling
    ``MinMaxScaler(feature_range=(-1, 1))`` per column: every column spans exactly [-1, 1]
    (a constant column becomes -1), so ZCR, RMS and each MFCC weigh alike in the distances.
Clustering
    K-Means (``segments.k``, seeded, 10 restarts) and affinity propagation (chooses its own
    number of clusters; seeded) from :mod:`audioclust.clustering.registry`. Cluster numbers are
    renumbered in order of first appearance in time (cluster 0 holds the first segment),
    so they read naturally along the waveform; affinity propagation that does not converge
    labels every segment ``-1``.

Outputs of :func:`run_segments`, in ``<out_dir>/<file stem>/``: ``segments.csv`` (one row
per segment: position, features, one label column per algorithm), ``scatter`` and
``waveform`` figures (PNG 300 dpi + PDF) and ``<algorithm>/cluster_<k>.wav`` (the recording
with clicks at the onsets of cluster k).

A recording that is silent, shorter than ``segments.n_fft`` or has no onset gives a result
with that ``status`` and a ``reason`` and an empty table (no figures, no clicks), never an error.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import pandas as pd
import scipy.signal
from matplotlib.figure import Figure
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import MinMaxScaler

from audioclust.clustering.metrics import external_scores
from audioclust.clustering.registry import make
from audioclust.core.errors import AudioReadError, ConfigError
from audioclust.core.storage import write_csv
from audioclust.dsp.decode import load_audio, write_wav
from audioclust.dsp.features import mel_power, mfcc, power_db, stft_magnitude
from audioclust.dsp.filters import peak_db, resample, to_mono
from audioclust.report import figures as plots
from audioclust.represent.projection import embed_2d

log = logging.getLogger(__name__)


#: kinds of event in the generated rhythmic example, in the order of their codes
KINDS: tuple[str, ...] = ("kick", "snare", "hihat", "blip")

#: seconds between two events of the rhythmic example (eighth notes at 120 BPM)
EXAMPLE_STEP = 0.25

#: file stem used for the generated example
EXAMPLE_STEM = "rhythm_example"

#: |y| at or below this counts as zero when counting zero crossings (librosa's threshold)
ZERO = 1e-10

#: columns of the segment table before the features
POSITION_COLUMNS = ("segment", "start", "end", "start_s", "end_s", "duration")


# --------------------------------------------------------------------------- the example

def make_rhythm_example(sr: int = 22050, seed: int = 0, seconds: float = 8.0) -> tuple[np.ndarray, int, pd.DataFrame]:
    """A generated drum-machine pattern whose events are of known kinds.

    Every :data:`EXAMPLE_STEP` seconds, from the second step on (a recording's first onset
    needs something before it), one event starts, drawn from a seeded shuffle with equal
    counts of each kind (as equal as the number of events allows; 31 events in 8 s):

    - ``kick``: a sine gliding from 150 to 50 Hz, decay time constant 50 ms;
    - ``snare``: noise band-passed to 1–5 kHz plus a 180 Hz tone, 40 ms;
    - ``hihat``: noise high-passed above 7 kHz, 12 ms;
    - ``blip``: an 880 Hz sine with a 2 ms attack, 60 ms.

    Each event lasts 0.2 s, the last 20 ms faded out (so it has died away before the next one),
    and gets a seeded gain in [0.8, 1]; the sum is scaled to a peak of 0.8.

    Parameters
    ----------
    sr : sample rate in Hz.
    seed : seeds the pattern, the gains and the noise.
    seconds : length of the recording.

    Returns
    -------
    y : ndarray of shape (round(seconds * sr),), float32
    sr : int
    events : DataFrame with one row per event: ``time`` (s), ``sample`` (its first sample)
        and ``kind`` (one of :data:`KINDS`).
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    # one step of silence first: an event at sample 0 has no onset (the envelope measures a rise)
    n_events = int(seconds / EXAMPLE_STEP) - 1
    codes = rng.permutation(np.resize(np.arange(len(KINDS)), n_events))
    length = int(0.2 * sr)
    t = np.arange(length) / sr
    fade = np.minimum(1.0, (length - np.arange(length)) / (0.02 * sr))  # no click where an event is cut off
    high = scipy.signal.butter(4, min(7000.0, 0.45 * sr), btype="high", fs=sr, output="sos")
    band = scipy.signal.butter(2, [1000.0, min(5000.0, 0.45 * sr)], btype="band", fs=sr, output="sos")
    y = np.zeros(n, dtype=np.float64)
    starts = np.round(np.arange(1, n_events + 1) * EXAMPLE_STEP * sr).astype(np.int64)
    for start, code in zip(starts, codes):
        kind = KINDS[code]
        if kind == "kick":
            phase = 2 * np.pi * np.cumsum(50.0 + 100.0 * np.exp(-t / 0.03)) / sr
            x = np.sin(phase) * np.exp(-t / 0.05)
        elif kind == "snare":
            noise = scipy.signal.sosfilt(band, rng.standard_normal(length))
            x = (noise / np.abs(noise).max() + 0.3 * np.sin(2 * np.pi * 180.0 * t)) * np.exp(-t / 0.04)
        elif kind == "hihat":
            noise = scipy.signal.sosfilt(high, rng.standard_normal(length))
            x = noise / np.abs(noise).max() * np.exp(-t / 0.012)
        else:
            x = np.sin(2 * np.pi * 880.0 * t) * np.exp(-t / 0.06) * np.minimum(1.0, t / 0.002)
        stop = min(start + length, n)
        y[start:stop] += (rng.uniform(0.8, 1.0) * fade * x)[: stop - start]
    y *= 0.8 / np.abs(y).max()
    events = pd.DataFrame({"time": starts / sr, "sample": starts, "kind": [KINDS[c] for c in codes]})
    return y.astype(np.float32), sr, events


def match_events(onsets: np.ndarray, events: pd.DataFrame, tolerance: int) -> np.ndarray:
    """The kind of the event each onset belongs to (for scoring against a known truth).

    Parameters
    ----------
    onsets : ndarray of shape (n_onsets,)
        Onsets in samples.
    events : DataFrame with ``sample`` and ``kind`` (as :func:`make_rhythm_example` returns).
    tolerance : int
        Largest distance in samples between an onset and its event's first sample.

    Returns
    -------
    ndarray of shape (n_onsets,), object: the nearest event's kind, ``""`` when none is near.
    """
    onsets = np.asarray(onsets, dtype=np.int64)
    if not len(onsets) or not len(events):
        return np.full(len(onsets), "", dtype=object)
    samples = events["sample"].to_numpy(dtype=np.int64)
    distance = np.abs(onsets[:, None] - samples[None, :])
    nearest = distance.argmin(axis=1)
    kinds = events["kind"].to_numpy(dtype=object)[nearest]
    return np.where(distance[np.arange(len(onsets)), nearest] <= tolerance, kinds, "").astype(object)


# --------------------------------------------------------------------------- steps

def detect_onsets(y: np.ndarray, sr: int, *, hop_length: int, backtrack: bool = True, delta: float = 0.07,
                  wait: float = 0.03) -> np.ndarray:
    """Onsets of a mono signal, in samples.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
    sr : sample rate in Hz.
    hop_length : hop of the onset envelope in samples (the precision of the onsets).
    backtrack : move each onset back to the preceding minimum of the frame energy.
    delta : peak-picking threshold above the local mean of the normalised envelope.
    wait : shortest time between two onsets, in seconds.

    Returns
    -------
    ndarray of shape (n_onsets,), int64, increasing (multiples of ``hop_length``).
    """
    # energy in frames of one hop, centred like the envelope's frames: its minimum before an
    # onset is the last frame without the event (backtracking on the envelope itself lands
    # up to 2.5 hops early: its 2048-sample frames feel an event half a window before it starts)
    energy = librosa.feature.rms(y=y, frame_length=hop_length, hop_length=hop_length)[0] if backtrack else None
    frames = librosa.onset.onset_detect(y=y, sr=sr, hop_length=hop_length, backtrack=backtrack, energy=energy,
                                        units="frames", delta=delta, wait=int(round(wait * sr / hop_length)))
    return np.unique(librosa.frames_to_samples(frames=frames, hop_length=hop_length)).astype(np.int64)


def segment_bounds(onsets: np.ndarray, n_samples: int, sr: int, length: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last sample of each segment.

    Parameters
    ----------
    onsets : ndarray of shape (n_segments,), increasing, in samples.
    n_samples : length of the recording.
    sr : sample rate in Hz.
    length : None: each segment ends at the next onset (the last at the end); seconds: each
        segment is this long (cut at the end of the recording; segments may overlap).

    Returns
    -------
    starts, ends : ndarrays of shape (n_segments,), int64, ``starts < ends``.
    """
    starts = np.asarray(onsets, dtype=np.int64)
    if length is None:
        ends = np.append(starts[1:], n_samples) if len(starts) else starts.copy()
    else:
        ends = np.minimum(starts + max(1, int(round(length * sr))), n_samples)
    return starts, ends.astype(np.int64)


def feature_names(n_mfcc: int) -> list[str]:
    """Names of the feature columns: ``zcr, rms, mfcc0 .. mfcc<n_mfcc-1>``."""
    return ["zcr", "rms", *(f"mfcc{i}" for i in range(n_mfcc))]


def segment_features(y: np.ndarray, sr: int, starts: np.ndarray, ends: np.ndarray, *, n_fft: int,
                     hop_length: int, n_mels: int, n_mfcc: int) -> pd.DataFrame:
    """Zero-crossing rate, RMS and mean MFCC of each segment, from one STFT of the recording.

    Parameters
    ----------
    y : ndarray of shape (n_samples,), ``n_samples >= n_fft``.
    sr : sample rate in Hz.
    starts, ends : ndarrays of shape (n_segments,): sample ranges ``[start, end)``.
    n_fft, hop_length, n_mels, n_mfcc : STFT, mel and MFCC sizes.

    Returns
    -------
    DataFrame of shape (n_segments, 2 + n_mfcc), columns :func:`feature_names`, float64.
    """
    y64 = np.asarray(y, dtype=np.float64)
    # cumulative sums answer every segment in O(1): crossings between samples start..end-1, energy
    negative = np.signbit(np.where(np.abs(y64) <= ZERO, 0.0, y64))
    crossings = np.concatenate(([0], np.cumsum(negative[1:] != negative[:-1])))
    energy = np.concatenate(([0.0], np.cumsum(y64 ** 2)))
    size = ends - starts
    zcr = (crossings[ends - 1] - crossings[starts]) / size
    rms = np.sqrt((energy[ends] - energy[starts]) / size)

    magnitude = stft_magnitude(y, n_fft=n_fft, hop_length=hop_length)
    mel_db = power_db(mel_power(magnitude ** 2, sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sr / 2))
    coefficients = mfcc(mel_db, n_mfcc=n_mfcc).astype(np.float64)
    n_frames = coefficients.shape[1]
    # frames whose centre (frame * hop) lies in [start, end); a segment shorter than a hop
    # takes the frame nearest to its middle
    first = np.minimum(-(-starts // hop_length), n_frames - 1)
    last = np.minimum(-(-ends // hop_length), n_frames)
    middle = np.minimum(np.round((starts + ends) / 2 / hop_length).astype(np.int64), n_frames - 1)
    first, last = np.where(last > first, first, middle), np.where(last > first, last, middle + 1)
    cumulative = np.concatenate((np.zeros((n_mfcc, 1)), np.cumsum(coefficients, axis=1)), axis=1)
    means = (cumulative[:, last] - cumulative[:, first]) / (last - first)
    return pd.DataFrame(np.column_stack([zcr, rms, means.T]), columns=feature_names(n_mfcc))


def scale_features(features: np.ndarray | pd.DataFrame) -> np.ndarray:
    """Map every column linearly onto [-1, 1] (``MinMaxScaler(feature_range=(-1, 1))``).

    Parameters
    ----------
    features : array-like of shape (n_segments, n_features)

    Returns
    -------
    ndarray of shape (n_segments, n_features), float32; each column's minimum is -1 and its
    maximum 1 (a constant column is -1 throughout).
    """
    scaled = MinMaxScaler(feature_range=(-1, 1)).fit_transform(np.asarray(features, dtype=np.float64))
    # the affine map lands within an ulp of ±1 at the extremes: clip so they are exact
    return np.clip(scaled, -1.0, 1.0).astype(np.float32)


def _first_appearance(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0, 1, ... in order of first appearance; -1 (not assigned) stays -1."""
    labels = np.asarray(labels)
    order = pd.unique(labels[labels != -1])
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping.get(v, -1) for v in labels], dtype=np.int64)


def cluster_matrix(X: np.ndarray, algorithms: list[str], k: int, seed: int, ap_damping: float = 0.9
                   ) -> dict[str, np.ndarray]:
    """Cluster the scaled segment matrix with each algorithm.

    Parameters
    ----------
    X : ndarray of shape (n_segments, n_features), n_segments >= 2.
    algorithms : ``kmeans`` and/or ``affinity_propagation``.
    k : K-Means clusters (lowered to n_segments when there are fewer segments).
    seed : ``random_state`` of both.
    ap_damping : affinity propagation damping.

    Returns
    -------
    dict algorithm -> ndarray of shape (n_segments,), int64, renumbered by first appearance.
    """
    out: dict[str, np.ndarray] = {}
    for name in algorithms:
        if name == "kmeans":
            if k > len(X):
                log.warning("only %d segments: K-Means with k = %d instead of %d", len(X), len(X), k)
            estimator = make("kmeans", n_clusters=min(k, len(X)), random_state=seed)
        elif name == "affinity_propagation":
            estimator = make("affinity_propagation", random_state=seed, damping=ap_damping)
        else:
            raise ConfigError(f"unknown segment clusterer {name!r}; allowed: kmeans, affinity_propagation")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            labels = estimator.fit_predict(X)
        for w in caught:
            log.warning("%s: %s", name, w.message)
        out[name] = _first_appearance(labels)
    return out


# --------------------------------------------------------------------------- one recording

@dataclass
class SegmentResult:
    """Segments of one recording and their clusters.

    Attributes
    ----------
    status : ``ok`` | ``silent`` | ``too_short`` | ``no_onsets`` | ``too_few_segments`` | ``error``
    reason : empty when ok; otherwise what happened and what to do.
    sr : sample rate of the analysed signal.
    n_samples : its length.
    onsets : ndarray of shape (n_segments,), int64, in samples.
    table : DataFrame, one row per segment: :data:`POSITION_COLUMNS` (samples and seconds),
        the raw features (:func:`feature_names`) and one label column per algorithm.
    X : ndarray of shape (n_segments, n_features), float32: the features scaled to [-1, 1].
    features : the feature column names (the columns of ``X``).
    labels : dict algorithm -> ndarray of shape (n_segments,), int64.
    """

    status: str
    reason: str
    sr: int
    n_samples: int
    onsets: np.ndarray
    table: pd.DataFrame
    X: np.ndarray
    features: list[str]
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def onset_times(self) -> np.ndarray:
        """Onsets in seconds: ndarray of shape (n_segments,)."""
        return self.onsets / self.sr


def _result(status: str, reason: str, y: np.ndarray, sr: int, cfg: Any,
            onsets: np.ndarray | None = None) -> SegmentResult:
    """A result without clusters: the segments found (if any), no features, no labels."""
    names = feature_names(cfg.n_mfcc)
    onsets = np.zeros(0, dtype=np.int64) if onsets is None else onsets
    table = _positions(*segment_bounds(onsets, len(y), sr, cfg.length), sr)
    table = table.reindex(columns=[*POSITION_COLUMNS, *names, *cfg.algorithms])
    if status != "ok":
        log.warning("segments: %s (%s)", status, reason)
    return SegmentResult(status, reason, sr, len(y), onsets, table, np.zeros((0, len(names)), np.float32), names)


def _positions(starts: np.ndarray, ends: np.ndarray, sr: int) -> pd.DataFrame:
    return pd.DataFrame({"segment": np.arange(len(starts)), "start": starts, "end": ends,
                         "start_s": starts / sr, "end_s": ends / sr, "duration": (ends - starts) / sr})


def cluster_segments(y: np.ndarray, sr: int, cfg: Any, seed: int = 0) -> SegmentResult:
    """Detect the events of one recording, describe each and cluster them.

    Parameters
    ----------
    y : ndarray of shape (n_samples,) (or (channels, n_samples): mixed to mono).
    sr : sample rate in Hz.
    cfg : the segment settings (the ``segments`` config section).
    seed : ``random_state`` of the clusterers.

    Returns
    -------
    SegmentResult
        ``status`` ``ok`` with every segment clustered, or ``silent`` / ``too_short`` /
        ``no_onsets`` / ``too_few_segments`` (fewer than 2) with a ``reason`` and no labels.
    """
    y = to_mono(y)
    if len(y) < cfg.n_fft:
        return _result("too_short", f"{len(y)} samples ({len(y) / sr:.3f} s) is shorter than segments.n_fft "
                       f"({cfg.n_fft}): give a longer recording or a smaller segments.n_fft", y, sr, cfg)
    level = peak_db(y)
    if level < cfg.silence_db:
        return _result("silent", f"peak level {level:.1f} dBFS is below segments.silence_db ({cfg.silence_db:g} "
                       "dBFS): nothing to segment; lower segments.silence_db for a very quiet recording", y, sr, cfg)
    onsets = detect_onsets(y, sr, hop_length=cfg.hop_length, backtrack=cfg.backtrack, delta=cfg.delta, wait=cfg.wait)
    if not len(onsets):
        return _result("no_onsets", "no onset found (a steady sound has no events): lower segments.delta "
                       "to detect weaker onsets", y, sr, cfg)
    if len(onsets) < 2:
        return _result("too_few_segments", f"{len(onsets)} onset found: at least 2 segments are needed to "
                       "cluster; lower segments.delta to detect weaker onsets", y, sr, cfg, onsets)
    starts, ends = segment_bounds(onsets, len(y), sr, cfg.length)
    raw = segment_features(y, sr, starts, ends, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
                           n_mfcc=cfg.n_mfcc)
    X = scale_features(raw)
    labels = cluster_matrix(X, cfg.algorithms, cfg.k, seed, cfg.ap_damping)
    table = pd.concat([_positions(starts, ends, sr), raw, pd.DataFrame(labels)], axis=1)
    log.info("segments: %d onsets, clusters %s", len(onsets),
             ", ".join(f"{name} {len(set(v) - {-1})}" for name, v in labels.items()))
    return SegmentResult("ok", "", sr, len(y), onsets, table, X, list(raw.columns), labels)


def kind_scores(result: SegmentResult, kinds: np.ndarray) -> pd.DataFrame:
    """External scores of each algorithm against known kinds (segments with a kind only).

    Parameters
    ----------
    result : an ``ok`` :class:`SegmentResult`.
    kinds : ndarray of shape (n_segments,): the true kind of each segment, ``""`` when unknown
        (:func:`match_events`).

    Returns
    -------
    DataFrame, one row per algorithm: ``algorithm, n_clusters, n_scored`` and the scores of
    :func:`audioclust.clustering.metrics.external_scores`.
    """
    kinds = np.asarray(kinds, dtype=object)
    known = kinds != ""
    rows = []
    for name, labels in result.labels.items():
        row: dict[str, Any] = {"algorithm": name, "n_clusters": len(set(labels.tolist()) - {-1}),
                               "n_scored": int(known.sum())}
        if known.any():
            row.update(external_scores(kinds[known], labels[known]))
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- clicks

def click_mix(y: np.ndarray, sr: int, onsets: np.ndarray, *, click_freq: float = 1000.0,
              click_duration: float = 0.1, gain: float = 0.5) -> np.ndarray:
    """The recording with a click at each onset.

    ``mix = y + gain * librosa.clicks(...)``, scaled by ``1 / max|mix|`` only when that
    peak exceeds 1 (so the file plays without clipping). Each click is a ``click_freq`` sine
    decaying exponentially over ``click_duration`` seconds, starting exactly at its onset.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
    sr : sample rate in Hz.
    onsets : ndarray of shape (n_clicks,), in samples.

    Returns
    -------
    ndarray of shape (n_samples,), float32
    """
    # frames with a hop of one sample place each click on its exact sample
    clicks = librosa.clicks(frames=np.asarray(onsets, dtype=np.int64), sr=sr, hop_length=1, click_freq=click_freq,
                            click_duration=click_duration, length=len(y))
    mix = np.asarray(y, dtype=np.float64) + gain * clicks
    peak = np.abs(mix).max() if len(mix) else 0.0
    return (mix / peak if peak > 1.0 else mix).astype(np.float32)


def write_clicks(y: np.ndarray, result: SegmentResult, folder: str | Path, cfg: Any
                 ) -> dict[str, dict[int, Path]]:
    """One WAV per algorithm and cluster: ``<folder>/<algorithm>/cluster_<k>.wav`` (:func:`click_mix`).

    Parameters
    ----------
    y : ndarray of shape (n_samples,): the analysed recording.
    result : its :class:`SegmentResult`.
    folder : output folder.
    cfg : the ``segments`` section (click pitch, length and gain).

    Returns
    -------
    dict algorithm -> {cluster: path}; cluster ``-1`` (not assigned) is written as ``cluster_-1.wav``.
    """
    out: dict[str, dict[int, Path]] = {}
    for name, labels in result.labels.items():
        out[name] = {}
        for cluster in sorted(set(labels.tolist())):
            path = Path(folder) / name / f"cluster_{cluster}.wav"
            mix = click_mix(y, result.sr, result.onsets[labels == cluster], click_freq=cfg.click_freq,
                            click_duration=cfg.click_duration, gain=cfg.click_gain)
            write_wav(path, mix, sr=result.sr)
            out[name][cluster] = path
    return out


# --------------------------------------------------------------------------- figures

def _scatter_axes(result: SegmentResult, columns: list[str]) -> tuple[np.ndarray, str, str]:
    """2-D coordinates of the segments: two scaled feature columns, or the first two PCA components."""
    if columns:
        unknown = [c for c in columns if c not in result.features]
        if unknown:
            raise ConfigError(f"segments.scatter names {unknown[0]!r}, which is not a segment feature; "
                              f"choose two of: {', '.join(result.features)}")
        idx = [result.features.index(c) for c in columns]
        return result.X[:, idx], f"{columns[0]} (scaled)", f"{columns[1]} (scaled)"
    Y = embed_2d(result.X, "pca")
    total = float(np.var(result.X, axis=0).sum()) or 1.0
    share = np.var(Y.astype(np.float64), axis=0) / total  # a component's variance share: PCA's explained ratio
    return Y, f"PC 1 ({100 * share[0]:.0f} %)", f"PC 2 ({100 * share[1]:.0f} %)"


def _cluster_colour(cluster: int) -> dict[str, str]:
    return {"color": "#999999", "marker": "x"} if cluster == -1 else plots.category_style(cluster)


@plots.styled
def scatter_figure(result: SegmentResult, columns: list[str] | None = None, title: str = "") -> Figure:
    """The segments in 2-D, one panel per algorithm, coloured (and shaped) by cluster.

    Parameters
    ----------
    result : an ``ok`` :class:`SegmentResult`.
    columns : two feature names (scaled values on the axes), or None / [] for PCA 2-D.
    """
    Y, xlabel, ylabel = _scatter_axes(result, list(columns or []))
    fig, axes = plots.new_figure(1, len(result.labels), width=min(plots.PAGE_WIDTH, 3.4 * len(result.labels)),
                                 height=3.0)
    for ax, (name, labels) in zip(axes[0], result.labels.items()):
        for cluster in sorted(set(labels.tolist())):
            mask = labels == cluster
            ax.scatter(Y[mask, 0], Y[mask, 1], s=18, alpha=0.85, linewidths=0.3, edgecolors="black",
                       label="not assigned" if cluster == -1 else f"cluster {cluster}", **_cluster_colour(cluster))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{name.replace('_', ' ')} ({len(set(labels.tolist()) - {-1})} clusters)")
        ax.legend(loc="best", markerscale=1.2, handletextpad=0.2)
    if title:
        fig.suptitle(title)
    return fig


def _envelope(y: np.ndarray, sr: int, columns: int = 4000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min and max of ``y`` in ``columns`` equal blocks: the waveform drawn at screen resolution."""
    block = max(1, int(np.ceil(len(y) / columns)))
    padded = np.pad(y, (0, (-len(y)) % block), mode="edge").reshape(-1, block)
    t = (np.arange(len(padded)) * block + block / 2) / sr
    return t, padded.min(axis=1), padded.max(axis=1)


@plots.styled
def waveform_figure(y: np.ndarray, result: SegmentResult, title: str = "") -> Figure:
    """The waveform with each onset drawn as a vertical line in its cluster's colour, one row per algorithm.

    Parameters
    ----------
    y : ndarray of shape (n_samples,): the analysed recording.
    result : its :class:`SegmentResult` (``ok``).
    """
    t, low, high = _envelope(np.asarray(y, dtype=np.float32), result.sr)
    fig, axes = plots.new_figure(len(result.labels), 1, width=plots.PAGE_WIDTH, height=1.9 * len(result.labels))
    for ax, (name, labels) in zip(axes[:, 0], result.labels.items()):
        ax.fill_between(t, low, high, color="#bbbbbb", linewidth=0, rasterized=True)
        for cluster in sorted(set(labels.tolist())):
            times = result.onset_times[labels == cluster]
            ax.vlines(times, -1.0, 1.0, color=_cluster_colour(cluster)["color"], linewidth=1.0,
                      label="not assigned" if cluster == -1 else f"cluster {cluster}")
        ax.set_xlim(0, result.n_samples / result.sr)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel("amplitude")
        ax.set_title(name.replace("_", " "), loc="left")
        ax.grid(False)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), handlelength=1.0)
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- runner

def load_recording(path: str | Path, sr: int) -> np.ndarray:
    """Decode ``path``, mix to mono and resample to ``sr``: ndarray of shape (n_samples,), float32.

    Raises
    ------
    AudioReadError
        When the file cannot be decoded.
    """
    y, file_sr = load_audio(path)
    return resample(to_mono(y), orig_sr=file_sr, target_sr=sr)


def run_segments(path: str | Path | None, out_dir: str | Path, settings: Any, *, sample_rate: int, seed: int = 0
                 ) -> tuple[SegmentResult, dict[str, Any]]:
    """Segment, cluster and write everything for one recording.

    Parameters
    ----------
    path : an audio file (decoded, mixed to mono, resampled to ``audio.sample_rate``), or None
        for the generated rhythmic example (:func:`make_rhythm_example`, ``segments.example_seconds``).
    out_dir : e.g. ``results/<name>/segments``; files go to ``<out_dir>/<file stem>/``
        (``rhythm_example`` for the generated one).
    settings : the segment settings (the ``segments`` config section: onsets, features, clusterers, clicks).
    sample_rate : Hz the recording is resampled to (``audio.sample_rate``).
    seed : seed of the example and the clusterers.

    Returns
    -------
    result : :class:`SegmentResult`; for the generated example its table has a ``true_kind``
        column (the kind of the event within one and a half hops of each onset).
    files : dict with ``folder``, ``y`` (the analysed signal, for listening), ``events`` (the
        generated events, or None), ``table`` (``segments.csv``), ``scatter`` and ``waveform``
        ([png, pdf]), ``clicks`` (algorithm -> {cluster: wav}); figures and clicks are absent
        when the status is not ok.
    """
    sg = settings
    sr = sample_rate
    events = None
    if path is None:
        y, sr, events = make_rhythm_example(sr=sr, seed=seed, seconds=sg.example_seconds)
        stem = EXAMPLE_STEM
        result = cluster_segments(y, sr, sg, seed)
    else:
        stem = Path(path).stem
        try:
            y = load_recording(path, sr)
        except AudioReadError as exc:
            y = np.zeros(0, dtype=np.float32)
            result = _result("error", str(exc), y, sr, sg)
        else:
            result = cluster_segments(y, sr, sg, seed)
    if events is not None:
        result.table["true_kind"] = match_events(result.onsets, events, tolerance=int(1.5 * sg.hop_length))
    folder = Path(out_dir) / stem
    files: dict[str, Any] = {"folder": folder, "y": y, "events": events, "table": folder / "segments.csv"}
    write_csv(files["table"], result.table)
    if result.status == "ok":
        files["scatter"] = plots.save_figure(scatter_figure(result, sg.scatter, title=stem), folder / "scatter")
        files["waveform"] = plots.save_figure(waveform_figure(y, result, title=stem), folder / "waveform")
        files["clicks"] = write_clicks(y, result, folder, sg)
    log.info("segments of %s: %s, %d segments -> %s", stem, result.status, len(result.table), folder)
    return result, files
