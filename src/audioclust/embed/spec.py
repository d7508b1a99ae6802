"""What names a model, and the error of a model that cannot be loaded: no torch needed.

The views (stage 04) and the stages' shared helpers read these without loading any model,
so this module stays free of torch; :mod:`audioclust.embed.base` holds the model interface.
"""

from __future__ import annotations

from dataclasses import dataclass

from audioclust.core.errors import AudioclustError


class ModelError(AudioclustError):
    """A model cannot be loaded or run as configured (unknown type, missing package or file, device)."""


@dataclass(frozen=True)
class ModelSpec:
    """One configured model.

    Attributes
    ----------
    name : the feature name users see (``"aisfx"``, ``"wavlm_l6"``): folder and view name.
    type : ``"aisfx"``, ``"resemblyzer"``, ``"huggingface"``, ``"torchscript"`` or ``"onnx"``.
    path : a Hugging Face directory, ``.pt`` or ``.onnx`` file; None for the shipped models.
    layer : the transformer hidden layer to take (None: the last); Hugging Face only.
    sample_rate : the rate the model expects in Hz; required for TorchScript and ONNX.
    batch_size : blocks or windows per forward pass.
    """

    name: str
    type: str
    path: str | None = None
    layer: int | None = None
    sample_rate: int | None = None
    batch_size: int = 16
