"""Objectives that compare predicted and target representations."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

RegressionLoss = Literal["smooth_l1", "l1", "l2"]


_DISTANCES = {"smooth_l1": F.smooth_l1_loss, "l1": F.l1_loss, "l2": F.mse_loss}


def regression_distance(pred: torch.Tensor, target: torch.Tensor, kind: RegressionLoss = "smooth_l1",
                        reduction: str = "mean") -> torch.Tensor:
    """The distance ``kind`` between predictions and targets, reduced as torch's losses reduce."""
    if kind not in _DISTANCES:
        raise ValueError(f"unknown loss {kind!r}: choose smooth_l1, l1 or l2")
    return _DISTANCES[kind](pred, target, reduction=reduction)


def jepa_regression_loss(pred: torch.Tensor, target: torch.Tensor, kind: RegressionLoss = "smooth_l1") -> torch.Tensor:
    """Mean per-element distance between predictions and (already layer-normed) targets.

    ``smooth_l1`` is I-JEPA's choice (beta 1), ``l1`` V-JEPA's, ``l2`` the mean squared error.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    return regression_distance(pred, target, kind)
