"""Autoencoder architectures (plain ``nn.Module``), chosen by name.

>>> model = build_model("dcec", input_shape=(1, 96, 48), latent_dim=10)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from audioclust.core.errors import ConfigError
from audioclust.deep.components.autoencoders import (
    Autoencoder,
    Conv4Autoencoder,
    ConvVAE,
    DCECAutoencoder,
    MLPAutoencoder,
    PCAStartedMLPAutoencoder,
)

MODELS: dict[str, type[Autoencoder]] = {
    "dcec": DCECAutoencoder,
    "conv4": Conv4Autoencoder,
    "vae": ConvVAE,
    "mlp": MLPAutoencoder,
    "mlp_pca": PCAStartedMLPAutoencoder,
}


def build_model(name: str, input_shape: tuple[int, int, int] = (1, 96, 48), latent_dim: int = 10,
                **kwargs: Any) -> nn.Module:
    """Build the autoencoder registered as ``name``.

    Parameters
    ----------
    name : one of :data:`MODELS` (``dcec``, ``conv4``, ``vae``; ``mlp`` or ``mlp_pca`` for vectors).
    input_shape : (1, T, F), the shape of one image (time × frequency); (1, 1, D) for a vector.
    latent_dim : size of the embedding.
    **kwargs : extra arguments of the architecture (``beta`` for ``vae``).
    """
    if name not in MODELS:
        raise ConfigError(f"unknown autoencoder architecture {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name](input_shape=tuple(input_shape), latent_dim=latent_dim, **kwargs)


__all__ = ['MODELS', 'build_model']
