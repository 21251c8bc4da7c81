"""``sigreg``: LeJEPA's objective (Balestriero & LeCun, 2025). No target network and no
stop-gradient: the targets are the online encoder's own tokens of the full image, and SIGReg pushes
the projected pooled embeddings (``regularize: pooled``) or the target tokens themselves, position by
position (``regularize: tokens``), towards an isotropic Gaussian. The
online encoder is what probes evaluate and export writes."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ...objectives import sigreg
from .base import ObjectiveOutput, OnlineTargets, RegularizedTargets, register, seeded


@dataclass
class SIGRegSettings(RegularizedTargets):
    """Args (and ``regularize``, ``positions``: ``RegularizedTargets``):
        weight: LeJEPA's lambda: loss = (1 - weight) * prediction + weight * SIGReg.
        slices: random directions the Epps-Pulley test is sketched on (resampled every step).
        projector: hidden and output widths of the MLP whose outputs SIGReg sees ([] for none).
        stop_grad_targets: detach the target tokens (LeJEPA does not); SIGReg then acts on the
            context encoder's pooled embeddings. About half the cost of a step (no backward
            through the full images).
    """

    weight: float = 0.05
    slices: int = 256
    projector: list[int] = field(default_factory=lambda: [512, 128])
    stop_grad_targets: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {self.weight}")
        if self.slices < 1:
            raise ValueError(f"slices must be positive, got {self.slices}")


@register
class SIGReg(OnlineTargets):
    name = "sigreg"
    Settings = SIGRegSettings

    def loss(self, owner: nn.Module, prediction_loss: torch.Tensor, embeddings: list[torch.Tensor],
             step: int) -> ObjectiveOutput:
        gen = seeded(step, salt=1, device=embeddings[0].device)
        reg = torch.stack([sigreg(owner.projector(e), self.settings.slices, gen) for e in embeddings]).mean()
        w = self.settings.weight
        return ObjectiveOutput((1 - w) * prediction_loss + w * reg, {"train/sigreg": reg.detach()})
