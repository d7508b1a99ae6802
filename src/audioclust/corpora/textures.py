"""Synthetic environmental textures: eight audibly distinct classes, several with overlapping average spectra.

Most classes are shaped noise or sparse transients, so their average spectra overlap: rain,
wind and a stream are all broadband noise (told apart by droplet clicks, slow gusts and
bubbling chirps), fire and typing are both clicks (random crackle over a rumble against the
regular press-and-release of keys), and engine, birdsong and siren are tonal (a low harmonic
series, fast high chirps, a swept tone). Every file draws its own duration (2–5 s),
parameters within its class, background noise floor (20–45 dB below the sound) and level
(-32 to -18 dBFS RMS, peak at most -1 dBFS). Label set: ``class`` (the folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from scipy import signal

from audioclust.corpora import SR, Clip, Summary, check_size, clip_rng, write_corpus

#: Bumped when the synthesis changes, so a re-run renders every file again.
VERSION = 1

#: Files per class for each size.
SIZES = {"tiny": 2, "small": 15, "bench": 60}

#: Highest peak of a file.
MAX_PEAK = 10 ** (-1 / 20)

Texture = Callable[..., np.ndarray]  # texture(rng, *, n) -> n samples


# --------------------------------------------------------------------------- building blocks

def _band(x: np.ndarray, *, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """``x`` through a 2nd-order Butterworth band-pass, or a low-/high-pass when one edge is None."""
    if lo and hi:
        sos = signal.butter(2, [lo, hi], btype="bandpass", fs=SR, output="sos")
    elif hi:
        sos = signal.butter(2, hi, btype="lowpass", fs=SR, output="sos")
    else:
        sos = signal.butter(2, lo, btype="highpass", fs=SR, output="sos")
    return signal.sosfilt(sos, x)


def _pink(rng: np.random.Generator, *, n: int) -> np.ndarray:
    """Pink (1/f power) noise of unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    spectrum[0] = 0.0
    y = np.fft.irfft(spectrum, n=n)
    return y / _rms(y)


def _wander(rng: np.random.Generator, *, n: int, rate: float) -> np.ndarray:
    """A slow random curve in [0, 1]: random knots ``rate`` times per second, joined smoothly."""
    knots = rng.uniform(0.0, 1.0, int(n / SR * rate) + 3)
    pos = np.arange(n) / SR * rate
    i = pos.astype(int)
    frac = pos - i
    return knots[i] + (knots[i + 1] - knots[i]) * frac * frac * (3 - 2 * frac)


def _times(rng: np.random.Generator, *, n: int, rate: float, at_least: int = 0) -> np.ndarray:
    """Poisson event times (s) at ``rate`` per second within ``n`` samples; ``at_least`` of them."""
    count = max(at_least, rng.poisson(rate * n / SR))
    return np.sort(rng.uniform(0.0, n / SR, count))


def _add(y: np.ndarray, grain: np.ndarray, *, at: float) -> None:
    """Add ``grain`` into ``y`` from ``at`` seconds on (cut at the end)."""
    i = int(at * SR)
    if i < len(y):
        m = min(len(grain), len(y) - i)
        y[i:i + m] += grain[:m]


def _damped(freq: float, *, tau: float, glide: float = 0.0) -> np.ndarray:
    """A sine of ``freq`` Hz decaying with time constant ``tau`` s, its frequency rising by ``glide`` per s."""
    t = np.arange(int(5 * tau * SR) + 1) / SR
    phase = 2 * np.pi * freq * (t + glide * t * t / 2)
    return np.sin(phase) * np.exp(-t / tau)


def _burst(rng: np.random.Generator, *, seconds: float) -> np.ndarray:
    """White noise decaying to -40 dB over ``seconds``."""
    m = max(2, int(seconds * SR))
    return rng.standard_normal(m) * np.exp(-np.arange(m) / m * 4.6)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2))) + 1e-12


def _mix(a: np.ndarray, b: np.ndarray, *, db: float) -> np.ndarray:
    """``a`` at unit RMS plus ``b`` at ``db`` relative to it."""
    return a / _rms(a) + b / _rms(b) * 10 ** (db / 20)


# --------------------------------------------------------------------------- the classes

def rain(rng: np.random.Generator, *, n: int) -> np.ndarray:
    """Band-limited hiss, slowly swelling, with droplets: short damped sines at random times."""
    hiss = _band(_pink(rng, n=n) + 0.5 * rng.standard_normal(n), lo=rng.uniform(300, 1500), hi=rng.uniform(4000, 9000))
    hiss *= 0.6 + 0.4 * _wander(rng, n=n, rate=rng.uniform(0.2, 0.8))
    drops = np.zeros(n)
    for at in _times(rng, n=n, rate=rng.uniform(15, 90), at_least=1):
        freq = rng.uniform(1200, 6000) if rng.random() < 0.8 else rng.uniform(300, 1200)
        _add(drops, rng.lognormal(0.0, 0.6) * _damped(freq, tau=rng.uniform(0.002, 0.010)), at=at)
    return _mix(hiss, drops, db=rng.uniform(-8, 4))


