"""A user's TorchScript embedding model, and the windowing and batching the checkpoint loaders share.

The file (``torch.jit.save`` of a scripted or traced module) takes a float32 batch of
waveforms ``(batch, samples)`` at ``spec.sample_rate`` and returns ``(batch, frames, dim)``
or ``(batch, dim)`` (one frame per window).

:class:`WindowedModel` holds what the three checkpoint loaders (this one,
:mod:`audioclust.embed.onnx` and :mod:`audioclust.embed.huggingface`) do alike:

* a signal longer than :data:`MAX_WINDOW_SECONDS` is cut into consecutive windows of that
  length, each embedded on its own, and their frames are concatenated, so memory stays
  bounded whatever a file's length. A last piece shorter than the model's smallest input is
  joined to the window before it. Frame times ``i * hop_seconds`` drift by less than one
  hop at each window boundary (a window's frames do not fill its end exactly);
* a signal shorter than the model's smallest input is zero-padded to it, so every signal
  gets at least one frame;
* windows are sorted by length and run ``batch_size`` at a time; the results come back in
  the input order. For these two formats only windows of *equal* length share a batch: the
  frames of a zero-padded input cannot be cut reliably for an arbitrary model, and padding
  would change what it computes. Files cut to a fixed length beforehand, and the full
  windows of long files, batch fully; other lengths run one call per length.
"""

from __future__ import annotations

import logging
import warnings
from abc import abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from audioclust.embed.base import EmbeddingModel, check_signals
from audioclust.embed.spec import ModelError, ModelSpec

logger = logging.getLogger(__name__)

#: longest window (seconds) fed to a model in one piece; longer signals are cut into windows
MAX_WINDOW_SECONDS = 30.0


