"""``ema``: a target encoder that is an exponential moving average of the context encoder, with a
stop-gradient (I-JEPA, V-JEPA). The target encoder is what probes evaluate and export writes."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ...models.vit import VisionTransformer
from ..ema import ema_update_, frozen_copy_params
from ..schedules import linear
from .base import Objective, ObjectiveOutput, register


@dataclass
class EMASettings:
    """Target-encoder momentum, linear from ``start`` to ``end`` over the run (equal: constant).

    Args:
        start: momentum at step 0; None: the paper's for the run's data (I-JEPA 0.996 for images,
            V-JEPA 0.998 for clips).
        end: momentum at the last step.
    """

    start: float | None = None
    end: float = 1.0

    def __post_init__(self) -> None:
        if not all(0.0 <= v <= 1.0 for v in (self.start, self.end) if v is not None):
            raise ValueError(f"momentum must be in [0, 1], got start={self.start}, end={self.end}")


@register
class EMATarget(Objective):
    name = "ema"
    Settings = EMASettings
    evaluated = "target_encoder"
    frozen = ("target_encoder",)

    def build(self, encoder: VisionTransformer) -> dict[str, nn.Module]:
        if self.settings.start is None:
            self.settings.start = 0.998 if encoder.video else 0.996
        return {"target_encoder": copy.deepcopy(encoder).requires_grad_(False).eval()}

    def target_tokens(self, owner: nn.Module, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return owner.target_encoder(images)

    def loss(self, owner: nn.Module, prediction_loss: torch.Tensor, embeddings: list[torch.Tensor],
             step: int) -> ObjectiveOutput:
        return ObjectiveOutput(prediction_loss, {})

    def momentum(self, step: int, total_steps: int) -> float:
        return linear(step, total_steps, self.settings.start, self.settings.end)

    @torch.no_grad()
    def update(self, owner: nn.Module, momentum: float) -> None:
        # Pairs are re-read every step (cheap): FSDP re-points parameters at new views of their shards.
        target, online = frozen_copy_params(owner.encoder, owner.target_encoder)
        ema_update_(target, online, momentum)

    def after_optimizer_step(self, owner: nn.Module, step: int, total_steps: int) -> None:
        self.update(owner, self.momentum(step, total_steps))

    def schedule_logs(self, step: int, total_steps: int) -> dict[str, float]:
        return {"train/ema": self.momentum(step, total_steps)}
