"""An encoder trained for a world model: the action-conditioned JEPA of LeWorldModel (LeWM). The
encoder and an action-conditioned predictor learn together, end to end, from episodes: the predictor
maps the representations of the last frames and the actions taken to the next frame's
representation (mean squared error), and SIGReg keeps the representations an isotropic Gaussian
over the batch, which rules out collapse without an EMA target or a stop-gradient.

Why this beside image pretraining: an image objective (I-JEPA, LeJEPA's views) learns what the
frames share; a planner needs what the actions change. On Push-T an I-JEPA encoder held nothing a
random one did not, and its world model reached 21% of the tasks; the planner with the true
simulator but scoring the same representations reached 60% (docs/push-t.md), so the representation
could serve but its dynamics could not be learned. Trained through the dynamics, the representation
keeps what moves.

The representation is the one ``Perception`` gives the world model: the encoder's tokens
average-pooled to ``grid x grid``, on frames resized and blurred as the planner's. It is
standardised over the batch before both losses (the world model standardises it over the data):
with raw units the encoder could shrink it until every prediction is trivially close. The
checkpoint is an encoder checkpoint as ``jepa export`` reads it (``encoder.`` weights, the
architecture in the ``jepa`` entry); the predictor is discarded after training and the world model
is trained again on the frozen export (``jepa world``), as for any other encoder.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F

from ..contract import CHECKPOINT_KEY, training_state
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..errors import JEPAError
from ..metrics import rankme
from ..models.vit import EncoderConfig, VisionTransformer
from ..objectives.sigreg import sigreg
from ..seeding import mix_seed
from .episode_frames import EpisodeFramesDataModule
from .perception import check_grids, pool_tokens
from .world_data import EncodedEpisodes, draw_windows
from .world_model import WorldModel, WorldModelConfig
from .world_module import LatentModelTraining

OBJECTIVE = "lewm"  # what the export's config.json names as the objective


class WorldEncoderModule(LatentModelTraining):
    """Trains ``self.encoder`` (a ViT) with ``self.world`` (the action-conditioned predictor of
    ``jepa world``) on windows of ``predictor.history + 1`` frames: teacher forcing over the window,
    plus ``sigreg_weight`` x SIGReg of every frame's representation.

    Args:
        encoder: the ViT's architecture.
        predictor: the predictor's architecture (its ``history`` sets the window).
        image_size: the encoder's input side (set from the data).
        grid: the representation's pooling grid (the world model's ``data.grid``).
        blur: the frames' blur (set from the data; recorded).
        sigreg_weight: SIGReg's weight against the prediction loss (LeWM's 0.1).
        sigreg_slices: random directions of each SIGReg test.
        lr: peak AdamW learning rate (warmup then cosine to lr / 100).
        weight_decay: AdamW weight decay (not on biases, norms and position tables).
        warmup_steps: linear warmup.
        seed: seeds the batches and SIGReg's directions (each step's a pure function of (seed, step)).
        action_dim: size of an action (set from the data).
        action_mean: per-dimension mean of the actions (set from the data).
        action_std: per-dimension standard deviation of the actions (set from the data).
    """

    def __init__(self, encoder: EncoderConfig | dict | None = None, predictor: WorldModelConfig | dict | None = None,
                 image_size: int = 64, grid: int = 2, blur: float = 0.0, sigreg_weight: float = 0.1,
                 sigreg_slices: int = 256, lr: float = 1e-3, weight_decay: float = 0.05, warmup_steps: int = 100,
                 seed: int = 0, action_dim: int = 0, action_mean: list[float] | None = None,
                 action_std: list[float] | None = None) -> None:
        super().__init__()
        # Mappings too: load_from_checkpoint passes the saved hyperparameters back as plain dicts.
        enc = EncoderConfig(**encoder) if isinstance(encoder, dict) else encoder or EncoderConfig(size="tiny", patch_size=8)
        pred = WorldModelConfig(**predictor) if isinstance(predictor, dict) else predictor or WorldModelConfig()
        if action_dim <= 0:
            raise JEPAError("the world encoder needs action_dim (jepa world encoder sets it from the data)")
        if sigreg_weight <= 0:
            raise JEPAError(f"model.sigreg_weight must be > 0 (without it the representation collapses), got {sigreg_weight}")
        self.save_hyperparameters({"encoder": asdict(enc), "predictor": asdict(pred), "image_size": image_size,
                                   "grid": grid, "blur": blur, "sigreg_weight": sigreg_weight,
                                   "sigreg_slices": sigreg_slices, "lr": lr, "weight_decay": weight_decay,
                                   "warmup_steps": warmup_steps, "seed": seed, "action_dim": action_dim,
                                   "action_mean": action_mean, "action_std": action_std})
        self.encoder = VisionTransformer.from_config(enc, image_size)
        check_grids((grid,), self.encoder.grid_size)
        self.history = pred.history
        self.world = WorldModel(pred, grid * grid * self.encoder.embed_dim, action_dim)
        if action_mean is not None and action_std is not None:
            self.world.set_action_stats(torch.tensor(action_mean), torch.tensor(action_std))
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.recent_losses: deque[torch.Tensor] = deque(maxlen=20)
        self._starts: torch.Tensor | None = None

    def represent(self, pictures: torch.Tensor) -> torch.Tensor:
        """uint8 pictures [N, 3, S, S] (``episode_frames.read_frames``) -> pooled representations [N, D],
        as ``Perception`` computes them from the exported encoder."""
        x = (pictures.float() / 255 - self.pixel_mean) / self.pixel_std
        return pool_tokens(self.encoder(x), self.encoder.grid_size, self.hparams.grid)

    def losses(self, pictures: torch.Tensor, actions: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(prediction MSE, SIGReg, copy-last MSE) of windows: pictures [B, W, 3, S, S], actions [B, W, A]."""
        b, w = pictures.shape[:2]
        raw = self.represent(pictures.flatten(0, 1))
        z = ((raw - raw.mean(0)) / (raw.std(0) + 1e-4)).view(b, w, -1)
        h = self.history
        predicted = self.world(z[:, :h], actions[:, :h])
        prediction = F.mse_loss(predicted, z[:, 1:h + 1])
        copy = F.mse_loss(z[:, :h], z[:, 1:h + 1]).detach()
        return prediction, sigreg(z.flatten(0, 1), self.hparams.sigreg_slices, generator), copy

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        data: EpisodeFramesDataModule = self.trainer.datamodule
        if self._starts is None:
            self._starts = data.train_part.window_starts(self.history + 1)
        pictures, actions = draw_windows(data.train_part, self._starts, self.history + 1, data.batch_size,
                                         self.hparams.seed, self.global_step)
        gen = torch.Generator().manual_seed(mix_seed(self.hparams.seed, self.global_step, 1))
        prediction, reg, copy = self.losses(pictures.to(self.device), actions.to(self.device), gen)
        loss = prediction + self.hparams.sigreg_weight * reg
        self.recent_losses.append(loss.detach())
        self.log_dict({"train/loss": loss, "train/prediction": prediction, "train/sigreg": reg,
                       "train/copy_last": copy}, prog_bar=True)
        return loss

    def optimized(self) -> torch.nn.Module:
        return self  # the encoder and the predictor, end to end

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The entry jepa export reads: the encoder's architecture, and that the online encoder is the one.
        checkpoint[CHECKPOINT_KEY] = training_state(torch.get_rng_state(), 0, [], OBJECTIVE, "encoder", self.encoder)

    @torch.no_grad()
    def held_out(self, episodes: EncodedEpisodes, windows: int = 256, seed: int = 0) -> dict[str, float]:
        """Prediction and copy-last MSE on held-out windows (standardised over them), and the RankMe
        of their representations (out of ``grid * grid * width``): collapse shows as a low rank."""
        starts = episodes.window_starts(self.history + 1)
        pictures, actions = draw_windows(episodes, starts, self.history + 1, min(windows, len(starts)), seed, 0)
        was = self.training
        self.eval()
        prediction, _, copy = self.losses(pictures.to(self.device), actions.to(self.device))
        reps = self.represent(pictures[:, 0].to(self.device))
        rank = rankme((reps - reps.mean(0)) / (reps.std(0) + 1e-4))  # in the units both losses use
        self.train(was)
        return {"prediction_mse": round(float(prediction), 4), "copy_last_mse": round(float(copy), 4),
                "rankme": round(float(rank), 1), "rep_dim": int(self.world.rep_dim)}
