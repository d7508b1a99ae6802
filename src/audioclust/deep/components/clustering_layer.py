"""The clustering layer of DEC/DCEC: Student-t soft assignment to learned centres, and the
sharpened target distribution it is trained towards.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- DCEC

class ClusteringLayer(nn.Module):
    """Student's t soft assignment of embeddings to trainable centres (DEC/DCEC).

    q_ij = (1 + ||z_i − μ_j||² / α)^(−(α+1)/2), normalised so that Σ_j q_ij = 1.

    Parameters
    ----------
    n_clusters : K.
    latent_dim : d.
    alpha : degrees of freedom of the Student's t kernel.
    centers : optional initial centres of shape (K, d) (else Xavier-uniform).
    """

    def __init__(self, n_clusters: int, latent_dim: int, alpha: float = 1.0,
                 centers: np.ndarray | torch.Tensor | None = None) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.centers = nn.Parameter(torch.empty(n_clusters, latent_dim))
        if centers is None:
            nn.init.xavier_uniform_(self.centers)
        else:
            with torch.no_grad():
                self.centers.copy_(torch.as_tensor(np.asarray(centers), dtype=torch.float32))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(N, d) → q of shape (N, K), rows summing to 1."""
        dist2 = torch.cdist(z, self.centers).pow(2) if z.shape[0] > 0 else z.new_zeros(0, len(self.centers))
        q = (1.0 + dist2 / self.alpha).pow(-(self.alpha + 1.0) / 2.0)
        return q / q.sum(dim=1, keepdim=True)


def target_distribution(q: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """DEC's auxiliary target p_ij = (q_ij² / f_j) / Σ_j' (q_ij'² / f_j'), f_j = Σ_i q_ij.

    Squaring sharpens confident assignments; dividing by the cluster frequency f_j keeps
    large clusters from absorbing the rest.

    Parameters
    ----------
    q : (N, K) soft assignments (Tensor or ndarray; the same type is returned).
    """
    if isinstance(q, np.ndarray):
        return target_distribution(torch.from_numpy(q)).numpy()
    weight = q.pow(2) / q.sum(dim=0)
    return weight / weight.sum(dim=1, keepdim=True)


__all__ = ['ClusteringLayer', 'target_distribution']
