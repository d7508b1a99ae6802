"""What a model's embeddings depend on, known without loading the model.

Stage 03 marks each file's embedding with this key and the views hash it into their cache
keys, so a re-run with the same model skips loading it altogether, and new weights at the
same path (a re-trained checkpoint) recompute everything made from the old ones.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

from audioclust.core.cache import file_fingerprint, stable_hash
from audioclust.embed.spec import ModelSpec

#: bump when the way audioclust feeds a model changes (framing, resampling, pooling of windows)
ADAPTER_VERSION = 1

#: the weights file inside each shipped package
SHIPPED_WEIGHTS = {"aisfx": "models/checkpoint.pth", "resemblyzer": "pretrained.pt"}


def model_key(spec: ModelSpec) -> str:
    """Stable hash of the model's options, its weights' sizes and modification times, and its package version.

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    str : changes when anything that changes the model's outputs changes (``batch_size`` does not).
    """
    options = {k: v for k, v in dataclasses.asdict(spec).items() if k != "batch_size"}
    return stable_hash({"adapter": ADAPTER_VERSION, "options": options, "weights": _weights(spec)})


def _weights(spec: ModelSpec) -> Any:
    if spec.type in SHIPPED_WEIGHTS:
        found = importlib.util.find_spec(spec.type)  # locates the package without importing it
        if found is None or not found.submodule_search_locations:
            return None
        folder = Path(next(iter(found.submodule_search_locations)))
        try:
            version = importlib.metadata.version(spec.type)
        except importlib.metadata.PackageNotFoundError:
            version = None
        # their input features are librosa's: another librosa may give other mels
        return {"version": version, "file": file_fingerprint(folder / SHIPPED_WEIGHTS[spec.type]),
                "librosa": importlib.metadata.version("librosa")}
    path = Path(spec.path or "")
    if path.is_dir():  # a Hugging Face directory: its config and weight files
        return {p.name: file_fingerprint(p) for p in sorted(path.iterdir()) if p.is_file()}
    return file_fingerprint(path)