def wind(rng: np.random.Generator, *, n: int) -> np.ndarray:
    """Low-passed noise whose cut-off and level follow slow gusts, with a faint moving howl."""
    f, _, spec = signal.stft(rng.standard_normal(n), fs=SR, nperseg=1024)
    frames = spec.shape[1]
    gust = _wander(rng, n=frames * 512, rate=rng.uniform(0.1, 0.5))[::512][:frames]  # one value per STFT hop
    cutoff = rng.uniform(150, 500) * 2 ** (gust * rng.uniform(1.0, 2.5))
    shape = 1 / np.sqrt(1 + (f[:, None] / cutoff[None, :]) ** 4)
    howl_f = rng.uniform(300, 900) * (1 + 0.3 * gust)
    howl = rng.uniform(0.0, 0.6) * np.exp(-0.5 * ((f[:, None] - howl_f[None, :]) / rng.uniform(20, 60)) ** 2)
    _, y = signal.istft(spec * (shape + howl) * (0.15 + gust[None, :] ** 1.5), fs=SR, nperseg=1024)
    return np.pad(y, (0, max(0, n - len(y))))[:n]


def stream(rng: np.random.Generator, *, n: int) -> np.ndarray:
    """Running water: many small bubbles (damped sines gliding upwards) over a gurgling noise band."""
    bubbles = np.zeros(n)
    for at in _times(rng, n=n, rate=rng.uniform(60, 250), at_least=1):
        bubble = _damped(rng.uniform(400, 2500), tau=rng.uniform(0.004, 0.02), glide=rng.uniform(5, 40))
        _add(bubbles, rng.lognormal(0.0, 0.5) * bubble, at=at)
    gurgle = _band(rng.standard_normal(n), lo=rng.uniform(200, 500), hi=rng.uniform(2000, 4000))
    gurgle *= 0.5 + 0.5 * _wander(rng, n=n, rate=rng.uniform(2, 8))
    return _mix(bubbles, gurgle, db=rng.uniform(-12, 0))


def fire(rng: np.random.Generator, *, n: int) -> np.ndarray:
    """Crackling fire: clustered sharp pops over a low rumble and a soft hiss."""
    rumble = _band(rng.standard_normal(n), hi=rng.uniform(80, 250))
    rumble *= 0.4 + 0.6 * _wander(rng, n=n, rate=rng.uniform(0.5, 2.0))
    hiss = _band(rng.standard_normal(n), lo=rng.uniform(1500, 3000)) * _wander(rng, n=n, rate=1.0)
    crackle = np.zeros(n)
    for start in _times(rng, n=n, rate=rng.uniform(2, 10), at_least=1):
        for offset in np.cumsum(rng.exponential(0.012, rng.integers(1, 7))):
            pop = min(0.2 + rng.pareto(3.0), 4.0) * _burst(rng, seconds=rng.uniform(0.0005, 0.004))
            _add(crackle, pop, at=start + offset)
    crackle = _band(crackle, lo=rng.uniform(500, 1500))
    return _mix(crackle, _mix(rumble, hiss, db=rng.uniform(-20, -8)), db=rng.uniform(-10, 0))


def engine(rng: np.random.Generator, *, n: int) -> np.ndarray:
    """Engine hum: a harmonic series on a 30–80 Hz fundamental that drifts and jitters, plus some noise."""
    t = np.arange(n) / SR
    drift = _wander(rng, n=n, rate=rng.uniform(0.2, 1.0)) - 0.5
    jitter = _band(rng.standard_normal(n), hi=20)
    f0 = rng.uniform(30, 80) * (1 + rng.uniform(0.01, 0.06) * drift) * (1 + 0.004 * jitter / _rms(jitter))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    resonance, width = rng.uniform(150, 900), rng.uniform(100, 500)
    y = np.zeros(n)
    for k in range(1, int(rng.uniform(2000, 5000) / f0.max()) + 1):
        gain = k ** -rng.uniform(0.5, 1.2) * (1 + 3 * np.exp(-0.5 * ((k * f0[0] - resonance) / width) ** 2))
        y += rng.uniform(0.4, 1.0) * gain * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    firing = 1 + rng.uniform(0.0, 0.5) * np.sin(phase / 2 + 2 * np.pi * rng.random())
    swell = 0.8 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t)
    noise = _band(rng.standard_normal(n), hi=rng.uniform(300, 1500))
    return _mix(y * firing * swell, noise, db=rng.uniform(-25, -8))


def birdsong(rng: np.random.Generator, *, n: int) -> np.ndarray:
    """Phrases of fast high chirps (FM sweeps and trills) at random times over faint noise."""
    song = np.zeros(n)
    f_lo, f_hi = rng.uniform(1800, 3500), rng.uniform(4000, 7500)
    for at in _times(rng, n=n, rate=rng.uniform(0.6, 2.5), at_least=1):
        for _ in range(rng.integers(2, 9)):
            length = rng.uniform(0.03, 0.2)
            t = np.arange(int(length * SR)) / SR
            f_a, f_b = rng.uniform(f_lo, f_hi, 2)
            trill = rng.uniform(0, 600) * np.sin(2 * np.pi * rng.uniform(15, 60) * t)
            phase = 2 * np.pi * np.cumsum(f_a + (f_b - f_a) * t / length + trill) / SR
            chirp = (np.sin(phase) + rng.uniform(0.05, 0.3) * np.sin(2 * phase)) * np.hanning(len(t))
            _add(song, rng.uniform(0.3, 1.0) * chirp, at=at)
            at += length + rng.uniform(0.01, 0.08)
    return _mix(song, _band(rng.standard_normal(n), lo=200, hi=6000), db=rng.uniform(-30, -15))


