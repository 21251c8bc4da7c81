"""Objectives that compare predicted and target representations."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

RegressionLoss = Literal["smooth_l1", "l1", "l2"]


def jepa_regression_loss(pred: torch.Tensor, target: torch.Tensor, kind: RegressionLoss = "smooth_l1") -> torch.Tensor:
    """Mean per-element distance between predictions and (already layer-normed) targets.

    ``smooth_l1`` is I-JEPA's choice (beta 1), ``l1`` V-JEPA's, ``l2`` the mean squared error.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target)
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "l2":
        return F.mse_loss(pred, target)
    raise ValueError(f"unknown loss {kind!r}: choose smooth_l1, l1 or l2")
