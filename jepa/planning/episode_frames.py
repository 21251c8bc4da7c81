"""The data of ``jepa world encoder``: episode shards read once into memory as the pictures the
encoder will see (resized and blurred exactly as ``Perception`` does, kept as uint8), with their
actions; each training step draws windows of consecutive frames as a pure function of (seed, step),
as ``jepa world`` does, so that a resumed run draws the batches it would have drawn.
"""

from __future__ import annotations

import logging

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ..errors import JEPAError
from .perception import gaussian_kernel, low_passed
from .world_data import EncodedEpisodes, Steps, read_converted

log = logging.getLogger(__name__)


def read_frames(spec: str, image_size: int, blur: float, max_episodes: int | None = None) -> EncodedEpisodes:
    """Episodes of ``spec`` as uint8 pictures [T, 3, S, S] (in ``EncodedEpisodes.reps``) and actions."""
    if not blur >= 0:
        raise JEPAError(f"data.blur is a Gaussian's sigma in pixels (>= 0), got {blur}")
    kernel = gaussian_kernel(blur) if blur > 0 else None

    def pictures(frames: np.ndarray) -> torch.Tensor:
        # uint8 after the blur: 12 KB a 64 px frame, so 34,000 frames fit in 0.4 GB; rounding moves a
        # pixel by at most 1/510 from what the planner's perception computes in floats.
        x = low_passed(frames, (image_size, image_size), kernel)
        return x.mul_(255).round_().clamp_(0, 255).to(torch.uint8)

    return read_converted(spec, pictures, max_episodes)


class EpisodeFramesDataModule(pl.LightningDataModule):
    """Episode shards -> windows of (pictures, actions) for ``jepa world encoder``.

    Args:
        train: episode shards (a ``.tar`` path or brace pattern) with ``<key>.mp4`` and ``<key>.action.npy``.
        image_size: side of the encoder's square input (frames are resized to it).
        blur: Gaussian sigma (pixels at ``image_size``) the frames are low-passed with: the world
            model's ``data.blur``, so that the encoder learns on the pictures the planner will show it.
        batch_size: windows per step.
        val_fraction: share of episodes held out (the last ones) for the held-out prediction error.
        max_episodes: read at most this many episodes (None: all).
    """

    def __init__(self, train: str, image_size: int = 64, blur: float = 4.0, batch_size: int = 32,
                 val_fraction: float = 0.1, max_episodes: int | None = None) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise JEPAError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        if image_size < 1 or batch_size < 1:
            raise JEPAError(f"data.image_size and data.batch_size must be >= 1, got {image_size} and {batch_size}")
        self.batch_size = batch_size
        # Read now, once: a bad shard or a missing action.npy is named before anything runs.
        self.episodes = read_frames(train, image_size, blur, max_episodes)
        log.info("read %d episodes (%d frames) of %s", len(self.episodes.keys),
                 sum(len(f) for f in self.episodes.reps), train)
        self.train_part, self.val_part = self.episodes.split(val_fraction)

    @property
    def action_dim(self) -> int:
        return self.episodes.action_dim

    def action_stats(self) -> tuple[list[float], list[float]]:
        """Mean and standard deviation per dimension of the training episodes' actions."""
        x = torch.cat(self.train_part.actions)
        return x.mean(0).tolist(), x.std(0).tolist()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(Steps(), batch_size=None)
