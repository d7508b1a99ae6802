"""The demo's seven families of synthetic sounds (harmonic tones, chirps, noise bursts, clicks, AM/FM)."""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
from scipy import signal

log = logging.getLogger(__name__)


def _envelope(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Attack of 5–50 ms, then an exponential decay of random depth."""
    attack = rng.uniform(0.005, 0.05)
    return np.minimum(t / attack, 1.0) * np.exp(-t * rng.uniform(0.3, 2.5) / max(t[-1], 1e-3))


def _harmonic(rng: np.random.Generator, t: np.ndarray, f0: float, n_harm: int, power: float) -> np.ndarray:
    return sum(rng.uniform(0.7, 1.0) / k ** power * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
               for k in range(1, n_harm + 1)) * _envelope(rng, t)


def _tone_low(rng, t, sr):
    return _harmonic(rng, t, rng.uniform(100.0, 200.0), n_harm=6, power=1.0)


def _tone_high(rng, t, sr):
    return _harmonic(rng, t, rng.uniform(1000.0, 2000.0), n_harm=3, power=2.0)


def _sweep(rng, t, f_start, f_end):
    y = signal.chirp(t, f0=f_start, t1=t[-1], f1=f_end, method="logarithmic")
    return y * np.minimum(t / rng.uniform(0.005, 0.03), 1.0)


def _chirp_up(rng, t, sr):
    return _sweep(rng, t, rng.uniform(200.0, 400.0), rng.uniform(3000.0, 5000.0))


def _chirp_down(rng, t, sr):
    return _sweep(rng, t, rng.uniform(3000.0, 5000.0), rng.uniform(200.0, 400.0))


def _noise_pink(rng, t, sr):
    """Pink (1/f power) noise in 1–3 bursts of 0.1–0.35 s."""
    spectrum = np.fft.rfft(rng.standard_normal(len(t)))
    freqs = np.fft.rfftfreq(len(t), d=1.0 / sr)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n=len(t))
    gate = np.zeros_like(t)
    for _ in range(rng.integers(1, 4)):
        start, length = rng.uniform(0, 0.7 * t[-1]), rng.uniform(0.1, 0.35)
        ramp = np.clip(np.minimum(t - start, start + length - t) / 0.01, 0.0, 1.0)
        gate = np.maximum(gate, ramp)
    return noise * gate


def _clicks(rng, t, sr):
    """A train of 6–15 clicks per second, each a 2 ms decaying 2.5–4 kHz ring."""
    rate = rng.uniform(6.0, 15.0)
    impulses = np.zeros_like(t)
    times = np.arange(rng.uniform(0, 1 / rate), t[-1], 1 / rate)
    times += rng.normal(0, 0.05 / rate, size=len(times))
    idx = np.clip((times * sr).astype(int), 0, len(t) - 1)
    impulses[idx] = rng.uniform(0.6, 1.0, size=len(idx))
    tk = np.arange(int(0.01 * sr)) / sr
    kernel = np.exp(-tk / 0.002) * np.sin(2 * np.pi * rng.uniform(2500.0, 4000.0) * tk)
    return np.convolve(impulses, kernel)[: len(t)]


def _am_fm(rng, t, sr):
    """A 400–700 Hz carrier with 4–7 Hz vibrato (±20–40 Hz) and 2–5 Hz tremolo."""
    fc, fm, dev = rng.uniform(400.0, 700.0), rng.uniform(4.0, 7.0), rng.uniform(20.0, 40.0)
    phase = 2 * np.pi * fc * t + dev / fm * np.sin(2 * np.pi * fm * t)
    depth = rng.uniform(0.5, 0.9)
    tremolo = 1 - depth / 2 + depth / 2 * np.cos(2 * np.pi * rng.uniform(2.0, 5.0) * t)
    return np.sin(phase) * tremolo


#: Families of the demo set, in label order: (rng, t, sr) -> float64 signal of the shape of t.
DEMO_FAMILIES: dict[str, Callable[[np.random.Generator, np.ndarray, int], np.ndarray]] = {
    "tone_low": _tone_low, "tone_high": _tone_high, "chirp_up": _chirp_up, "chirp_down": _chirp_down,
    "noise_pink": _noise_pink, "clicks": _clicks, "am_fm": _am_fm,
}


def demo_sound(label: str, index: int, *, seed: int = 0, sr: int = 22050, seconds: float = 1.0) -> np.ndarray:
    """One demo sound: family ``label``, jittered by ``(seed, family, index)``.

    The duration is ``seconds`` ±20 %, the peak −12…−1 dBFS, plus white noise
    40–50 dB below the peak and 5 ms fades.

    Returns
    -------
    ndarray of shape (frames,), float32.
    """
    family = list(DEMO_FAMILIES).index(label)
    rng = np.random.default_rng([seed, family, index])
    n = max(int(round(seconds * rng.uniform(0.8, 1.2) * sr)), 16)
    t = np.arange(n) / sr
    y = DEMO_FAMILIES[label](rng, t, sr)
    y = y / (np.max(np.abs(y)) or 1.0)
    y = y + 10 ** (rng.uniform(-50, -40) / 20) * rng.standard_normal(n)
    fade = np.clip(np.minimum(t, t[-1] - t) / 0.005, 0.0, 1.0)
    y = y * fade
    return (y * 10 ** (rng.uniform(-12, -1) / 20) / np.max(np.abs(y))).astype(np.float32)
