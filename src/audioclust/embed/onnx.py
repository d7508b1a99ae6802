"""A user's ONNX embedding model, run with onnxruntime.

The file has one float32 input ``(batch, samples)`` at ``spec.sample_rate`` (its name is read
from the session; mark both axes dynamic at export, or at least ``samples``) and returns
``(batch, frames, dim)`` or ``(batch, dim)`` as its first output. Windowing, padding of short
signals and batching (equal lengths only) are those of :class:`~audioclust.embed.torchscript.WindowedModel`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from audioclust.embed.spec import ModelError, ModelSpec
from audioclust.embed.torchscript import (
    WindowedModel,
    checkpoint_file,
    frames_of,
    required_rate,
    smallest_input,
    window_samples,
)

logger = logging.getLogger(__name__)


class OnnxModel(WindowedModel):
    """An ONNX file mapping ``(batch, samples)`` waveforms to ``(batch, frames, dim)`` or ``(batch, dim)``.

    Parameters
    ----------
    spec : ModelSpec
        ``path`` to the ``.onnx`` file and ``sample_rate`` of the waveforms it takes (required).
    device : torch.device
        ``cuda`` runs on onnxruntime's CUDAExecutionProvider when the installed onnxruntime has
        it (the ``onnxruntime-gpu`` build); otherwise, and for ``cpu``, the CPU provider.
        :attr:`device` tells which one is used.

    Notes
    -----
    A fixed batch axis in the file caps ``batch_size`` at its value; a fixed ``samples`` axis is
    refused, since signals of any length must go through. The smallest accepted input and
    ``hop_seconds`` are found by probing, as for :class:`~audioclust.embed.torchscript.TorchScriptModel`.
    """

    def __init__(self, spec: ModelSpec, device: torch.device) -> None:
        path = checkpoint_file(spec, "ONNX", ".onnx")
        self.name = spec.name
        self.sample_rate = required_rate(spec)
        try:
            import onnxruntime
        except ImportError:
            raise ModelError("onnx models need the package 'onnxruntime', which is not installed: "
                             "pip install -r requirements.txt (or make setup; onnxruntime-gpu for CUDA)") from None
        self._errors = _runtime_errors()
        providers, self.device = _providers(onnxruntime, torch.device(device))
        try:
            self._session = onnxruntime.InferenceSession(str(path), providers=providers)
        except self._errors as error:
            raise ModelError(f"{path} is not an ONNX model that onnxruntime {onnxruntime.__version__} can load "
                             f"({error}); export one with torch.onnx.export") from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)" or len(inputs[0].shape) != 2:
            found = ", ".join(f"{i.name}: {i.type} {i.shape}" for i in inputs)
            raise ModelError(f"{path} has inputs [{found}]; it must have one float32 input (batch, samples)")
        self._input = inputs[0].name
        batch_axis, samples_axis = inputs[0].shape
        if isinstance(samples_axis, int):
            raise ModelError(f"{path} takes exactly {samples_axis} samples; export it with the samples axis dynamic "
                             "(dynamic_axes={input: {0: 'batch', 1: 'samples'}} or dynamic_shapes)")
        self._batch_size = max(1, min(spec.batch_size, batch_axis) if isinstance(batch_axis, int) else spec.batch_size)
        self._window = window_samples(self.sample_rate)
        self._min_samples = smallest_input(self._accepts, self._window, self.name)
        self._probe()
        logger.info("%s: ONNX %s on %s, %d Hz, dim %d, hop %.4f s", self.name, path,
                    self._session.get_providers()[0], self.sample_rate, self.dim, self.hop_seconds)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run(None, {self._input: batch})[0])

    def _accepts(self, n_samples: int) -> bool:
        try:
            return frames_of(self._run(np.zeros((1, n_samples), np.float32)), self.name)[0].shape[0] >= 1
        except self._errors:  # the model's own complaint about a too-short input
            return False

    def _forward(self, pieces: list[np.ndarray]) -> list[np.ndarray]:
        try:
            out = self._run(np.stack(pieces))
        except self._errors as error:
            raise ModelError(f"{self.name}: the ONNX model failed on a batch of {len(pieces)} x "
                             f"{pieces[0].size} samples: {error}") from None
        return frames_of(out, self.name)


def _providers(onnxruntime: Any, device: torch.device) -> tuple[list[Any], torch.device]:
    """Execution providers for ``device`` and the device they amount to."""
    if device.type == "cuda":
        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"], device
        logger.warning("onnxruntime %s has no CUDAExecutionProvider (install onnxruntime-gpu); running ONNX on the CPU",
                       onnxruntime.__version__)
    return ["CPUExecutionProvider"], torch.device("cpu")


def _runtime_errors() -> tuple[type[Exception], ...]:
    """The exceptions onnxruntime raises for a bad file or a failed run (its own classes, not RuntimeError)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile", "NoModel",
             "RuntimeException", "NotImplemented")
    return (RuntimeError, ValueError) + tuple(getattr(state, n) for n in names if hasattr(state, n))
