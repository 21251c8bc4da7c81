"""``vicreg``: VICReg's variance and covariance terms (Bardes, Ponce & LeCun, 2022) in place of an
EMA target. The targets are the online encoder's tokens of the full image (the prediction loss is
the invariance term); the variance and covariance of the projected pooled embeddings
(``regularize: pooled``) or of the target tokens themselves, position by position (``regularize:
tokens``), keep them from collapsing. The online encoder is what probes evaluate and export writes."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ...objectives import covariance_loss, variance_loss
from .base import ObjectiveOutput, OnlineTargets, RegularizedTargets, register


@dataclass
class VICRegSettings(RegularizedTargets):
    """Args (and ``regularize``, ``positions``: ``RegularizedTargets``):
        invariance: weight of the prediction loss.
        variance: weight of the variance hinge (every dimension's std at least ``gamma``).
        covariance: weight of the off-diagonal covariance penalty.
        gamma: the target standard deviation.
        projector: hidden and output widths of the MLP the two terms see with ``regularize: pooled``
            ([] for none).
    """

    invariance: float = 1.0
    variance: float = 1.0
    covariance: float = 0.04
    gamma: float = 1.0
    projector: list[int] = field(default_factory=lambda: [512, 128])
    # The target tokens by default: on a projection of pooled tokens VICReg collapsed the encoder
    # (RankMe 1.4 of 128 in 5 CIFAR-10 minutes), on the tokens it kept 31.3 and learnt (docs/objectives.md).
    regularize: str = "tokens"


@register
class VICReg(OnlineTargets):
    name = "vicreg"
    Settings = VICRegSettings

    def loss(self, owner: nn.Module, prediction_loss: torch.Tensor, embeddings: list[torch.Tensor],
             step: int) -> ObjectiveOutput:
        s = self.settings
        z = [owner.projector(e) for e in embeddings]
        var = torch.stack([variance_loss(x, s.gamma) for x in z]).mean()
        cov = torch.stack([covariance_loss(x) for x in z]).mean()
        total = s.invariance * prediction_loss + s.variance * var + s.covariance * cov
        return ObjectiveOutput(total, {"train/variance": var.detach(), "train/covariance": cov.detach()})
