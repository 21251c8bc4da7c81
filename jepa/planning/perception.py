"""Perception: a frozen exported encoder turns frames into the representation the world model
works on. The encoder is loaded with ``jepa.load_encoder`` and never trained here.

The representation is the encoder's patch tokens average-pooled to a ``grid x grid`` grid and
flattened (``grid=1`` is the usual pooled feature). A small grid rather than every token: the
planner sends hundreds of candidates through the predictor per iteration, and a per-frame vector
keeps that one token per frame; rather than the single pooled vector: pooling everything
averages away *where* things are, which is what navigation needs (README: "Planning" measures
both). No learned projection on top: trained with the predictor, it could shrink to a constant
that makes every future trivially predictable.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import JEPAError
from ..export import FrozenEncoder, load_encoder


class Perception:
    """``encode(frames uint8 [N, H, W, 3]) -> [N, grid * grid * D]`` with a frozen encoder."""

    def __init__(self, encoder: FrozenEncoder, grid: int = 2, batch_size: int = 256) -> None:
        if encoder.video:
            raise JEPAError("the planning agent perceives single frames: give it an image encoder export, not a video one")
        gh, gw = (s // encoder.patch_size for s in encoder.img_size)
        if gh % grid or gw % grid:
            raise JEPAError(f"representation grid {grid} does not divide the encoder's {gh}x{gw} token grid")
        self.encoder = encoder
        self.grid = grid
        self.batch_size = batch_size
        self.token_grid = (gh, gw)
        self.rep_dim = grid * grid * encoder.embed_dim

    @classmethod
    def load(cls, directory: str | Path, grid: int = 2) -> Perception:
        return cls(load_encoder(directory), grid)

    @property
    def encoder_id(self) -> str:
        """What a world model records to refuse another encoder: the export's weight checksum."""
        return str(self.encoder.config["sha256"])

    def _prepare(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
        if tuple(x.shape[-2:]) != tuple(self.encoder.img_size):
            x = F.interpolate(x, size=tuple(self.encoder.img_size), mode="bilinear", antialias=True, align_corners=False)
        return self.encoder.normalize(x)

    @torch.no_grad()
    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, len(frames), self.batch_size):
            tokens = self.encoder(self._prepare(frames[i:i + self.batch_size]))
            b, _, d = tokens.shape
            grid = tokens.transpose(1, 2).reshape(b, d, *self.token_grid)
            out.append(F.adaptive_avg_pool2d(grid, self.grid).flatten(1))
        return torch.cat(out)


def cache_key(perception: Perception, spec: str, extra: dict | None = None) -> str:
    """Names a cache of encoded episodes: the encoder's weights, the pooling and the data."""
    text = json.dumps({"encoder": perception.encoder_id, "grid": perception.grid, "spec": spec, **(extra or {})},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
