"""The JEPA pretraining LightningModule: context encoder, predictor, an anti-collapse objective
(EMA target, SIGReg or VICReg, see ``jepa.train.objective``), online probe."""

from __future__ import annotations

import collections
import copy
import logging
from dataclasses import asdict, dataclass
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from ..contract import CHECKPOINT_KEY, training_state
from ..errors import JEPAError
from ..grid import to_2tuple
from ..metrics import feature_std, rankme
from ..models.predictor import Predictor, PredictorConfig
from ..models.vit import EncoderConfig, VisionTransformer, gather_tokens, layer_normed
from ..objectives import RegressionLoss, jepa_regression_loss, motion_weights, weighted_regression_loss
from .checkpointing import check_same_architecture
from .objective import JEPAOutput, ObjectiveSpec, build_objective
from .objective.base import MaskGroup
from .optim import decay_groups
from .schedules import cosine, warmup_cosine

log = logging.getLogger("jepa")


@dataclass
class OptimConfig:
    """AdamW with warmup-cosine learning rate and cosine weight decay, counted in optimizer steps.

    Args:
        lr: peak learning rate, reached after ``warmup_steps``.
        start_lr: learning rate at step 0.
        final_lr: learning rate at the last step (``trainer.max_steps``).
        warmup_steps: length of the linear warmup.
        weight_decay: weight decay at step 0.
        final_weight_decay: weight decay at the last step.
        betas: AdamW betas.
    """

    lr: float = 1e-3
    start_lr: float = 2e-4
    final_lr: float = 1e-6
    warmup_steps: int = 0
    weight_decay: float = 0.04
    final_weight_decay: float = 0.4
    betas: tuple[float, float] = (0.9, 0.999)


# Distinct names of skipped inputs and short videos kept (and checkpointed): enough to count the
# broken files of a real dataset, bounded for one where almost every video is short.
MAX_NAMED = 10_000