class WindowedModel(EmbeddingModel):
    """Base of the checkpoint loaders: windows, short-signal padding, length-sorted batches, probing.

    A subclass sets ``sample_rate``, ``device``, ``_window`` (samples), ``_min_samples``,
    ``_batch_size`` and ``_pads_exactly``, implements :meth:`_forward`, then calls
    :meth:`_probe` to set ``dim`` and ``hop_seconds``.
    """

    _window: int
    _min_samples: int = 1
    _batch_size: int
    #: True when zero-padding inside a batch leaves every item's kept frames unchanged
    _pads_exactly: bool = False

    @abstractmethod
    def _forward(self, pieces: list[np.ndarray]) -> list[np.ndarray]:
        """Run one batch.

        Parameters
        ----------
        pieces : list of np.ndarray
            Mono float32 windows, each ``(samples,)`` with ``_min_samples <= samples``; all of
            one length unless ``_pads_exactly``.

        Returns
        -------
        list of np.ndarray
            One float32 ``(n_frames, dim)`` per piece, in order.
        """

    def embed(self, signals: list[np.ndarray]) -> list[np.ndarray]:
        """Frame embeddings of each signal.

        Parameters
        ----------
        signals : list of np.ndarray
            Mono waveforms ``(samples,)`` at :attr:`sample_rate`, at least one sample each
            (:func:`~audioclust.embed.base.check_signals` raises ValueError otherwise).

        Returns
        -------
        list of np.ndarray
            One float32 ``(n_frames, dim)`` per signal, ``n_frames >= 1``, in the input order.
        """
        pieces: list[np.ndarray] = []
        owners: list[int] = []
        for i, x in enumerate(check_signals(signals)):
            for piece in _windows(x, self._window, self._min_samples):
                pieces.append(piece)
                owners.append(i)
        frames: list[np.ndarray | None] = [None] * len(pieces)
        for batch in _batches([p.size for p in pieces], self._batch_size, mixed=self._pads_exactly):
            for j, out in zip(batch, self._forward([pieces[j] for j in batch])):
                frames[j] = out
        per_signal: list[list[np.ndarray]] = [[] for _ in signals]
        for owner, out in zip(owners, frames):
            per_signal[owner].append(out)
        return [np.concatenate(parts, axis=0) for parts in per_signal]

    def _probe(self) -> None:
        """Set ``dim`` and ``hop_seconds`` from two probe signals run through :meth:`embed`.

        The hop is the added duration over the added frames between a probe and one twice
        as long (exact for convolution stacks whatever their receptive field). Where the frame
        count does not grow with length (one vector per window, or a fixed set of tokens per
        window), ``hop_seconds`` is the window's duration over its frame count.
        """
        short = max(min(self.sample_rate, self._window // 2), self._min_samples)
        noise = np.random.default_rng(0).standard_normal(2 * short).astype(np.float32) * 0.1
        first, second = self.embed([noise[:short], noise])
        if first.shape[1] != second.shape[1]:
            raise ModelError(f"{self.name}: the embedding size changes with the input length "
                             f"({first.shape[1]} vs {second.shape[1]}); the model must return a fixed dim")
        self.dim = int(first.shape[1])
        grown = second.shape[0] - first.shape[0]
        if grown > 0:
            self.hop_seconds = short / self.sample_rate / grown
        else:
            self.hop_seconds = self._window / self.sample_rate / first.shape[0]


class TorchScriptModel(WindowedModel):
    """A TorchScript file mapping ``(batch, samples)`` waveforms to ``(batch, frames, dim)`` or ``(batch, dim)``.

    Parameters
    ----------
    spec : ModelSpec
        ``path`` to the ``.pt`` file and ``sample_rate`` of the waveforms it takes (required).
    device : torch.device
        Where the module runs (``torch.jit.load(map_location=device)``).

    Notes
    -----
    Only windows of equal length share a batch (module docstring). The smallest input the
    module accepts is found at load time by running short zero signals (doubling, then
    bisecting), and ``hop_seconds`` is estimated from probe signals (:meth:`WindowedModel._probe`).
    """

    def __init__(self, spec: ModelSpec, device: torch.device) -> None:
        path = checkpoint_file(spec, "TorchScript", ".pt")
        self.name = spec.name
        self.device = torch.device(device)
        self.sample_rate = required_rate(spec)
        self._batch_size = max(1, spec.batch_size)
        self._window = window_samples(self.sample_rate)
        try:
            with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; the user chose this format
                warnings.simplefilter("ignore", DeprecationWarning)
                self._module = torch.jit.load(str(path), map_location=self.device).eval()
        except (RuntimeError, ValueError) as error:
            raise ModelError(f"{path} is not a TorchScript file that torch {torch.__version__} can load ({error}); "
                             "save one with torch.jit.save(torch.jit.script(module), path), "
                             "or use type 'onnx' or 'huggingface' for other formats") from None
        self._min_samples = smallest_input(self._accepts, self._window, self.name)
        self._probe()
        logger.info("%s: TorchScript %s, %d Hz, dim %d, hop %.4f s", self.name, path, self.sample_rate,
                    self.dim, self.hop_seconds)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self._module(torch.from_numpy(batch).to(self.device))
        if not isinstance(out, torch.Tensor):
            raise ModelError(f"{self.name}: the module returned {type(out).__name__}; it must return one tensor "
                             "(batch, frames, dim) or (batch, dim)")
        return out.float().cpu().numpy()

    def _accepts(self, n_samples: int) -> bool:
        try:
            return frames_of(self._run(np.zeros((1, n_samples), np.float32)), self.name)[0].shape[0] >= 1
        except (RuntimeError, ValueError, IndexError):  # the module's own complaint about a too-short input
            return False

    def _forward(self, pieces: list[np.ndarray]) -> list[np.ndarray]:
        try:
            out = self._run(np.stack(pieces))
        except (RuntimeError, ValueError, IndexError) as error:
            raise ModelError(f"{self.name}: the TorchScript module failed on a batch of {len(pieces)} x "
                             f"{pieces[0].size} samples: {error}") from None
        return frames_of(out, self.name)


def window_samples(sample_rate: int, limit: int | None = None) -> int:
    """Longest window in samples: :data:`MAX_WINDOW_SECONDS`, or ``limit`` (a fixed-size input) when shorter."""
    window = max(1, round(MAX_WINDOW_SECONDS * sample_rate))
    return window if limit is None else min(window, limit)


def checkpoint_file(spec: ModelSpec, kind: str, suffix: str) -> Path:
    """The model file of a TorchScript or ONNX spec, checked to exist.

    Parameters
    ----------
    spec : ModelSpec
    kind : str
        Format name for messages (``"TorchScript"``, ``"ONNX"``).
    suffix : str
        Usual file suffix, for messages.

    Returns
    -------
    Path
    """
    if not spec.path:
        raise ModelError(f"model {spec.name!r}: set `path` to the {kind} file (*{suffix})")
    path = Path(spec.path).expanduser()
    if not path.exists():
        raise ModelError(f"model {spec.name!r}: {path} does not exist; set `path` to the {kind} file (*{suffix})")
    if not path.is_file():
        raise ModelError(f"model {spec.name!r}: {path} is a folder; a {kind} model is one file (*{suffix}); "
                         "a transformers checkpoint folder takes type 'huggingface'")
    if spec.layer is not None:
        raise ModelError(f"model {spec.name!r}: `layer` applies to 'huggingface' models only; remove it")
    return path


def required_rate(spec: ModelSpec) -> int:
    """``spec.sample_rate``, which a TorchScript or ONNX file cannot tell by itself."""
    if spec.sample_rate is None or spec.sample_rate <= 0:
        raise ModelError(f"model {spec.name!r}: set `sample_rate` for this model to the rate (Hz) of the "
                         f"waveforms it was trained on; a {spec.type} file does not record it")
    return int(spec.sample_rate)


def frames_of(out: np.ndarray, name: str) -> list[np.ndarray]:
    """Split a model's batch output into per-item frames.

    Parameters
    ----------
    out : np.ndarray
        ``(batch, frames, dim)`` or ``(batch, dim)``.
    name : str
        Model name for messages.

    Returns
    -------
    list of np.ndarray
        One float32 ``(frames, dim)`` per item (``(1, dim)`` for a 2-D output).
    """
    if out.ndim == 2:
        out = out[:, None, :]
    if out.ndim != 3:
        raise ModelError(f"{name}: the model returned shape {out.shape}; it must return (batch, frames, dim) "
                         "or (batch, dim)")
    return [np.ascontiguousarray(item, dtype=np.float32) for item in out]


def smallest_input(accepts: Callable[[int], bool], upper: int, name: str) -> int:
    """Smallest length a model accepts, assuming every longer one is accepted too.

    Parameters
    ----------
    accepts : callable
        ``accepts(n_samples) -> bool``: the model runs on that length and gives at least one frame.
    upper : int
        Longest length tried (the window).
    name : str
        Model name for messages.

    Returns
    -------
    int
        Found by doubling from 1 then bisecting: about ``2 * log2(n)`` calls, all short.
    """
    if accepts(1):
        return 1
    high = 2
    while not accepts(high):
        if high >= upper:
            raise ModelError(f"{name}: the model fails on every input length up to {upper} samples; it must take "
                             "a float32 (batch, samples) waveform batch of any length")
        high = min(2 * high, upper)
    low = high // 2  # rejected
    while high - low > 1:
        middle = (low + high) // 2
        if accepts(middle):
            high = middle
        else:
            low = middle
    return high


def _windows(x: np.ndarray, window: int, min_samples: int) -> list[np.ndarray]:
    """Cut ``x`` into windows of ``window`` samples; too short a last piece joins the one before."""
    if x.size < min_samples:
        return [np.pad(x, (0, min_samples - x.size))]
    pieces = [x[start:start + window] for start in range(0, x.size, window)]
    if len(pieces) > 1 and pieces[-1].size < min_samples:
        pieces[-2:] = [np.concatenate(pieces[-2:])]
    return pieces


def _batches(lengths: list[int], size: int, *, mixed: bool) -> Iterator[list[int]]:
    """Indexes of ``lengths`` in batches of at most ``size``, sorted by length to limit padding.

    With ``mixed`` False a batch holds one length only.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == size or (not mixed and lengths[i] != lengths[batch[0]])):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch
