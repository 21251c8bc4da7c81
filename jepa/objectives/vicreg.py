"""VICReg's variance and covariance terms (Bardes, Ponce & LeCun, 2022).

The invariance term is the JEPA prediction loss itself; these two keep the embeddings from
collapsing: every dimension keeps a standard deviation of at least ``gamma`` over the batch, and
different dimensions are decorrelated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def variance_loss(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """Mean over dimensions of ``relu(gamma - std)`` for ``z`` [N, D] (or [N, P, D]: each of P groups
    over the N samples): 0 once every std reaches gamma."""
    std = torch.sqrt(z.float().var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """Sum of squared off-diagonal covariances of ``z`` [N, D], divided by D; for [N, P, D], the
    mean of that over the P groups, each group's covariance taken over the N samples."""
    z = z.float()
    grouped = z if z.dim() == 3 else z[:, None]
    n, _, d = grouped.shape
    grouped = grouped - grouped.mean(dim=0)
    cov = torch.einsum("npi,npj->pij", grouped, grouped) / max(n - 1, 1)  # [P, D, D]
    off = cov - torch.diag_embed(torch.diagonal(cov, dim1=-2, dim2=-1))
    return off.pow(2).sum() / (d * grouped.shape[1])
