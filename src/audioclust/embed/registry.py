"""From a :class:`~audioclust.embed.base.ModelSpec` to a loaded model: checks, then the type's module.

Each type's module is imported only when a model of that type is loaded, so that
``import audioclust.embed`` does not pull in transformers, onnxruntime or the shipped packages.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from audioclust.core.vocab import EMBEDDING_TYPES, SHIPPED_EMBEDDINGS
from audioclust.embed.base import EmbeddingModel, pick_device
from audioclust.embed.spec import ModelError, ModelSpec

#: models whose weights ship inside their pip wheels (no path)
SHIPPED: tuple[str, ...] = SHIPPED_EMBEDDINGS

#: every model type :func:`load_model` knows
MODEL_TYPES: tuple[str, ...] = EMBEDDING_TYPES

#: the pinned versions of the shipped packages (requirements-nodeps.txt), for install hints
_SHIPPED_PINS = {"aisfx": "aisfx==0.1.2", "resemblyzer": "resemblyzer==0.1.4 webrtcvad-wheels"}


def load_model(spec: ModelSpec, *, device: str = "auto") -> EmbeddingModel:
    """Load the model a spec describes onto a device.

    Parameters
    ----------
    spec : ModelSpec
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` (:func:`~audioclust.embed.base.pick_device`).

    Returns
    -------
    EmbeddingModel : ready to :meth:`~audioclust.embed.base.EmbeddingModel.embed`.

    Raises
    ------
    ModelError
        Unknown type; a shipped model given a path or whose package is missing; a checkpoint
        without a path or whose path does not exist; an option the type does not take; a
        missing sample rate; a device that is unknown or unavailable.
    """
    _check(spec)
    torch_device = pick_device(device)
    try:
        cls = _model_class(spec.type)
    except ImportError as exc:  # a checkpoint format's library (transformers, onnxruntime) is not installed
        raise ModelError(f"model {spec.name!r}: {spec.type} models need the package {exc.name!r}, which is not "
                         "installed: pip install -r requirements.txt (or make setup)") from exc
    return cls(spec, torch_device)


def _check(spec: ModelSpec) -> None:
    """Raise :class:`ModelError` for a spec no model can be loaded from, saying what to change."""
    where = f"model {spec.name!r}"
    if spec.type not in MODEL_TYPES:
        raise ModelError(f"{where}: type {spec.type!r} is unknown; choose one of {', '.join(MODEL_TYPES)}")
    if spec.batch_size < 1:
        raise ModelError(f"{where}: batch_size {spec.batch_size} must be at least 1")
    if spec.layer is not None and spec.type != "huggingface":
        raise ModelError(f"{where}: 'layer' applies to huggingface models only; leave it out for {spec.type}")
    if spec.type in SHIPPED:
        if spec.path is not None:
            raise ModelError(f"{where}: {spec.type} ships with its weights; leave 'path' out")
        if spec.sample_rate is not None:
            raise ModelError(f"{where}: {spec.type} has its own sample rate; leave 'sample_rate' out")
        if importlib.util.find_spec(spec.type) is None:
            raise ModelError(f"{where}: the package {spec.type!r} is not installed: make setup, or "
                             f"pip install --no-deps {_SHIPPED_PINS[spec.type]} (its own pins would replace "
                             "numpy and librosa)")
        return
    if not spec.path:
        raise ModelError(f"{where}: a {spec.type} model needs 'path' (its directory or file on this disk)")
    if not Path(spec.path).expanduser().exists():
        raise ModelError(f"{where}: path {spec.path} does not exist; give the {spec.type} checkpoint's location "
                         "(absolute, or relative to the project root)")
    if spec.type in ("torchscript", "onnx") and not spec.sample_rate:
        raise ModelError(f"{where}: a {spec.type} model needs 'sample_rate' (the rate it expects, in Hz)")


def _model_class(kind: str) -> type[EmbeddingModel]:
    """The class implementing a type, its module imported now (checked by :func:`_check`)."""
    if kind == "aisfx":
        from audioclust.embed.aisfx import AisfxModel
        return AisfxModel
    if kind == "resemblyzer":
        from audioclust.embed.resemblyzer import ResemblyzerModel
        return ResemblyzerModel
    if kind == "huggingface":
        from audioclust.embed.huggingface import HuggingFaceModel
        return HuggingFaceModel
    if kind == "torchscript":
        from audioclust.embed.torchscript import TorchScriptModel
        return TorchScriptModel
    from audioclust.embed.onnx import OnnxModel
    return OnnxModel
