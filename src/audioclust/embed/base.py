"""The interface every embedding model implements, and what the implementations share.

A model is described by a :class:`ModelSpec` (what the config says), loaded by
:func:`audioclust.embed.registry.load_model` onto a device chosen by :func:`pick_device`,
and used through :meth:`EmbeddingModel.embed`: mono signals at the model's rate in, one
``(n_frames, dim)`` float32 array of frame embeddings per signal out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
import torch

from audioclust.embed.spec import ModelError, ModelSpec

#: device names :func:`pick_device` accepts (``cuda:N`` names one GPU)
DEVICES = ("auto", "cpu", "cuda", "mps")


class EmbeddingModel(ABC):
    """A pretrained model that turns signals into frame embeddings.

    Attributes
    ----------
    name : the spec's name.
    sample_rate : the rate in Hz that :meth:`embed` expects its signals at.
    dim : size of one frame embedding.
    hop_seconds : time between successive frame embeddings (the frames' time axis).
    device : where the forward passes run.
    """

    name: str
    sample_rate: int
    dim: int
    hop_seconds: float
    device: torch.device

    @abstractmethod
    def embed(self, signals: list[np.ndarray]) -> list[np.ndarray]:
        """Frame embeddings of each signal, computed in batches across signals.

        Parameters
        ----------
        signals : mono float32 arrays of shape (n_samples,) at :attr:`sample_rate`, any
            lengths of at least one sample. The blocks or windows of several signals share
            forward passes, so one call with many signals is faster than many calls.

        Returns
        -------
        list of float32 arrays of shape (n_frames, dim), n_frames >= 1, one per signal, in order.
        """


def pick_device(preference: str = "auto") -> torch.device:
    """The torch device to run on.

    Parameters
    ----------
    preference : ``"auto"`` (cuda, then mps, else cpu), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    ModelError
        The name is not a device, or the device is not available on this machine.
    """
    name = str(preference).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = name.partition(":")
    if kind not in DEVICES[1:] or (index and (kind != "cuda" or not index.isdigit())):
        raise ModelError(f"device {preference!r} is not one of {', '.join(DEVICES)} (or cuda:N): "
                         "set embeddings.device to one of them")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {preference!r}: CUDA is not available (this torch is {torch.__version__}, "
                         "no GPU or a CPU-only build): use device auto or cpu")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ModelError(f"device {preference!r}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                         "use cuda:0 .. cuda:N-1, or auto")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ModelError(f"device {preference!r}: Apple MPS is not available here: use device auto or cpu")
    return torch.device(name)


def check_signals(signals: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The signals as contiguous 1-D float32 arrays.

    Parameters
    ----------
    signals : arrays of shape (n_samples,), n_samples >= 1.

    Returns
    -------
    list of float32 arrays of shape (n_samples,).

    Raises
    ------
    ValueError
        A signal is not 1-D or holds no sample.
    """
    out = []
    for i, y in enumerate(signals):
        y = np.ascontiguousarray(y, dtype=np.float32)
        if y.ndim != 1 or y.size == 0:
            raise ValueError(f"signal {i} has shape {y.shape}: pass mono signals of at least one sample "
                             "(mix channels down first)")
        out.append(y)
    return out


def forward_batches(forward: Callable[[torch.Tensor], torch.Tensor], inputs: np.ndarray, *,
                    batch_size: int, device: torch.device) -> np.ndarray:
    """Run ``forward`` over ``inputs`` in batches along the first axis, without gradients.

    Parameters
    ----------
    forward : the model (in eval mode), mapping a (batch, ...) tensor to (batch, dim).
    inputs : ndarray of shape (n, ...), float32: the stacked blocks of all signals.
    batch_size : rows per forward pass.
    device : where the model lives.

    Returns
    -------
    ndarray of shape (n, dim), float32, on the CPU.
    """
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            batch = torch.from_numpy(inputs[start:start + batch_size]).to(device)
            outputs.append(forward(batch).float().cpu().numpy())
    return np.concatenate(outputs).astype(np.float32, copy=False)


def split_rows(rows: np.ndarray, counts: Sequence[int]) -> list[np.ndarray]:
    """Cut the stacked frames of several signals back into one array per signal.

    Parameters
    ----------
    rows : ndarray of shape (sum(counts), dim).
    counts : frames of each signal, in order.

    Returns
    -------
    list of ndarrays of shape (count, dim).
    """
    return np.split(rows, np.cumsum(counts)[:-1])


class NetworkModel(EmbeddingModel):
    """A torch network applied to fixed-size inputs cut from each signal (blocks, windows): the
    inputs of all signals share forward passes of ``batch_size``, one frame per input.

    Parameters
    ----------
    spec : ModelSpec (its name and batch size).
    device : where the network runs.
    net : the network, on the CPU; it is moved to ``device``.
    sample_rate, dim, hop_seconds : as :class:`EmbeddingModel`.
    """

    def __init__(self, spec: ModelSpec, device: torch.device, net: torch.nn.Module, *, sample_rate: int,
                 dim: int, hop_seconds: float) -> None:
        self.name, self.device, self.batch_size = spec.name, device, spec.batch_size
        self.sample_rate, self.dim, self.hop_seconds = sample_rate, dim, hop_seconds
        self.net = net.to(device)

    @abstractmethod
    def inputs(self, signals: list[np.ndarray]) -> list[np.ndarray]:
        """The network's inputs of each signal: one array of shape (n_inputs, ...) per signal, n_inputs >= 1."""

    def embed(self, signals: list[np.ndarray]) -> list[np.ndarray]:
        signals = check_signals(signals)
        if not signals:
            return []
        parts = self.inputs(signals)
        rows = forward_batches(self.net, np.concatenate(parts), batch_size=self.batch_size, device=self.device)
        return split_rows(rows, [len(p) for p in parts])
