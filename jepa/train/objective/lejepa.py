"""``lejepa``: LeJEPA as its references train it (Balestriero & LeCun, 2025; rbalestr-lab/lejepa's
MINIMAL.md, stable-pretraining's ``lejepa``). Every view of an image (``data.views``: the global and
local crops, each augmented) goes through the online encoder and a BatchNorm projector; each view's
projection regresses onto the mean of the global views' projections, and SIGReg acts on those SAME
projections:

    loss = (1 - weight) * invariance + weight * SIGReg

so the regulariser constrains exactly what the invariance term compares (the ``sigreg`` objective
regularises a projection of pooled tokens while the prediction acts on the tokens themselves). No
target network, no stop-gradient. I-JEPA's masked-token prediction, from the online encoder's own
tokens of the masked image, is an optional extra term (``prediction``). The online encoder is what
probes evaluate and export writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ...errors import JEPAError
from ...models.vit import VisionTransformer
from ...objectives import sigreg
from .base import JEPAOutput, MaskGroup, Objective, Views, pooled_views, register, seeded


@dataclass
class LeJEPASettings:
    """Args:
        weight: lambda, SIGReg's share of the loss (the references' 0.02).
        slices: random directions the Epps-Pulley test is sketched on (redrawn every step).
        knots: quadrature points of the Epps-Pulley integral over [-t_max, t_max] (the references:
            17 on [0, 3], doubled by symmetry: 33 here).
        t_max: where the integral stops.
        projector: widths of the projector's layers; BatchNorm and ReLU after every one but the last
            (the references': 2048-2048-k, scaled here to small encoders).
        prediction: weight of I-JEPA's masked-token prediction added to the loss (0: views alone).
    """

    weight: float = 0.02
    slices: int = 256
    knots: int = 33
    t_max: float = 3.0
    projector: list[int] = field(default_factory=lambda: [512, 512, 128])
    prediction: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {self.weight}")
        if self.slices < 1 or self.knots < 2 or not self.t_max > 0:
            raise ValueError(f"slices >= 1, knots >= 2 and t_max > 0 are needed, got {self.slices}, {self.knots}, "
                             f"{self.t_max}")
        if not self.projector:
            raise ValueError("the projector needs at least one layer")
        if self.prediction < 0:
            raise ValueError(f"prediction must be >= 0, got {self.prediction}")


def batchnorm_projector(in_dim: int, dims: list[int]) -> nn.Sequential:
    """``in_dim -> dims[0] -> ... -> dims[-1]``, BatchNorm1d and ReLU after every layer but the last
    (the references' projector). Here BatchNorm is safe where it was not for ``sigreg``: the
    invariance term and SIGReg see the same normalised outputs, so a collapsed encoder cannot
    satisfy one while the projector alone satisfies the other."""
    layers: list[nn.Module] = []
    prev = in_dim
    for i, d in enumerate(dims):
        layers.append(nn.Linear(prev, d))
        if i < len(dims) - 1:
            layers += [nn.BatchNorm1d(d), nn.ReLU()]
        prev = d
    return nn.Sequential(*layers)


@register
class LeJEPA(Objective):
    name = "lejepa"
    Settings = LeJEPASettings
    evaluated = "encoder"

    def build(self, encoder: VisionTransformer) -> dict[str, nn.Module]:
        return {"projector": batchnorm_projector(encoder.embed_dim, self.settings.projector)}

    @property
    def uses_predictor(self) -> bool:
        return self.settings.prediction > 0

    def target_tokens(self, owner: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return owner.encoder(images)

    def training_loss(self, owner: nn.Module, inputs: torch.Tensor, masks: list[MaskGroup], step: int,
                      views: Views | None = None) -> JEPAOutput:
        s = self.settings
        g = (views or {}).get("global", [])
        if not g:
            raise JEPAError("model.objective lejepa trains on views: set data.views.global_views (2 in the references) "
                            "and data.views.local_views")
        loc = (views or {}).get("local", [])
        pooled = [*pooled_views(owner.encoder, g), *pooled_views(owner.encoder, loc)]
        # One projector call over every view: BatchNorm's statistics are those of all views together.
        z = owner.projector(torch.cat(pooled)).view(len(pooled), -1, s.projector[-1])  # [V, B, K]
        invariance = (z[:len(g)].mean(0) - z).square().mean()
        gen = seeded(step, salt=1, device=z.device)
        reg = torch.stack([sigreg(v, s.slices, gen, knots=s.knots, t_max=s.t_max) for v in z]).mean()
        loss = (1 - s.weight) * invariance + s.weight * reg
        logs = {"train/invariance": invariance.detach(), "train/sigreg": reg.detach()}
        if s.prediction > 0:
            prediction, _ = owner.masked_prediction(inputs, owner.encoder(inputs), masks)
            loss = loss + s.prediction * prediction
            logs["train/prediction"] = prediction.detach()
        # The online probe reads the first global view: an augmented image like the ones trained on.
        return JEPAOutput(loss, pooled[0].detach(), logs)
