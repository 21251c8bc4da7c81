"""Training the world model with Lightning: teacher forcing plus a multi-step rollout loss, L1 on
the frozen encoder's representations (V-JEPA 2-AC's two losses)."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from ..errors import JEPAError
from ..train.schedules import warmup_cosine
from .world_data import WorldDataModule, draw_windows
from .world_model import WorldModel, WorldModelConfig


class LatentModelTraining(pl.LightningModule):
    """What the fast and the slow world model and the world encoder train with: AdamW without weight
    decay on biases, norms and position tables (of ``optimized()``), and a warmup-cosine learning rate from ``hparams`` ``lr``
    and ``warmup_steps`` down to lr / 100."""

    world: torch.nn.Module

    def optimized(self) -> torch.nn.Module:
        """What the optimizer trains: the world model (the world encoder trains itself whole)."""
        return self.world

    def configure_optimizers(self) -> torch.optim.Optimizer:
        named = list(self.optimized().named_parameters())
        decay = [p for n, p in named if p.ndim >= 2 and not n.endswith("pos")]
        rest = [p for n, p in named if p.ndim < 2 or n.endswith("pos")]
        return torch.optim.AdamW([{"params": decay}, {"params": rest, "weight_decay": 0.0}],
                                 lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        lr = warmup_cosine(self.global_step, self.trainer.max_steps, self.hparams.warmup_steps, 0.0,
                           self.hparams.lr, self.hparams.lr / 100)
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = lr


class WorldModelModule(LatentModelTraining):
    """Trains a ``WorldModel`` on windows of ``history + rollout_steps`` frames.

    Teacher forcing: the first ``history`` true frames predict each next one in a single causal pass.
    Rollout: from those ``history`` true frames the model imagines ``rollout_steps`` frames open
    loop, feeding its own predictions back, against the true ones: what planning asks of it.

    Args:
        predictor: the world model's architecture.
        rep_dim: size of a representation (set from the data).
        action_dim: size of an action (set from the data).
        rollout_steps: open-loop steps of the rollout loss.
        rollout_weight: weight of the rollout loss against teacher forcing.
        lr: peak AdamW learning rate (warmup then cosine to lr / 100).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warmup.
        seed: seeds the batches (each step's is a pure function of (seed, step)).
        grid: the representation's pooling grid (set from the data; recorded for planning).
        blur: the perception's blur (set from the data; recorded for planning).
        encoder_id: checksum of the frozen encoder (set from the data): recorded so that a world
            model is never used with another encoder.
        action_mean: per-dimension mean of the actions (set from the data).
        action_std: per-dimension standard deviation of the actions (set from the data).
        rep_mean: per-dimension mean of the representations (set from the data's training frames).
        rep_std: per-dimension standard deviation of the representations (set from the data's training frames).
    """

    def __init__(self, predictor: WorldModelConfig | None = None, rep_dim: int = 0, action_dim: int = 0, rollout_steps: int = 4, rollout_weight: float = 1.0,
                 lr: float = 1e-3, weight_decay: float = 0.05, warmup_steps: int = 100, seed: int = 0,
                 grid: int = 0, blur: float = 0.0, encoder_id: str = "", action_mean: list[float] | None = None,
                 action_std: list[float] | None = None, rep_mean: list[float] | None = None,
                 rep_std: list[float] | None = None) -> None:
        super().__init__()
        model = predictor or WorldModelConfig()
        if rollout_steps < 1:
            raise JEPAError(f"rollout_steps must be >= 1, got {rollout_steps}")
        if rep_dim <= 0 or action_dim <= 0:
            raise JEPAError("the world model needs rep_dim and action_dim (jepa world sets them from the data)")
        self.save_hyperparameters({"predictor": asdict(model), "rep_dim": rep_dim, "action_dim": action_dim,
                                   "rollout_steps": rollout_steps,
                                   "rollout_weight": rollout_weight, "lr": lr, "weight_decay": weight_decay,
                                   "warmup_steps": warmup_steps, "seed": seed, "grid": grid, "blur": blur,
                                   "encoder_id": encoder_id,
                                   "action_mean": action_mean, "action_std": action_std,
                                   "rep_mean": rep_mean, "rep_std": rep_std})
        self.config = model
        self.world = WorldModel(model, rep_dim, action_dim)
        if action_mean is not None and action_std is not None:
            self.world.set_action_stats(torch.tensor(action_mean), torch.tensor(action_std))
        if rep_mean is not None and rep_std is not None:
            self.world.set_rep_stats(torch.tensor(rep_mean), torch.tensor(rep_std))
        self.rollout_steps = rollout_steps
        self.rollout_weight = rollout_weight
        self.recent_losses: deque[torch.Tensor] = deque(maxlen=20)
        self._starts: torch.Tensor | None = None

    @property
    def window(self) -> int:
        return self.config.history + self.rollout_steps

    def losses(self, reps: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(teacher-forcing, rollout) L1 losses of windows reps [B, W, D], actions [B, W, A]."""
        h = self.config.history
        norm = self.world.normalize
        pred = self.world(reps[:, :h], actions[:, :h])
        teacher = F.l1_loss(norm(pred), norm(reps[:, 1:h + 1]))
        imagined = self.world.unroll(reps[:, :h], actions[:, :h - 1], actions[:, h - 1:h - 1 + self.rollout_steps])
        rollout = F.l1_loss(norm(imagined), norm(reps[:, h:h + self.rollout_steps]))
        return teacher, rollout

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        data: WorldDataModule = self.trainer.datamodule
        train = data.train_part
        if self._starts is None:
            self._starts = train.window_starts(self.window)
        reps, actions = draw_windows(train, self._starts, self.window, data.batch_size, self.hparams.seed,
                                     self.global_step)
        teacher, rollout = self.losses(reps.to(self.device), actions.to(self.device))
        loss = teacher + self.rollout_weight * rollout
        self.recent_losses.append(loss.detach())
        self.log_dict({"train/loss": loss, "train/teacher": teacher, "train/rollout": rollout}, prog_bar=True)
        return loss
