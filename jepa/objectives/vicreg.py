"""VICReg's variance and covariance terms (Bardes, Ponce & LeCun, 2022).

The invariance term is the JEPA prediction loss itself; these two keep the embeddings from
collapsing: every dimension keeps a standard deviation of at least ``gamma`` over the batch, and
different dimensions are decorrelated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def variance_loss(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """Mean over dimensions of ``relu(gamma - std)`` for ``z`` [N, D]: 0 once every std reaches gamma."""
    std = torch.sqrt(z.float().var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """Sum of squared off-diagonal covariances of ``z`` [N, D], divided by D."""
    z = z.float()
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = (z.T @ z) / max(n - 1, 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / d
