"""The objective interface, its registry and the parsing of ``model.objective``."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
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
class JEPAOutput:
    """One batch's training loss, the pooled features the online probe reads and the loss's parts."""

    loss: torch.Tensor
    features: torch.Tensor  # average-pooled tokens of the evaluated encoder, no gradient
    logs: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)  # parts of the loss


# A mask group: context token indices [B, K] and target token indices [B, M, T].
MaskGroup = tuple[torch.Tensor, torch.Tensor]
Views = dict[str, list[torch.Tensor]]  # {"global": [B, C, H, W] tensors, "local": [...]}


def pooled_views(encode: Any, views: list[torch.Tensor]) -> list[torch.Tensor]:
    """Pooled embeddings [B, D] of each view tensor [B, C, (T,) H, W] (all of one size), from one
    ``encode`` call over their concatenation (a bigger batch, not one call per view)."""
    if not views:
        return []
    return list(encode(torch.cat(views)).mean(dim=1).chunk(len(views)))


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

    @property
    def uses_predictor(self) -> bool:
        """Whether the loss reaches the predictor; when it does not, the predictor is frozen (an
        untouched parameter would stop DDP's gradient reduction)."""
        return True

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

    def training_loss(self, owner: nn.Module, inputs: torch.Tensor, masks: list[MaskGroup], step: int,
                      views: Views | None = None) -> JEPAOutput:
        """One batch's loss (``PretrainModule.jepa_loss``). This one is I-JEPA's and V-JEPA's: the
        masked target tokens of the full inputs are predicted from each mask group's context
        (``owner.masked_prediction``); with ``views``, every extra view's embedding predicts the
        global views' too (``view_loss``); then ``loss`` adds what keeps the representations from
        collapsing. An objective that trains on something else overrides this."""
        h = self.target_tokens(owner, inputs)
        embeddings = h.mean(dim=1)
        prediction, contexts = owner.masked_prediction(inputs, h, masks)
        regularized = self.regularized(h, contexts, step)
        logs: dict[str, torch.Tensor] = {}
        if views and (views.get("global") or views.get("local")):
            cross, online = self.view_loss(owner, embeddings, views)
            logs["train/prediction"], logs["train/views"] = prediction.detach(), cross.detach()
            prediction = prediction + owner.views_weight * cross
            regularized += online
        out = self.loss(owner, prediction, regularized, step)
        if out.logs:
            logs = {"train/prediction": prediction.detach(), **logs, **out.logs}
        return JEPAOutput(out.loss, embeddings.detach(), logs)

    def regularized(self, tokens: torch.Tensor, contexts: list[torch.Tensor], step: int) -> list[torch.Tensor]:
        """What ``loss`` regularises, given the full inputs' target tokens [B, N, D] and each mask
        group's context tokens: embeddings with a gradient, the full inputs' pooled tokens when the
        targets carry one, else the context encoder's (sigreg/vicreg with stop-gradient targets; ema
        ignores them)."""
        if tokens.requires_grad:
            return [tokens.mean(dim=1)]
        return [z.mean(dim=1) for z in contexts]

    def view_loss(self, owner: nn.Module, main: torch.Tensor, views: Views) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Cross-view prediction: each extra view's pooled online embedding regresses onto the mean
        of the global views' pooled target embeddings (the masked image ``main`` is a global view),
        through the projector when the objective has one. Returns the loss and the online
        embeddings (the objective regularises them too)."""
        online_targets = self.evaluated == "encoder"  # targets come from the online encoder
        g, loc = views.get("global", []), views.get("local", [])
        global_targets = pooled_views(lambda x: self.target_tokens(owner, x), g)
        centre = torch.stack([main, *global_targets]).mean(0)
        online = global_targets if online_targets else pooled_views(owner.encoder, g)
        online = [*online, *pooled_views(owner.encoder, loc)]
        project = owner.projector if "projector" in self._names else nn.Identity()
        goal = project(centre)
        loss = torch.stack([F.mse_loss(project(e), goal) for e in online]).mean()
        return loss, online

    def after_optimizer_step(self, owner: nn.Module, step: int, total_steps: int) -> None:
        """Runs after optimizer step ``step`` of ``total_steps`` (the EMA update)."""

    def schedule_logs(self, step: int, total_steps: int) -> dict[str, float]:
        """Scheduled values to log at ``step`` (the EMA momentum)."""
        return {}

    def hparams(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self.settings)}


@dataclasses.dataclass
class RegularizedTargets:
    """Settings shared by the objectives without a target network. Args:
        regularize: what the regulariser sees. ``pooled``: a projection (``projector``) of the
            pooled embeddings. ``tokens``: the target tokens themselves, the tensor the predictor
            regresses onto, each sampled position tested across the batch on its own (no projector:
            the encoder cannot make its tokens easy to predict while a head alone satisfies the
            regulariser).
        positions: token positions regularised per step with ``regularize: tokens`` (drawn anew
            each step, seeded by it).
    """

    regularize: str = "pooled"
    positions: int = 16

    def __post_init__(self) -> None:
        if self.regularize not in ("pooled", "tokens"):
            raise ValueError(f"regularize must be pooled or tokens, got {self.regularize!r}")
        if self.positions < 1:
            raise ValueError(f"positions must be positive, got {self.positions}")
        if self.regularize == "tokens" and getattr(self, "stop_grad_targets", False):
            raise ValueError("regularize: tokens needs targets with a gradient (stop_grad_targets: false)")


class OnlineTargets(Objective):
    """Objectives without a target network (sigreg, vicreg): the targets are the online encoder's
    own tokens (detached with a ``stop_grad_targets`` setting), the regulariser sees a projector
    head's outputs or the target tokens themselves (``regularize``), and the online encoder is what
    is evaluated and exported."""

    evaluated = "encoder"

    def build(self, encoder: VisionTransformer) -> dict[str, nn.Module]:
        dims = self.settings.projector if self.settings.regularize == "pooled" else []
        return {"projector": projector(encoder.embed_dim, dims)}

    def regularized(self, tokens: torch.Tensor, contexts: list[torch.Tensor], step: int) -> list[torch.Tensor]:
        if self.settings.regularize == "pooled":
            return super().regularized(tokens, contexts, step)
        gen = seeded(step, salt=2, device=tokens.device)
        keep = torch.randperm(tokens.shape[1], generator=gen, device=tokens.device)[:self.settings.positions]
        return [tokens[:, keep]]  # [B, P, D]: the regulariser tests each position across the batch

    def target_tokens(self, owner: nn.Module, images: torch.Tensor) -> torch.Tensor:
        if getattr(self.settings, "stop_grad_targets", False):
            with torch.no_grad():
                return owner.encoder(images)
        return owner.encoder(images)


def _owners_of(key: str) -> str | None:
    """The objectives that have setting ``key``, as "a", "a and b" or "a, b and c"."""
    owners = sorted(n for n, cls in OBJECTIVES.items() if key in {f.name for f in dataclasses.fields(cls.Settings)})
    if not owners:
        return None
    return owners[0] if len(owners) == 1 else f"{', '.join(owners[:-1])} and {owners[-1]}"


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
            owner = _owners_of(key)
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

