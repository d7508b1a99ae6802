"""Pretrained audio embedding models behind one small interface (:mod:`audioclust.embed.base`).

A :class:`~audioclust.embed.base.ModelSpec` names a model: one whose weights ship in its pip
wheel (``aisfx`` for sound effects, ``resemblyzer`` for voices) or a local Hugging Face,
TorchScript or ONNX checkpoint. :func:`~audioclust.embed.registry.load_model` loads it on a
device, importing only that type's module; :meth:`~audioclust.embed.base.EmbeddingModel.embed`
turns many signals into frame embeddings in shared batches, and
:func:`~audioclust.embed.pooling.pool_frames` makes one vector per file of them.
This layer sees arrays only: it imports :mod:`audioclust.core` and :mod:`audioclust.dsp`,
never the config or the stages.
"""
