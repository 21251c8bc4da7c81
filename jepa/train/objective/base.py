"""The objective interface, its registry and the parsing of ``model.objective``."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from ...errors import JEPAError
from ...models.vit import VisionTransformer

# model.objective: a name ("sigreg") or a mapping with "name" and that objective's settings.
ObjectiveSpec = str | dict[str, Any]

OBJECTIVES: dict[str, type[Objective]] = {}


def register(cls: type[Objective]) -> type[Objective]:
    OBJECTIVES[cls.name] = cls
    return cls


@dataclasses.dataclass
class ObjectiveOutput:
    loss: torch.Tensor  # what the optimizer minimises
    logs: dict[str, torch.Tensor]  # its parts, for metrics.csv


class Objective:
    """How a JEPA avoids collapse: where the target representations come from, what regularises
    the embeddings, what happens after each optimizer step, and which encoder is evaluated.

    An objective owns modules (a frozen target encoder, a projector) that the LightningModule
    registers under the names ``modules()`` gives, so checkpoints name them plainly
    (``target_encoder.*``, ``projector.*``). Modules listed in ``frozen`` are never trained.
    """

    name: ClassVar[str]
    Settings: ClassVar[type]
    evaluated: ClassVar[str]  # the module name of the encoder that probes evaluate and export writes

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._names: set[str] = set()

    def modules(self, encoder: VisionTransformer) -> dict[str, nn.Module]:
        """Modules this objective adds next to the encoder and predictor (called once)."""
        built = self.build(encoder)
        self._names = set(built)
        return built

    def build(self, encoder: VisionTransformer) -> dict[str, nn.Module]:
        return {}

    frozen: ClassVar[tuple[str, ...]] = ()

    def modules_of(self, owner: nn.Module) -> dict[str, nn.Module]:
        """The modules ``modules()`` built, as registered on ``owner``."""
        return {name: getattr(owner, name) for name, _ in owner.named_children() if name in self._names}

    def target_tokens(self, owner: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Tokens [B, N, D] of the full images that the predictor's outputs are compared with."""
        raise NotImplementedError

    def loss(self, owner: nn.Module, prediction_loss: torch.Tensor, embeddings: list[torch.Tensor],
             step: int) -> ObjectiveOutput:
        """The total loss from the prediction loss and the pooled ``embeddings`` [B, D] of each view."""
        raise NotImplementedError

    def after_optimizer_step(self, owner: nn.Module, step: int, total_steps: int) -> None:
        """Runs after optimizer step ``step`` of ``total_steps`` (the EMA update)."""

    def schedule_logs(self, step: int, total_steps: int) -> dict[str, float]:
        """Scheduled values to log at ``step`` (the EMA momentum)."""
        return {}

    def hparams(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self.settings)}


class OnlineTargets(Objective):
    """Objectives without a target network (sigreg, vicreg): the targets are the online encoder's
    own tokens (detached with a ``stop_grad_targets`` setting), a projector head feeds the
    regulariser, and the online encoder is what is evaluated and exported."""

    evaluated = "encoder"

    def build(self, encoder: VisionTransformer) -> dict[str, nn.Module]:
        return {"projector": projector(encoder.embed_dim, self.settings.projector)}

    def target_tokens(self, owner: nn.Module, images: torch.Tensor) -> torch.Tensor:
        if getattr(self.settings, "stop_grad_targets", False):
            with torch.no_grad():
                return owner.encoder(images)
        return owner.encoder(images)


def _owner_of(key: str) -> str | None:
    owners = [n for n, cls in OBJECTIVES.items() if key in {f.name for f in dataclasses.fields(cls.Settings)}]
    return owners[0] if owners else None


def build_objective(spec: ObjectiveSpec) -> Objective:
    """The objective named by ``spec``; unknown names and settings end in one line naming them."""
    settings = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = settings.pop("name", "ema")
    if name not in OBJECTIVES:
        raise JEPAError(f"model.objective {name!r} is not an objective: choose one of {', '.join(sorted(OBJECTIVES))}")
    cls = OBJECTIVES[name]
    known = {f.name for f in dataclasses.fields(cls.Settings)}
    for key in settings:
        if key not in known:
            owner = _owner_of(key)
            where = f"it is a setting of {owner}" if owner else "no objective has it"
            raise JEPAError(f"model.objective.{key} is not a setting of {name} ({where}); {name}'s settings: "
                            f"{', '.join(sorted(known)) or 'none'}")
    try:
        return cls(cls.Settings(**settings))
    except (TypeError, ValueError) as exn:
        raise JEPAError(f"model.objective ({name}): {exn}") from None


def projector(in_dim: int, dims: list[int] | tuple[int, ...]) -> nn.Module:
    """MLP head ``in_dim -> dims[0] -> ... -> dims[-1]`` (GELU between layers), or the identity for
    ``dims=[]``: regularisers act on its outputs, the encoder stays as it is.

    No BatchNorm: it rescales every dimension to unit variance over the batch, so a collapsed
    encoder whose embeddings differ only by noise would still give the regulariser well-spread
    outputs (seen: RankMe of the encoder's features fell to 2 while SIGReg was satisfied)."""
    layers: list[nn.Module] = []
    prev = in_dim
    for i, d in enumerate(dims):
        layers.append(nn.Linear(prev, d))
        if i < len(dims) - 1:
            layers.append(nn.GELU())
        prev = d
    return nn.Sequential(*layers) if layers else nn.Identity()


def seeded(step: int, salt: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for step ``step`` on ``device``: random draws of an objective repeat exactly on
    resume. On the training device, so that drawing needs no host-to-device copy (each such copy
    of a pageable tensor makes the host wait for the GPU)."""
    return torch.Generator(device=device).manual_seed((step * 1_000_003 + salt) & 0x7FFF_FFFF_FFFF_FFFF)

