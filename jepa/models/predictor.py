"""The JEPA predictor: a narrow ViT that predicts target-token representations from context tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.models.vision_transformer import Block
from torch import nn

from .pos_embed import sincos_2d, sincos_2d_on
from .vit import LayerNorm6, gather_tokens, init_vit_weights, rescale_residual_branches, run_blocks


@dataclass
class PredictorConfig:
    """Architecture of the predictor.

    Args:
        width: internal width (384 in I-JEPA).
        depth: number of blocks (12 for the full-size recipes).
        heads: attention heads; defaults to the encoder's heads when they divide ``width``.
    """

    width: int = 384
    depth: int = 12
    heads: int | None = None


class Predictor(nn.Module):
    """Maps context tokens to predictions at target positions.

    ``forward(ctx, ctx_idx, tgt_idx)`` takes context tokens [B, K, D] at patch indices ``ctx_idx``
    [B, K] and target indices ``tgt_idx`` [B, M, T] (M target blocks of T patches) and returns
    predictions [B, M, T, D]. Each target block is predicted in its own sequence (context tokens
    followed by one mask token per target patch), as in I-JEPA.
    """

    def __init__(
        self,
        embed_dim: int,
        grid_size: tuple[int, int],
        width: int = 384,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"predictor width {width} is not divisible by its {num_heads} heads")
        self.grid_size = grid_size
        self.width = width
        self.grad_checkpointing = False
        self.embed = nn.Linear(embed_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.register_buffer("pos_embed", sincos_2d(*grid_size, width), persistent=False)
        self.blocks = nn.ModuleList(
            Block(width, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, norm_layer=LayerNorm6) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.proj = nn.Linear(width, embed_dim)
        self.apply(init_vit_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        rescale_residual_branches(self.blocks)

    @classmethod
    def from_config(cls, cfg: PredictorConfig, embed_dim: int, grid_size: tuple[int, int], encoder_heads: int) -> Predictor:
        heads = cfg.heads
        if heads is None:
            heads = encoder_heads if cfg.width % encoder_heads == 0 else max(1, cfg.width // 64)
        return cls(embed_dim, grid_size, cfg.width, cfg.depth, heads)

    def position_embedding(self, grid: tuple[int, int] | None) -> torch.Tensor:
        if grid is None or grid == self.grid_size:
            return self.pos_embed
        return sincos_2d_on(*grid, self.width, self.pos_embed.device, self.pos_embed.dtype)

    def forward(
        self,
        ctx: torch.Tensor,
        ctx_idx: torch.Tensor,
        tgt_idx: torch.Tensor,
        grid: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        b, m, t = tgt_idx.shape
        pos = self.position_embedding(grid)
        x = self.embed(ctx) + pos[ctx_idx]
        # One sequence per (sample, target block): context tokens then the mask tokens of that block.
        x = x.repeat_interleave(m, dim=0)
        queries = self.mask_token + pos[tgt_idx.reshape(b * m, t)]
        x = torch.cat([x, queries], dim=1)
        x = run_blocks(self.blocks, x, self.grad_checkpointing)
        x = self.proj(self.norm(x[:, -t:]))
        return x.reshape(b, m, t, -1)


__all__ = ["Predictor", "PredictorConfig", "gather_tokens"]
