"""Weighting target tokens by how much their pixels change: a small moving object against slow content.

A small JEPA on video can settle on what every context predicts (the background, a static bar) and
drop a small moving disc, which costs little of the prediction loss (Sobal et al. 2022: slow
features win). Weighting each target token's loss by the pixel change inside its tubelet makes the
tokens where something moves count more. The weights come from the pixels, not from the target
encoder, so an encoder that has already dropped the moving object cannot hide it from them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .regression import RegressionLoss, regression_distance


def motion_weights(clips: torch.Tensor, tubelet: int, patch: int, strength: float) -> torch.Tensor:
    """Per-token weights [B, N] of clips [B, C, T, H, W], tokens in (t, h, w) order.

    A token's change is the mean absolute difference between consecutive frames inside its tubelet
    and patch (the first frame takes the second's change). Weights are ``1 - strength + strength *
    change / mean change`` over the clip's tokens: their mean is 1, so the loss keeps its scale.
    """
    if clips.dim() != 5 or clips.shape[2] < 2:
        raise ValueError(f"motion weights need clips [B, C, T, H, W] of at least 2 frames, got {tuple(clips.shape)}")
    diff = (clips[:, :, 1:] - clips[:, :, :-1]).abs().mean(dim=1)
    diff = torch.cat([diff[:, :1], diff], dim=1).unsqueeze(1)  # [B, 1, T, H, W]
    change = F.avg_pool3d(diff.float(), kernel_size=(tubelet, patch, patch)).flatten(1)
    relative = change / change.mean(dim=1, keepdim=True).clamp_min(1e-8)
    return (1.0 - strength) + strength * relative


def weighted_regression_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
                             kind: RegressionLoss = "l1") -> torch.Tensor:
    """The JEPA regression loss with a weight per token: ``pred``/``target`` [..., M, D], ``weights`` [..., M]."""
    if pred.shape != target.shape or weights.shape != pred.shape[:-1]:
        raise ValueError(f"shapes differ: prediction {tuple(pred.shape)}, target {tuple(target.shape)}, "
                         f"weights {tuple(weights.shape)}")
    per = regression_distance(pred, target, kind, reduction="none")
    return (per.mean(dim=-1) * weights).mean()
