"""Training the slow world model with Lightning, on the fast model's episodes and encoder: the
macro encoder and the predictor together, L1 in standard units over ``macro_steps`` macro-actions
imagined open loop (the first is one jump from a true frame, the later ones feed the model's own
predictions back, as the high-level planner does)."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import JEPAError
from .slow_model import SlowModelConfig, SlowWorldModel
from .world_data import EncodedEpisodes, WorldDataModule, draw_windows
from .world_export import read_world_config, world_id
from .world_module import LatentModelTraining


class SlowWorldModule(LatentModelTraining):
    """Trains a ``SlowWorldModel`` on windows of ``macro_steps * steps + 1`` frames.

    Args:
        predictor: the slow model's architecture (``steps`` is k).
        fast_world: the fast world model's folder (``<run_dir>/world`` of ``jepa world``): the slow model
            is trained on the same encoder and records the fast model's checksum, so the planner pairs
            them and refuses others.
        macro_steps: macro-actions imagined open loop per training window.
        lr, weight_decay, warmup_steps, seed: as ``WorldModelModule``'s.
        rep_dim, action_dim, grid, blur, encoder_id, action_mean, action_std, rep_mean, rep_std: set from
            the data (as ``jepa world``).
        fast_world_sha256: set from ``fast_world`` (recorded for resume checks).
    """

    def __init__(self, predictor: SlowModelConfig | None = None, fast_world: str = "", macro_steps: int = 2,
                 lr: float = 1e-3, weight_decay: float = 0.05, warmup_steps: int = 100, seed: int = 0,
                 rep_dim: int = 0, action_dim: int = 0, grid: int = 0, blur: float = 0.0, encoder_id: str = "",
                 action_mean: list[float] | None = None, action_std: list[float] | None = None,
                 rep_mean: list[float] | None = None, rep_std: list[float] | None = None,
                 fast_world_sha256: str = "") -> None:
        super().__init__()
        config = predictor or SlowModelConfig()
        if macro_steps < 1:
            raise JEPAError(f"model.macro_steps must be >= 1, got {macro_steps}")
        if rep_dim <= 0 or action_dim <= 0:
            raise JEPAError("the slow model needs rep_dim and action_dim (jepa world slow sets them from the data)")
        if not fast_world:
            raise JEPAError("set model.fast_world: the world/ folder of the fast world model this slow model serves")
        fast = read_world_config(fast_world)
        if fast.get("kind", "fast") != "fast":
            raise JEPAError(f"model.fast_world {fast_world} holds a {fast['kind']} world model, not a fast one")
        if encoder_id and fast["encoder_sha256"] != encoder_id:
            raise JEPAError(f"the fast world model in {fast_world} was trained on encoder {fast['encoder_sha256'][:12]}, "
                            f"not on data.encoder ({encoder_id[:12]}): give the encoder it was trained with")
        if (fast.get("grid"), fast.get("blur")) != (grid, blur):
            raise JEPAError(f"the fast world model in {fast_world} sees grid {fast.get('grid')} blur {fast.get('blur')}, "
                            f"the data grid {grid} blur {blur}: set data.grid and data.blur to the fast model's")
        fast_world_sha256 = fast_world_sha256 or world_id(fast_world)
        self.save_hyperparameters({"predictor": asdict(config), "fast_world": fast_world, "macro_steps": macro_steps,
                                   "lr": lr, "weight_decay": weight_decay, "warmup_steps": warmup_steps, "seed": seed,
                                   "rep_dim": rep_dim, "action_dim": action_dim, "grid": grid, "blur": blur,
                                   "encoder_id": encoder_id, "action_mean": action_mean, "action_std": action_std,
                                   "rep_mean": rep_mean, "rep_std": rep_std, "fast_world_sha256": fast_world_sha256})
        self.config = config
        self.world = SlowWorldModel(config, rep_dim, action_dim)
        if action_mean is not None and action_std is not None:
            self.world.set_action_stats(torch.tensor(action_mean), torch.tensor(action_std))
        if rep_mean is not None and rep_std is not None:
            self.world.set_rep_stats(torch.tensor(rep_mean), torch.tensor(rep_std))
        self.macro_steps = macro_steps
        self.recent_losses: deque[torch.Tensor] = deque(maxlen=20)
        self._starts: torch.Tensor | None = None

    @property
    def window(self) -> int:
        return self.macro_steps * self.config.steps + 1

    def loss(self, reps: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """L1 in standard units of the imagined jumps of windows reps [B, W, D], actions [B, W, A]."""
        k, m = self.config.steps, self.macro_steps
        chunks = actions[:, :m * k].reshape(actions.shape[0], m, k, actions.shape[-1])
        imagined = self.world(reps[:, 0], self.world.encode(chunks))
        target = reps[:, k:m * k + 1:k]
        return F.l1_loss(self.world.normalize(imagined), self.world.normalize(target))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        data: WorldDataModule = self.trainer.datamodule
        if self._starts is None:
            self._starts = data.train_part.window_starts(self.window)
        reps, actions = draw_windows(data.train_part, self._starts, self.window, data.batch_size, self.hparams.seed,
                                     self.global_step)
        loss = self.loss(reps.to(self.device), actions.to(self.device))
        self.recent_losses.append(loss.detach())
        self.log("train/loss", loss, prog_bar=True)
        return loss


@torch.no_grad()
def fill_bank(model: SlowWorldModel, episodes: EncodedEpisodes, seed: int = 0) -> int:
    """Puts the codes of ``bank_size`` training chunks (drawn with ``seed``, every chunk when fewer)
    into ``model.bank``; returns how many distinct chunks there were."""
    k = model.config.steps
    starts = episodes.window_starts(k)
    gen = torch.Generator().manual_seed(seed)
    rows = starts[torch.randint(len(starts), (model.config.bank_size,), generator=gen)] \
        if len(starts) > model.config.bank_size else starts[torch.arange(model.config.bank_size) % len(starts)]
    _, actions = episodes.windows(rows, k)
    model.bank.copy_(model.encode(actions))
    model.bank_actions.copy_(actions)
    return int(len(starts))


@torch.no_grad()
def macro_errors(model: SlowWorldModel, episodes: EncodedEpisodes, macro_steps: int, max_windows: int = 2048,
                 seed: int = 0) -> dict[str, Any]:
    """Held-out open-loop L1 (standard units) per macro-step 1..``macro_steps`` for the model and for
    copying the current representation (nothing moves)."""
    k = model.config.steps
    length = macro_steps * k + 1
    starts = episodes.window_starts(length)
    starts = starts[starts[:, 1] % k == 0]
    if len(starts) > max_windows:
        starts = starts[torch.randperm(len(starts), generator=torch.Generator().manual_seed(seed))[:max_windows]]
    reps, actions = episodes.windows(starts, length)
    chunks = actions[:, :macro_steps * k].reshape(len(starts), macro_steps, k, -1)
    target = model.normalize(reps[:, k::k])
    imagined = model.normalize(model(reps[:, 0], model.encode(chunks)))
    copy = model.normalize(reps[:, :1])
    return {"model": [round(float(v), 5) for v in (imagined - target).abs().mean(dim=(0, 2))],
            "copy_current": [round(float(v), 5) for v in (copy - target).abs().mean(dim=(0, 2))],
            "windows": int(len(starts)), "steps_per_macro_action": k}