class PretrainModule(pl.LightningModule):
    """JEPA pretraining: masked prediction in representation space, of images (I-JEPA) or clips
    (V-JEPA).

    A training batch holds ``inputs`` (images [B, C, H, W] or clips [B, C, T, H, W]) and ``masks``,
    a list of mask groups (context indices [B, K], target indices [B, M, T]): the context encoder runs
    once per group and the groups' losses are averaged (V-JEPA's short- and long-range masks).

    Args:
        encoder: context-encoder architecture.
        predictor: predictor architecture.
        image_size: training resolution (linked from ``data.image_size``).
        num_frames: frames per training clip (linked from the data; 1 for images).
        clip_sampling: how the training clips were cut (linked from ``data.clips``; None for images):
            recorded in checkpoints and exports so that probes cut clips the same way.
        num_classes: classes of the training data for the online probe (linked from the data;
            None disables the probe).
        loss: ``smooth_l1`` (I-JEPA), ``l1`` (V-JEPA) or ``l2``; None: the paper's for the data
            (smooth_l1 for images, l1 for clips).
        optim: optimizer and schedules.
        objective: what is trained and what prevents collapse: ``ema`` (I-JEPA's EMA target
            encoder), ``sigreg`` (SIGReg on masked prediction), ``vicreg``, or ``lejepa`` (LeJEPA's
            views, projections and SIGReg; needs ``data.views``), as a name or a mapping ``{name: sigreg, weight: 0.05, ...}``
            with that objective's settings (``jepa.train.objective``).
        probe_lr: learning rate of the online linear probe (not scheduled, no weight decay).
        views_weight: weight of the cross-view term when the data has multi-view inputs: every view's
            pooled embedding predicts the mean of the global views' target embeddings (LeJEPA).
        motion_weight: clips only: how much each target token's loss is weighted by the pixel change
            inside its tubelet (0: all tokens alike; 1: in proportion to the change; ``jepa.objectives.motion``).
        compile: ``torch.compile`` the encoders and the predictor.
        activation_checkpointing: recompute each block in the backward pass to save memory.
        monitor_every_n_steps: how often to log the collapse monitors (feature std, RankMe).
    """

    def __init__(
        self,
        encoder: EncoderConfig = EncoderConfig(),
        predictor: PredictorConfig = PredictorConfig(),
        image_size: int | tuple[int, int] = 224,
        num_frames: int = 1,
        clip_sampling: dict[str, Any] | None = None,
        num_classes: int | None = None,
        loss: RegressionLoss | None = None,
        optim: OptimConfig = OptimConfig(),
        objective: ObjectiveSpec = "ema",
        probe_lr: float = 1e-3,
        views_weight: float = 1.0,
        motion_weight: float = 0.0,
        compile: bool = False,
        activation_checkpointing: bool = False,
        monitor_every_n_steps: int = 50,
    ) -> None:
        super().__init__()
        encoder, predictor = copy.deepcopy(encoder), copy.deepcopy(predictor)
        img_size = to_2tuple(image_size)
        try:
            self.encoder = VisionTransformer.from_config(encoder, img_size, num_frames=num_frames)
            self.predictor = Predictor.from_config(predictor, self.encoder.embed_dim, self.encoder.grid_size,
                                                   self.encoder.num_heads, pos=encoder.pos)
        except ValueError as exn:
            raise JEPAError(str(exn)) from None
        if loss is None:
            loss = "l1" if num_frames > 1 else "smooth_l1"
        if loss not in ("smooth_l1", "l1", "l2"):
            raise JEPAError(f"model.loss must be smooth_l1, l1 or l2, got {loss!r}")
        self.objective = build_objective(copy.deepcopy(objective))
        # Its modules are this module's children under plain names (target_encoder.*, projector.*).
        for name, module in self.objective.modules(self.encoder).items():
            self.add_module(name, module)
        if not self.objective.uses_predictor:
            self.predictor.requires_grad_(False)
        self.probe = (
            nn.Sequential(nn.BatchNorm1d(self.encoder.embed_dim, affine=False), nn.Linear(self.encoder.embed_dim, num_classes))
            if num_classes
            else None
        )
        self.loss_kind = loss
        self.optim_cfg = copy.deepcopy(optim)
        self.probe_lr = probe_lr
        self.views_weight = views_weight
        if not 0.0 <= motion_weight <= 1.0:
            raise JEPAError(f"model.motion_weight must be between 0 and 1, got {motion_weight}")
        self.motion_weight = motion_weight
        self.use_compile = compile
        self._compiled = False
        self.monitor_every_n_steps = monitor_every_n_steps
        if activation_checkpointing:
            self.encoder.grad_checkpointing = self.predictor.grad_checkpointing = True
        # Plain types only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters(
            {
                "encoder": asdict(encoder),
                "predictor": asdict(predictor),
                "image_size": list(img_size),
                "num_frames": num_frames,
                "clip_sampling": dict(clip_sampling) if clip_sampling else None,
                "num_classes": num_classes,
                "loss": loss,
                "optim": asdict(optim),
                "objective": self.objective.hparams(),
                "probe_lr": probe_lr,
                "views_weight": views_weight,
                "motion_weight": motion_weight,
            }
        )
        self.recent_losses: collections.deque[torch.Tensor] = collections.deque(maxlen=50)
        self.skipped_count = 0
        self.skipped_examples: list[str] = []
        self.skipped_files: set[str] = set()
        self.short_videos: set[str] = set()

    # ----------------------------------------------------------------- set-up
    def setup(self, stage: str) -> None:
        if self.use_compile and not self._compiled:
            # Regional compilation: each transformer block is compiled, not the whole encoder. The
            # blocks share one graph (parameters are graph inputs), so compiling is quick, and the
            # context length that changes from batch to batch only reaches a block's sequence
            # dimension. Whole-module compile broke in the backward pass on CUDA (inductor shape
            # error once the context length changed).
            for m in self.children():
                for block in getattr(m, "blocks", ()):
                    block.compile()
            self._compiled = True

    def train(self, mode: bool = True) -> PretrainModule:
        super().train(mode)
        for name in self.objective.frozen:
            getattr(self, name).eval()  # an EMA target never uses dropout or drop-path
        return self

    @property
    def max_steps(self) -> int:
        steps = self.trainer.max_steps if self._trainer is not None else -1
        if steps is None or steps <= 0:
            raise JEPAError("set trainer.max_steps: every schedule (lr, weight decay, EMA) is derived from it")
        return steps

    def configure_optimizers(self) -> torch.optim.Optimizer:
        trained = {"encoder": self.encoder, "predictor": self.predictor}
        trained.update({n: m for n, m in self.objective.modules_of(self).items() if n not in self.objective.frozen})
        decay, no_decay = decay_groups(trained)
        groups: list[dict[str, Any]] = [
            {"params": decay, "scheduled": True, "decayed": True},
            {"params": no_decay, "scheduled": True, "decayed": False, "weight_decay": 0.0},
        ]
        if self.probe is not None:
            groups.append({"params": list(self.probe.parameters()), "lr": self.probe_lr, "weight_decay": 0.0,
                           "scheduled": False, "decayed": False})
        cfg = self.optim_cfg
        fused = self.device.type in ("cuda", "cpu")
        return torch.optim.AdamW(groups, lr=cfg.start_lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay,
                                 fused=fused)

    # ------------------------------------------------------------- schedules
    def apply_schedules(self, optimizer: torch.optim.Optimizer, step: int, total: int) -> tuple[float, float]:
        """Sets learning rate and weight decay of the scheduled groups for optimizer step ``step`` of ``total``."""
        cfg = self.optim_cfg
        lr = warmup_cosine(step, total, cfg.warmup_steps, cfg.start_lr, cfg.lr, cfg.final_lr)
        wd = cosine(step, total, cfg.weight_decay, cfg.final_weight_decay)
        for group in optimizer.param_groups:
            if group.get("scheduled"):
                group["lr"] = lr
                if group.get("decayed"):
                    group["weight_decay"] = wd
        return lr, wd

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """What follows optimizer step ``step`` of ``total_steps`` (the EMA update, for ``ema``)."""
        self.objective.after_optimizer_step(self, step, total_steps)

    # ----------------------------------------------------------------- steps
    def jepa_loss(self, inputs: torch.Tensor, masks: list[MaskGroup], step: int = 0,
                  views: dict[str, list[torch.Tensor]] | None = None) -> JEPAOutput:
        """The training loss of one batch: the objective decides what is predicted from what (masked
        tokens, other views) and what keeps the representations from collapsing
        (``Objective.training_loss``)."""
        return self.objective.training_loss(self, inputs, masks, step, views)

    def masked_prediction(self, inputs: torch.Tensor, targets: torch.Tensor,
                          masks: list[MaskGroup]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Predicts the layer-normed ``targets`` [B, N, D] (tokens of the full inputs) at each mask
        group's target positions from its context. Returns the prediction loss, averaged over the
        groups, and each group's context tokens."""
        grid = self.encoder.token_grid(inputs)
        weights = None
        if self.motion_weight > 0 and inputs.dim() == 5:
            weights = motion_weights(inputs, self.encoder.tubelet_size, self.encoder.patch_size, self.motion_weight)
        losses, contexts = [], []
        for ctx_idx, tgt_idx in masks:
            wanted = layer_normed(gather_tokens(targets, tgt_idx))
            z = self.encoder(inputs, keep=ctx_idx)
            pred = self.predictor(z, ctx_idx, tgt_idx, grid)
            if weights is None:
                losses.append(jepa_regression_loss(pred, wanted, self.loss_kind))
            else:
                w = gather_tokens(weights.unsqueeze(-1), tgt_idx)[..., 0]
                losses.append(weighted_regression_loss(pred, wanted, w, self.loss_kind))
            contexts.append(z)
        return (losses[0] if len(losses) == 1 else torch.stack(losses).mean()), contexts

    def on_train_batch_start(self, batch: dict[str, Any], batch_idx: int) -> None:
        lr, wd = self.apply_schedules(self.optimizers().optimizer, self.global_step, self.max_steps)
        # Lightning writes logged values at the steps where (step + 1) is a multiple of
        # log_every_n_steps and drops those of other steps at an epoch's end (a 24-clip dataset ends
        # an epoch every 3 steps): log on the steps that are written.
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log_dict({"train/lr": lr, "train/weight_decay": wd,
                           **self.objective.schedule_logs(self.global_step, self.max_steps)})

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        self._count_skipped(batch.get("skipped", ()))
        if len(self.short_videos) < MAX_NAMED:
            self.short_videos.update(batch.get("short", ()))
        if "source" in batch:  # the mixture component of a mixed run's batch
            self.log("data/source", float(batch["source"]))
        out = self.jepa_loss(batch["inputs"], batch["masks"], self.global_step, batch.get("views"))
        self.recent_losses.append(out.loss.detach())
        self.log("loss", out.loss, prog_bar=True)
        if out.logs:
            self.log_dict(out.logs)
        total = out.loss
        labels = batch.get("labels")
        if self.probe is not None and labels is not None:
            logits = self.probe(out.features)
            probe_loss = F.cross_entropy(logits, labels)
            total = total + probe_loss  # features are detached: this trains the probe only
            self.log("probe_acc", (logits.argmax(-1) == labels).float().mean(), prog_bar=True)
        if (self.global_step + 1) % self.monitor_every_n_steps == 0:  # a written step (see above)
            self.log_dict({"monitor/feature_std": feature_std(out.features), "monitor/rankme": rankme(out.features)})
        return total

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        step = self.global_step
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        self.after_optimizer_step(step, self.max_steps)

    def _count_skipped(self, reasons: list[str]) -> None:
        for reason in reasons:
            log.warning("skipped an input that failed to load: %s", reason)
            if len(self.skipped_examples) < 20:
                self.skipped_examples.append(reason)
            if len(self.skipped_files) < MAX_NAMED:
                self.skipped_files.add(reason.split(": ", 1)[0])
        self.skipped_count += len(reasons)

    @torch.no_grad()
    def pooled_features(self, inputs: torch.Tensor) -> torch.Tensor:
        """Average-pooled tokens of the evaluated encoder (the EMA target for ``ema``, the online
        encoder otherwise) for images or clips: the features that probes evaluate."""
        return self.evaluated_encoder.pooled(inputs)

    @property
    def evaluated_encoder(self) -> VisionTransformer:
        return getattr(self, self.objective.evaluated)

    # ----------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = training_state(torch.get_rng_state(), self.skipped_count, self.skipped_examples,
                                                    self.objective.name, self.objective.evaluated, self.encoder,
                                                    list(self.skipped_files), list(self.short_videos))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            raise JEPAError("the checkpoint to resume from was not written by jepa pretrain")
        check_same_architecture(checkpoint.get("hyper_parameters", {}), dict(self.hparams))
        torch.set_rng_state(state["torch_rng"])
        self.skipped_count = state["skipped_count"]
        self.skipped_examples = list(state["skipped_examples"])
        self.skipped_files = set(state.get("skipped_files", ()))
        self.short_videos = set(state.get("short_videos", ()))
