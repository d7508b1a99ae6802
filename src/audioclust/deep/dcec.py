"""DCEC's clustering objective: reconstruction plus KL(P || Q) of the Student-t soft assignment."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from audioclust.deep.components.clustering_layer import (
    ClusteringLayer,
    target_distribution,
)

log = logging.getLogger(__name__)


#: columns of :attr:`DCECResult.history`
HISTORY_COLUMNS = ["iteration", "delta_label", "n_clusters", "loss", "recon", "kl"]


class DCECModule(pl.LightningModule):
    """Joint training of a pre-trained autoencoder and a :class:`ClusteringLayer`.

    Every ``update_interval`` batches (and before the first) the soft assignments Q of
    the WHOLE dataset are computed, their target P fixed until the next update, and the
    share of labels (argmax Q) that changed since the previous update recorded; when it
    is below ``tol``, or at most ``tol_files`` labels changed (0: no such floor), after the first update,
    training stops. Loss per batch:
    MSE(x̂, x) + γ · KL(P_batch ‖ Q_batch) (``batchmean``), Adam.

    Nothing is read back to the host between updates: Q and P are computed from ``images``
    on the training device, each batch looks its target up by its device-side indices, and
    the loss terms are summed there; each update reads them once (its history row, also
    logged to the trainer's loggers).

    Collapse guard: the self-training target favours confident clusters, and a weak
    embedding can let some clusters empty out. When an update finds fewer than K
    non-empty clusters, training stops and the weights, centres and labels of the last
    update with K non-empty clusters are restored (``stopped_by = "collapse"``).

    Parameters
    ----------
    model : the autoencoder (trained in place: pass a copy to keep the original).
    centers : initial centres of shape (K, latent_dim), e.g. K-Means on the embedding.
    images : every sample, in dataset order (for Q and P), shape (n_samples, ...); best on the
        training device (:meth:`audioclust.deep.data.FeaturesDataset.images_on`), else moved
        there chunk by chunk at each update.
    initial_labels : labels of shape (n_samples,) the first update is compared with.
    gamma, update_interval, tol, tol_files, alpha : see the ``autoencoder`` config section.
    lr : Adam learning rate (the config's ``dcec_lr``).
    eval_batch_size : samples per forward pass when computing Q over every sample.

    Attributes
    ----------
    labels : ndarray of shape (n_samples,), the labels of the latest update.
    history : list of dicts ``iteration, delta_label, n_clusters, loss, recon, kl``
        (``n_clusters``: non-empty clusters; losses: mean over the batches since the
        previous update, NaN at iteration 0).
    stopped_by : ``"tol"`` (under ``tol`` or within ``tol_files``), ``"collapse"`` or ``"max_iter"``.
    restored_iteration : the update restored by the collapse guard (None when not triggered).
    """

    def __init__(self, model: nn.Module, centers: np.ndarray, images: torch.Tensor, initial_labels: np.ndarray,
                 gamma: float = 0.1, lr: float = 1e-3, update_interval: int = 100, tol: float = 0.001,
                 tol_files: int = 0, alpha: float = 1.0, eval_batch_size: int = 256) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "centers", "images", "initial_labels"])
        self.model = model
        centers = np.asarray(centers, dtype=np.float32)
        self.clustering = ClusteringLayer(centers.shape[0], centers.shape[1], alpha=alpha, centers=centers)
        self.images = images
        self.labels = np.asarray(initial_labels).copy()
        self.changed = 0   # labels changed at the latest update
        self.history: list[dict[str, float]] = []
        self.stopped_by = "max_iter"
        self.restored_iteration: int | None = None
        self._target: torch.Tensor | None = None
        self._loss_sum: torch.Tensor | None = None   # (loss, recon, kl) summed on the device since the last update
        self._loss_count = 0
        self._last_full: tuple[int, dict[str, torch.Tensor], np.ndarray] | None = None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, T, F) → (N, latent_dim)."""
        return self.model.encode(x)

    @torch.no_grad()
    def embed_all(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The embedding (n_samples, latent_dim) and Q (n_samples, K) of every sample, in dataset order,
        on the module's device (eval mode)."""
        was_training = self.training
        self.eval()
        try:
            z = torch.cat([self.model.encode(x.to(self.device, non_blocking=True))
                           for x in self.images.split(self.hparams.eval_batch_size)])
        finally:
            self.train(was_training)
        return z, self.clustering(z)

    def soft_assignments(self) -> torch.Tensor:
        """Q of every sample, shape (n_samples, K), in dataset order (on the module's device)."""
        return self.embed_all()[1]

    def update_targets(self) -> float:
        """Recompute Q and P over the whole dataset; record and return the share of changed labels."""
        q = self.soft_assignments()
        self._target = target_distribution(q)
        labels = q.argmax(dim=1).cpu().numpy()  # the one read-back of an update
        self.changed = int(np.sum(labels != self.labels))
        delta = self.changed / len(labels)
        self.labels = labels
        n_clusters = len(np.unique(labels))
        if n_clusters == q.shape[1]:
            state = {k: v.detach().clone() for k, v in self.state_dict().items()}
            self._last_full = (int(self.global_step), state, labels)
        loss, recon, kl = ((self._loss_sum / self._loss_count).tolist() if self._loss_count
                           else (math.nan, math.nan, math.nan))
        self._loss_sum, self._loss_count = None, 0
        row = {"iteration": int(self.global_step), "delta_label": delta, "n_clusters": n_clusters,
               "loss": loss, "recon": recon, "kl": kl}
        self.history.append(row)
        for logger in self.loggers:
            logger.log_metrics({"dcec_loss": loss, "dcec_recon": recon, "dcec_kl": kl, "delta_label": delta,
                                "n_clusters": n_clusters}, step=row["iteration"])
        log.debug("DCEC iteration %d: %.4f%% labels changed", self.global_step, 100 * delta)
        return delta

    @property
    def collapsed(self) -> bool:
        """Whether the latest update left some of the K clusters empty."""
        return bool(self.history) and self.history[-1]["n_clusters"] < len(self.clustering.centers)

    def restore_last_full(self) -> None:
        """Go back to the weights, centres and labels of the last update with K non-empty clusters."""
        if self._last_full is None:
            return
        iteration, state, labels = self._last_full
        self.load_state_dict(state)
        self.labels = labels
        self.restored_iteration = iteration
        log.warning("DCEC: %d of %d clusters left at iteration %d; restored the state of iteration %d",
                    self.history[-1]["n_clusters"], len(self.clustering.centers), self.global_step, iteration)

    def _settled(self, delta: float) -> bool:
        """Whether the latest update changed few enough labels to stop: under ``tol``, or at most ``tol_files``
        (0: no floor)."""
        floor = self.hparams.tol_files
        return delta < self.hparams.tol or (floor > 0 and self.changed <= floor)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        if self.global_step % self.hparams.update_interval == 0:
            delta = self.update_targets()
            if self.collapsed and self._last_full is not None:
                self.restore_last_full()
                self.stopped_by = "collapse"
            elif self.global_step > 0 and self._settled(delta):
                self.stopped_by = "tol"
            else:
                return None
            self.trainer.should_stop = True
            return -1
        return None

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        x, idx = batch
        z = self.model.encode(x)
        recon = F.mse_loss(self.model.decode(z), x)
        q = self.clustering(z)
        p = self._target[idx.to(self._target.device)]
        kl = F.kl_div(q.clamp_min(1e-12).log(), p, reduction="batchmean")
        loss = recon + self.hparams.gamma * kl
        parts = torch.stack([loss, recon, kl]).detach()
        self._loss_sum = parts if self._loss_sum is None else self._loss_sum + parts
        self._loss_count += 1
        return {"loss": loss, "recon": parts[1], "kl": parts[2]}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@dataclass
class DCECResult:
    """What :func:`run_dcec` returns.

    labels : ndarray (n_samples,), argmax of the final Q, in dataset order (K clusters
        non-empty, unless the very first assignment already left one empty: a warning is
        logged then).
    q : ndarray (n_samples, K), the final soft assignments.
    embedding : ndarray (n_samples, latent_dim), the final (fine-tuned) embedding.
    kmeans_labels : ndarray (n_samples,), the K-Means labels DCEC starts from.
    history : DataFrame with :data:`HISTORY_COLUMNS` (``iteration, delta_label, n_clusters,
        loss, recon, kl``), one row per target update, the collapsed one included.
    stopped_by : ``"tol"``, ``"collapse"`` (the state of the last update with K non-empty
        clusters was restored) or ``"max_iter"``.
    iterations : batches trained up to the returned state (the restored update after a collapse).
    seconds : wall time of the K-Means initialisation and the training.
    module : the trained :class:`DCECModule`.
    """

    labels: np.ndarray
    q: np.ndarray
    embedding: np.ndarray
    kmeans_labels: np.ndarray
    history: pd.DataFrame
    stopped_by: str
    iterations: int
    seconds: float
    module: DCECModule


__all__ = ['DCECModule', 'DCECResult']
