"""Patch embedding for images [B, C, H, W] and clips [B, C, T, H, W] (tubelets, as V-JEPA)."""

from __future__ import annotations

import torch
from torch import nn

from ..grid import clip_grid, patch_grid


class PatchEmbed(nn.Module):
    """Linear embedding of non-overlapping patches (images) or tubelets (clips).

    An image model (``video=False``) holds a ``Conv2d`` named ``proj``, as timm's ViT, so its
    weights load into timm. A video model holds a ``Conv3d`` over ``tubelet_size`` frames; an image
    given to it is a clip of one tubelet, its frame repeated to the tubelet depth (V-JEPA 2).

    Args:
        in_chans: input channels.
        embed_dim: token width.
        patch_size: side of the square patches, in pixels.
        tubelet_size: frames per token (video models).
        video: build the 3-D (tubelet) embedding.
    """

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, tubelet_size: int = 1,
                 video: bool = False) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.video = video
        if video:
            self.proj: nn.Module = nn.Conv3d(in_chans, embed_dim, kernel_size=(tubelet_size, patch_size, patch_size),
                                             stride=(tubelet_size, patch_size, patch_size))
        else:
            if tubelet_size != 1:
                raise ValueError(f"an image encoder has tubelet size 1, got {tubelet_size}")
            self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def grid(self, shape: torch.Size | tuple[int, ...]) -> tuple[int, ...]:
        """Token grid of an input of ``shape``: (rows, cols) for an image model, (time, rows, cols)
        for a video model (an image is one time step)."""
        if len(shape) == 4:
            hw = patch_grid(tuple(shape[-2:]), self.patch_size)
            return (1, *hw) if self.video else hw
        if len(shape) == 5:
            if not self.video:
                raise ValueError(f"an image encoder got a clip of shape {tuple(shape)}: use a video model "
                                 "(model.num_frames > 1) for video data")
            return clip_grid(shape[2], tuple(shape[-2:]), self.patch_size, self.tubelet_size)
        raise ValueError(f"expected images [B, C, H, W] or clips [B, C, T, H, W], got shape {tuple(shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens [B, N, D] in row-major (time, row, column) order (``grid`` checks the shape first:
        the encoder calls it before embedding)."""
        if self.video and x.dim() == 4:
            x = x.unsqueeze(2).expand(-1, -1, self.tubelet_size, -1, -1)
        return self.proj(x).flatten(2).transpose(1, 2)
