"""Autoencoders for fixed-size feature images, and for vectors (a pretrained model's embedding).

Every model takes images of shape ``(N, 1, T, F)`` (time × frequency; a vector of D values is
an image of shape ``(1, 1, D)``) and exposes

- ``encode(x) -> z`` of shape ``(N, latent_dim)`` — the embedding used for clustering;
- ``decode(z) -> x_hat`` of shape ``(N, 1, T, F)``, exactly the input shape, for any T, F;
- ``forward(x) -> (x_hat, z)`` (:class:`ConvVAE` returns ``(x_hat, z, mu, logvar)``);
- ``training_loss(x) -> dict`` with ``"loss"`` (the value to minimise) and its parts.

The output layer is linear (no sigmoid), as in DCEC (Guo et al., 2017), and the
reconstruction loss is the mean squared error per pixel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from audioclust.core.errors import ConfigError


def _halve(size: tuple[int, int]) -> tuple[int, int]:
    """Spatial size after a stride-2 conv with padding k//2 (odd k), or a 2×2 ceil-mode pool."""
    return (math.ceil(size[0] / 2), math.ceil(size[1] / 2))


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels-last memory order: oneDNN's CPU convolutions run 10-25 % faster on it
    (benchmarks/bench_train.py); the values and their logical layout are unchanged."""
    return x.contiguous(memory_format=torch.channels_last)


def _check_shape(input_shape: tuple[int, int, int], latent_dim: int) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or shape[0] != 1 or min(shape) < 1:
        raise ConfigError(f"input_shape must be (1, T, F) with T, F >= 1, got {input_shape}")
    if latent_dim < 1:
        raise ConfigError(f"latent_dim must be >= 1, got {latent_dim}")
    return shape  # type: ignore[return-value]


class Autoencoder(nn.Module):
    """Base class: ``features`` → flatten → ``embedding`` encodes; ``expand`` → reshape to
    ``bottleneck`` → ``decoder`` decodes; MSE reconstruction loss over ``forward``'s first output."""

    input_shape: tuple[int, int, int]
    latent_dim: int
    bottleneck: tuple[int, int, int]
    features: nn.Module
    embedding: nn.Module
    expand: nn.Module
    decoder: nn.Module

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, T, F) → (N, latent_dim)."""
        return self.embedding(self.features(channels_last(x)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) → (N, 1, T, F)."""
        return self.decoder(channels_last(self.expand(z).view(-1, *self.bottleneck)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        z = self.encode(x)
        return self.decode(z), z

    @torch.no_grad()
    def init_from_training(self, images: torch.Tensor) -> None:
        """Start from the training images (N, 1, T, F): the decoder's last bias at their mean pixel.

        A fresh decoder outputs about 0, so the first epochs would only learn the mean
        image level; starting from it, training goes straight to the image structure.
        """
        last = [m for m in self.decoder.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
        last.bias.fill_(float(images.mean()))

    def training_loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss", "recon"}``: mean squared reconstruction error of ``x`` (N, 1, T, F)."""
        x_hat = self(x)[0]
        recon = F.mse_loss(x_hat, x)
        return {"loss": recon, "recon": recon}


class DCECAutoencoder(Autoencoder):
    """The convolutional autoencoder of DCEC (Guo, Liu, Zhu & Yin, ICONIP 2017).

    Encoder: conv 32 (5×5, stride 2) → conv 64 (5×5, stride 2) → conv 128 (3×3, stride 2),
    ReLU after each, flatten, linear embedding (no activation). Decoder: linear → ReLU →
    reshape → transposed convs 128→64 (3×3), 64→32 (5×5), 32→1 (5×5), stride 2, ReLU between.

    Each conv pads by ``k // 2``, so a side of n becomes ``ceil(n / 2)``; each transposed
    conv gets ``output_padding = 1`` where the encoder's input side was even and 0 where
    it was odd, so the output has exactly the input shape for any size.

    Parameters
    ----------
    input_shape : (1, T, F)
    latent_dim : size of the embedding.
    """

    channels = (32, 64, 128)
    kernels = (5, 5, 3)

    def __init__(self, input_shape: tuple[int, int, int] = (1, 96, 48), latent_dim: int = 10) -> None:
        super().__init__()
        self.input_shape = _check_shape(input_shape, latent_dim)
        self.latent_dim = int(latent_dim)
        sizes = [self.input_shape[1:]]
        for _ in self.kernels:
            sizes.append(_halve(sizes[-1]))
        self.sizes = sizes  # spatial size before each conv, and the bottleneck last
        self.bottleneck = (self.channels[-1], *sizes[-1])
        n_flat = math.prod(self.bottleneck)

        layers: list[nn.Module] = []
        c_in = 1
        for c, k in zip(self.channels, self.kernels):
            layers += [nn.Conv2d(c_in, c, k, stride=2, padding=k // 2), nn.ReLU()]
            c_in = c
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.embedding = nn.Linear(n_flat, self.latent_dim)

        self.expand = nn.Sequential(nn.Linear(self.latent_dim, n_flat), nn.ReLU())
        deconv: list[nn.Module] = []
        outs = list(reversed((1,) + self.channels[:-1]))  # 64, 32, 1
        for i, (c_out, k) in enumerate(zip(outs, reversed(self.kernels))):
            target = sizes[len(self.kernels) - 1 - i]  # the encoder input of the mirrored conv
            pad = tuple(1 - t % 2 for t in target)
            deconv.append(nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=k // 2, output_padding=pad))
            if c_out != 1:
                deconv.append(nn.ReLU())
            c_in = c_out
        self.decoder = nn.Sequential(*deconv)


class Conv4Autoencoder(Autoencoder):
    """A deeper variant: four conv blocks (128, 128, 64, 32 filters; 3×3, same padding,
    ReLU, 2×2 max-pooling) → flatten → linear latent; the decoder mirrors it with
    nearest-neighbour up-sampling to the recorded sizes followed by 3×3 convs
    (32→64→128→128, ReLU) and a linear 128→1 conv.

    Pooling uses ``ceil_mode`` and up-sampling targets the exact encoder sizes, so odd
    sides are handled and the output shape equals the input shape.

    Parameters
    ----------
    input_shape : (1, T, F)
    latent_dim : size of the embedding.
    """

    channels = (128, 128, 64, 32)

    def __init__(self, input_shape: tuple[int, int, int] = (1, 96, 48), latent_dim: int = 10) -> None:
        super().__init__()
        self.input_shape = _check_shape(input_shape, latent_dim)
        self.latent_dim = int(latent_dim)
        sizes = [self.input_shape[1:]]
        for _ in self.channels:
            sizes.append(_halve(sizes[-1]))
        self.sizes = sizes
        self.bottleneck = (self.channels[-1], *sizes[-1])
        n_flat = math.prod(self.bottleneck)

        layers: list[nn.Module] = []
        c_in = 1
        for c in self.channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            c_in = c
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.embedding = nn.Linear(n_flat, self.latent_dim)

        self.expand = nn.Sequential(nn.Linear(self.latent_dim, n_flat), nn.ReLU())
        up: list[nn.Module] = []
        outs = list(reversed((1,) + self.channels[:-1]))  # 64, 128, 128, 1
        for i, c_out in enumerate(outs):
            up += [nn.Upsample(size=sizes[len(self.channels) - 1 - i], mode="nearest"),
                   nn.Conv2d(c_in, c_out, 3, padding=1)]
            if c_out != 1:
                up.append(nn.ReLU())
            c_in = c_out
        self.decoder = nn.Sequential(*up)


class ConvVAE(DCECAutoencoder):
    """Variational autoencoder on the DCEC backbone.

    The flattened conv features feed two linear heads, the mean ``mu`` and the
    log-variance ``logvar`` of a diagonal Gaussian; training decodes a sample
    ``z = mu + exp(logvar / 2) * eps``; ``encode`` returns ``mu`` (the embedding).
    Loss = MSE + ``beta`` · KL(N(mu, σ²) ‖ N(0, I)), the KL summed over latent
    dimensions, averaged over the batch and divided by the pixels per image, so
    that it is on the per-pixel scale of the MSE.

    Parameters
    ----------
    input_shape : (1, T, F)
    latent_dim : size of the embedding.
    beta : weight of the KL term.
    """

    def __init__(self, input_shape: tuple[int, int, int] = (1, 96, 48), latent_dim: int = 10,
                 beta: float = 1.0) -> None:
        super().__init__(input_shape, latent_dim)
        self.beta = float(beta)
        self.logvar = nn.Linear(self.embedding.in_features, self.latent_dim)

    def encode_distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 1, T, F) → (mu, logvar), each (N, latent_dim)."""
        h = self.features(channels_last(x))
        return self.embedding(h), self.logvar(h)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, T, F) → mu of shape (N, latent_dim)."""
        return self.encode_distribution(x)[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(x_hat, z, mu, logvar); z is a sample in training mode and mu in eval mode."""
        mu, logvar = self.encode_distribution(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return self.decode(z), z, mu, logvar

    def training_loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss", "recon", "kl"}`` for a batch ``x`` (N, 1, T, F)."""
        x_hat, _, mu, logvar = self(x)
        recon = F.mse_loss(x_hat, x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1).mean() / math.prod(x.shape[1:])
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}


class MLPAutoencoder(Autoencoder):
    """The fully connected autoencoder of DEC (Xie, Girshick & Farhadi, ICML 2016), for vectors.

    Encoder: D → 500 → 500 → 2000 (ReLU after each) → linear embedding; the decoder mirrors it
    with a linear output. With the clustering layer on its embedding, DCEC's clustering stage
    is DEC's. It refines a pretrained model's embedding (``autoencoder.features`` naming a
    model of ``embeddings.models``), where convolutions over a vector's entries would mean
    nothing.

    Parameters
    ----------
    input_shape : (1, 1, D): one vector of D values.
    latent_dim : size of the embedding.
    """

    hidden = (500, 500, 2000)

    def __init__(self, input_shape: tuple[int, int, int] = (1, 1, 64), latent_dim: int = 10) -> None:
        super().__init__()
        self.input_shape = _check_shape(input_shape, latent_dim)
        self.latent_dim = int(latent_dim)
        n_in = math.prod(self.input_shape)
        self.bottleneck = (self.hidden[-1],)
        widths = (n_in, *self.hidden)
        encoder: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:]):
            encoder += [nn.Linear(a, b), nn.ReLU()]
        self.features = nn.Sequential(*encoder)
        self.embedding = nn.Linear(self.hidden[-1], self.latent_dim)
        self.expand = nn.Sequential(nn.Linear(self.latent_dim, self.hidden[-1]), nn.ReLU())
        decoder: list[nn.Module] = []
        back = widths[::-1]
        for i, (a, b) in enumerate(zip(back[:-1], back[1:])):
            decoder.append(nn.Linear(a, b))
            if i < len(back) - 2:
                decoder.append(nn.ReLU())
        self.decoder = nn.Sequential(*decoder, nn.Unflatten(1, self.input_shape))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 1, D) → (N, latent_dim)."""
        return self.embedding(self.features(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) → (N, 1, 1, D)."""
        return self.decoder(self.expand(z))

    @torch.no_grad()
    def init_from_training(self, images: torch.Tensor) -> None:
        """Set the output layer's bias to the training vectors' mean value (as the convolutional models do)."""
        self._output_layer().bias.fill_(float(images.mean()))

    def _output_layer(self) -> nn.Linear:
        return [m for m in self.decoder.modules() if isinstance(m, nn.Linear)][-1]


class PCAStartedMLPAutoencoder(MLPAutoencoder):
    """DEC's fully connected autoencoder beside a linear path that starts as PCA, for vectors.

    ``encode(x) = P x + mlp(x)`` and ``decode(z) = P' z + mlp'(z)``, with DEC's MLPs of
    :class:`MLPAutoencoder`. :meth:`init_from_training` sets ``P`` and ``P'`` to the training
    vectors' principal components and zeroes each MLP's last layer, so training starts from PCA's
    reconstruction and the MLPs learn what it misses. From random weights alone, DEC's millions of
    parameters, learnt from a few hundred vectors, reconstruct worse and keep less of the view's
    groups (docs: Benchmarks, "DEC's autoencoder started from PCA").
    """

    def __init__(self, input_shape: tuple[int, int, int] = (1, 1, 64), latent_dim: int = 10) -> None:
        super().__init__(input_shape, latent_dim)
        n_in = math.prod(self.input_shape)
        self.linear_encoder = nn.Linear(n_in, self.latent_dim)
        self.linear_decoder = nn.Linear(self.latent_dim, n_in)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 1, D) → (N, latent_dim)."""
        return self.linear_encoder(x.flatten(1)) + super().encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) → (N, 1, 1, D)."""
        return self.linear_decoder(z).view(-1, *self.input_shape) + super().decode(z)

    @torch.no_grad()
    def init_from_training(self, images: torch.Tensor) -> None:
        """The linear paths at the training vectors' principal components, each MLP's last layer at 0.

        With fewer training vectors than ``latent_dim``, the rows past their number stay 0 (the MLPs
        can still use those dimensions).
        """
        X = images.flatten(1).double()
        mean = X.mean(0)
        _, _, vt = torch.linalg.svd(X - mean, full_matrices=False)
        components = torch.zeros(self.latent_dim, X.shape[1], dtype=torch.float64)
        n = min(self.latent_dim, vt.shape[0])
        components[:n] = vt[:n]
        self.linear_encoder.weight.copy_(components)
        self.linear_encoder.bias.copy_(-components @ mean)
        self.linear_decoder.weight.copy_(components.T)
        self.linear_decoder.bias.copy_(mean)
        for last in (self.embedding, self._output_layer()):
            last.weight.zero_()
            last.bias.zero_()
