"""Surprise as V-JEPA measures it: how badly a frozen JEPA predicts what comes next in a clip.

Windows of the encoder's clip length slide over a clip with a stride of a few frames. In each window
every token of the first C frames is context, encoded by the context encoder; the predictor
predicts every token of the remaining frames; the targets are the target encoder's tokens of the
whole window, layer-normed, as in training. A window's surprise is the L1 error averaged over those
tokens; a clip gets one value per window, a time series (Garrido et al. 2025, read from
facebookresearch/jepa-intuitive-physics).

A clip is scored alone, always in one batch of its own windows, so the same clip gets exactly the same
surprise whatever else is scored: twins differ only where their frames do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..contract import build_encoder, build_predictor
from ..data.clip_transforms import normalize_clip
from ..errors import JEPAError
from ..export import FrozenEncoder, FrozenPredictor
from ..models.vit import gather_tokens, layer_normed


@dataclass(frozen=True)
class Windows:
    """How windows slide over a clip: ``length`` frames (the encoder's clip length), ``stride``
    frames apart, the first ``context`` frames of each the context."""

    length: int
    stride: int
    context: int

    def starts(self, num_frames: int) -> list[int]:
        return list(range(0, num_frames - self.length + 1, self.stride))


class SurpriseModel:
    """Scores clips with a frozen JEPA (or, with ``copy_last``, by copying the last context frame's
    target tokens forward: a predictor with no physics, which still flags what vanishes or jumps).

    Args:
        jepa: the exported encoders and predictor.
        windows: the sliding windows (their length must be the encoder's clip length).
        copy_last: predict each target frame's tokens as the last context frame's.
        device: where to run.
    """

    def __init__(self, jepa: FrozenPredictor, windows: Windows, copy_last: bool = False, device: str = "cpu") -> None:
        encoder = jepa.target
        if not encoder.video:
            raise JEPAError("surprise needs a video encoder: this export is an image encoder")
        tubelet = encoder.tubelet_size
        if windows.length != encoder.num_frames:
            raise JEPAError(f"windows of {windows.length} frames, but the encoder takes clips of {encoder.num_frames}")
        if windows.context % tubelet or not tubelet <= windows.context < windows.length:
            raise JEPAError(f"--context-frames {windows.context} must be a multiple of the tubelet size {tubelet} "
                            f"and shorter than the window ({windows.length} frames)")
        self.jepa, self.windows, self.copy_last, self.device = jepa, windows, copy_last, device
        self.mean, self.std = encoder.mean, encoder.std
        self.image_size = tuple(encoder.img_size)
        t, h, w = encoder.vit.grid_size
        per_frame = h * w
        context_slices = windows.context // tubelet
        self.grid = (t, h, w)
        self.context_idx = torch.arange(context_slices * per_frame, device=device)
        self.target_idx = torch.arange(context_slices * per_frame, t * per_frame, device=device)
        # copy-last: the token at (row, col) of the last context slice, for every target token.
        last = (context_slices - 1) * per_frame
        self.copy_idx = last + (self.target_idx % per_frame)

    def tensor(self, clip: np.ndarray) -> torch.Tensor:
        """uint8 frames [T, H, W, 3] at the encoder's resolution -> normalised [3, T, H, W]."""
        if tuple(clip.shape[1:3]) != self.image_size:
            raise JEPAError(f"clips are {clip.shape[2]}x{clip.shape[1]} px but the encoder takes "
                            f"{self.image_size[1]}x{self.image_size[0]}")
        return normalize_clip(torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2), self.mean, self.std)

    @torch.no_grad()
    def series(self, clip: np.ndarray) -> np.ndarray:
        """The surprise of every window of ``clip`` (uint8 [T, H, W, 3]), float64 [num_windows]."""
        starts = self.windows.starts(len(clip))
        if not starts:
            raise JEPAError(f"a clip of {len(clip)} frames is shorter than one window ({self.windows.length} frames)")
        x = self.tensor(clip).to(self.device)
        batch = torch.stack([x[:, s:s + self.windows.length] for s in starts])
        n = len(starts)
        tokens = self.jepa.target(batch)
        targets = layer_normed(gather_tokens(tokens, self.target_idx.expand(n, -1)))
        if self.copy_last:
            pred = layer_normed(gather_tokens(tokens, self.copy_idx.expand(n, -1)))
        else:
            ctx = self.context_idx.expand(n, -1)
            z = self.jepa.context.vit(batch, keep=ctx)
            pred = self.jepa.predictor(z, ctx, self.target_idx.expand(n, 1, -1), self.grid)[:, 0]
        return (pred - targets).abs().mean(dim=(1, 2)).double().cpu().numpy()


def random_jepa(like: FrozenPredictor, seed: int, device: str = "cpu") -> FrozenPredictor:
    """The same architecture at random weights (seeded): the context encoder is the target encoder,
    as an EMA target is at the start of training."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vit = build_encoder(like.config)
        predictor: nn.Module = build_predictor(like.config["predictor"], vit)
    encoder = FrozenEncoder(vit, like.config).to(device)
    return FrozenPredictor(encoder, encoder, predictor.requires_grad_(False).eval().to(device), like.config)