def siren(rng: np.random.Generator, *, n: int) -> np.ndarray:
    """A siren: a few harmonics of a tone swept slowly up and down (wail) or fast (yelp), coming or going."""
    t = np.arange(n) / SR
    rate = rng.uniform(0.15, 0.6) if rng.random() < 0.6 else rng.uniform(2.0, 5.0)
    sweep = signal.sawtooth(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi), width=rng.uniform(0.5, 0.9))
    phase = 2 * np.pi * np.cumsum(rng.uniform(500, 1100) + rng.uniform(150, 450) * sweep) / SR
    y = sum(k ** -rng.uniform(0.8, 2.0) * np.sin(k * phase) for k in range(1, 6))
    distance = 10 ** (rng.uniform(-1, 1) * t / t[-1] * rng.uniform(0, 10) / 20)  # up to ±10 dB over the file
    return _band(y * distance, hi=rng.uniform(2500, 6000))


def typing(rng: np.random.Generator, *, n: int) -> np.ndarray:
    """Keyboard typing: presses and softer releases at irregular intervals, now and then a pause or a space bar."""
    y = np.zeros(n)
    click_f, body_f = rng.uniform(1500, 5000), rng.uniform(250, 900)
    at = rng.uniform(0.0, 0.3)
    while at < n / SR:
        space = rng.random() < 0.15
        gain = rng.uniform(0.5, 1.0) * (1.6 if space else 1.0)
        click = _band(_burst(rng, seconds=rng.uniform(0.002, 0.006)), lo=click_f * 0.6, hi=min(click_f * 1.6, 10000))
        click /= np.abs(click).max() + 1e-12
        body = _damped(body_f * (0.6 if space else rng.uniform(0.9, 1.1)), tau=rng.uniform(0.004, 0.015))
        _add(y, gain * click, at=at)
        _add(y, 0.5 * gain * body, at=at)
        _add(y, rng.uniform(0.2, 0.5) * gain * click, at=at + rng.uniform(0.04, 0.12))  # the key's release
        at += rng.gamma(2.0, rng.uniform(0.05, 0.12)) + (rng.uniform(0.3, 1.0) if rng.random() < 0.08 else 0.0)
    return y


#: The classes, in folder order.
CLASSES: dict[str, Texture] = {f.__name__: f for f in (rain, wind, stream, fire, engine, birdsong, siren, typing)}


# --------------------------------------------------------------------------- corpus

def plan(size: str, *, seed: int = 0) -> list[Clip]:
    """The files of ``size``: :data:`SIZES` ``[size]`` files per class.

    Parameters
    ----------
    size : ``tiny``, ``small`` or ``bench``.
    seed : with the class and index, draws everything in a file.
    """
    check_size(size)
    return [Clip(rel=f"{name}/{name}_{i:03d}.wav", labels={"class": name},
                 params={"version": VERSION, "class": name, "index": i, "seed": seed})
            for name in CLASSES for i in range(SIZES[size])]


def generate(dest: str | Path, *, size: str = "tiny", seed: int = 0, n_jobs: int = -1) -> Summary:
    """Synthesise the textures of ``size`` into ``dest/<class>/`` and write the label CSVs beside it.

    Parameters
    ----------
    dest : the corpus folder (new, or written by this generator before).
    size : ``tiny`` (16 files), ``small`` (120) or ``bench`` (480).
    seed : the same seed gives byte-identical files.
    n_jobs : worker processes (-1: every core).

    Raises
    ------
    DatasetError
        ``dest`` is somebody else's folder.
    """
    check_size(size)
    return write_corpus(dest, kind="textures", clips=plan(size, seed=seed), render=render, n_jobs=n_jobs)


def render(clip: Clip) -> np.ndarray:
    """Synthesise one texture: its class's sound, a noise floor and a random level; mono float32 at :data:`SR`."""
    p = clip.params
    rng = clip_rng(p["seed"], p["class"], p["index"])
    n = int(rng.uniform(2.0, 5.0) * SR)
    y = CLASSES[p["class"]](rng, n=n)
    y = _mix(y, _band(_pink(rng, n=n), lo=40), db=-rng.uniform(20, 45))  # the background noise floor
    y *= 10 ** (rng.uniform(-32, -18) / 20) / _rms(y)
    y *= min(1.0, MAX_PEAK / np.abs(y).max())
    edge = round(0.02 * SR)
    ramp = np.linspace(0.0, 1.0, edge)
    y[:edge] *= ramp
    y[-edge:] *= ramp[::-1]
    return y.astype(np.float32)
