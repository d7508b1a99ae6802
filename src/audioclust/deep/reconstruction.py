"""Pre-training objective: reconstruct the input image (MSE; the VAE adds its KL term)."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import pytorch_lightning as pl
import torch

from audioclust.deep.components import build_model

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- pre-training

class AutoencoderModule(pl.LightningModule):
    """Reconstruction pre-training of one architecture of :mod:`audioclust.deep.components`.

    Loss: the model's ``training_loss`` (MSE per pixel; the VAE adds β·KL per pixel), or with
    ``loss="sum"`` the same summed over the batch's pixels (the seed study's loss). Adam with
    ReduceLROnPlateau on ``monitor``; ``train_loss`` and ``val_loss`` (the loss optimised) and
    ``train_recon`` and ``val_recon`` (MSE per pixel, comparable across losses) are logged per epoch.

    Parameters
    ----------
    architecture : ``dcec``, ``conv4`` or ``vae``.
    input_shape : (1, T, F).
    latent_dim : size of the embedding.
    lr : Adam learning rate.
    beta : KL weight (``vae`` only).
    lr_factor, lr_patience : ReduceLROnPlateau factor and patience (epochs).
    monitor : ``val_loss``, or ``train_loss`` when there is no validation set.
    loss : ``mean`` or ``sum``.
    """

    def __init__(self, architecture: str = "dcec", input_shape: Sequence[int] = (1, 96, 48), latent_dim: int = 10,
                 lr: float = 1e-3, beta: float = 1.0, lr_factor: float = 0.5, lr_patience: int = 2,
                 monitor: str = "val_loss", loss: str = "mean") -> None:
        super().__init__()
        self.save_hyperparameters()
        extra = {"beta": beta} if architecture == "vae" else {}
        self.model = build_model(architecture, tuple(input_shape), latent_dim, **extra)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, T, F) → (N, latent_dim)."""
        return self.model.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) → (N, 1, T, F)."""
        return self.model.decode(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, _ = batch
        parts = self.model.training_loss(x)
        if self.hparams.loss == "sum":
            parts["loss"] = parts["loss"] * x.numel()
        for name, value in parts.items():
            self.log(f"{stage}_{name}", value, on_step=False, on_epoch=True,
                     prog_bar=name == "loss", batch_size=x.shape[0])
        return parts["loss"]

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=self.hparams.lr_factor, patience=self.hparams.lr_patience)
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": sched, "monitor": self.hparams.monitor, "interval": "epoch"}}


__all__ = ['AutoencoderModule']
