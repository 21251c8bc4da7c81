"""Collapse monitors computed from a batch of features (used in training and by jepa probe)."""

from __future__ import annotations

import torch


@torch.no_grad()
def feature_std(features: torch.Tensor) -> torch.Tensor:
    """Mean over dimensions of the per-dimension std of L2-normalised features [N, D].

    A collapsed encoder gives ~0; isotropic features give ~1/sqrt(D).
    """
    z = torch.nn.functional.normalize(features.float(), dim=-1)
    return z.std(dim=0).mean()


@torch.no_grad()
def rankme(features: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """RankMe (Garrido et al. 2023): exp of the entropy of the normalised singular values of [N, D].

    It is at most min(N, D); a value far below that means dimensional collapse.
    """
    s = torch.linalg.svdvals(features.float())
    p = s / (s.sum() + eps) + eps
    return torch.exp(-(p * p.log()).sum())
