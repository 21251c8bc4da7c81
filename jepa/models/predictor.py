"""The JEPA predictor: a narrow ViT that predicts target-token representations from context tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .pos_embed import sincos_grid, sincos_grid_on
from .rope import rope_angles, token_coords
from .vit import as_3d, gather_tokens, init_vit_weights, make_blocks, rescale_residual_branches, run_blocks


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

    ``forward(ctx, ctx_idx, tgt_idx)`` takes context tokens [B, K, D] at token indices ``ctx_idx``
    [B, K] and target indices ``tgt_idx`` [B, M, T] (M target blocks of T tokens) and returns
    predictions [B, M, T, D]. Each target block is predicted in its own sequence (context tokens
    followed by one mask token per target token), as in I-JEPA; V-JEPA's masks give one block
    (M = 1), the union of a group's blocks. Positions follow the encoder's: sin-cos added to the
    tokens of a (rows, cols) or (time, rows, cols) grid, or rotary (``pos="rope"``).
    """

    def __init__(
        self,
        embed_dim: int,
        grid_size: tuple[int, ...],
        width: int = 384,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        pos: str = "sincos",
    ) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"predictor width {width} is not divisible by its {num_heads} heads")
        self.grid_size = tuple(grid_size)
        self.width = width
        self.num_heads = num_heads
        self.pos = pos
        self.grad_checkpointing = False
        self.embed = nn.Linear(embed_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        if pos == "sincos":
            self.register_buffer("pos_embed", sincos_grid(self.grid_size, width), persistent=False)
        self.blocks = make_blocks(pos, width, depth, num_heads, mlp_ratio, qkv_bias)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.proj = nn.Linear(width, embed_dim)
        self.apply(init_vit_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        rescale_residual_branches(self.blocks)

    @classmethod
    def from_config(cls, cfg: PredictorConfig, embed_dim: int, grid_size: tuple[int, ...], encoder_heads: int,
                    pos: str = "sincos") -> Predictor:
        heads = cfg.heads
        if heads is None:
            heads = encoder_heads if cfg.width % encoder_heads == 0 else max(1, cfg.width // 64)
        return cls(embed_dim, grid_size, cfg.width, cfg.depth, heads, pos=pos)

    def position_embedding(self, grid: tuple[int, ...] | None) -> torch.Tensor:
        if grid is None or tuple(grid) == self.grid_size:
            return self.pos_embed
        return sincos_grid_on(tuple(grid), self.width, self.pos_embed.device, self.pos_embed.dtype)

    def forward(
        self,
        ctx: torch.Tensor,
        ctx_idx: torch.Tensor,
        tgt_idx: torch.Tensor,
        grid: tuple[int, ...] | None = None,
    ) -> torch.Tensor:
        b, m, t = tgt_idx.shape
        # One sequence per (sample, target block): context tokens then the mask tokens of that block.
        x = self.embed(ctx).repeat_interleave(m, dim=0)
        queries = self.mask_token.expand(b * m, t, -1)
        flat_tgt = tgt_idx.reshape(b * m, t)
        rope = None
        if self.pos == "sincos":
            pos = self.position_embedding(grid)
            x = x + pos[ctx_idx].repeat_interleave(m, dim=0)
            queries = queries + pos[flat_tgt]
        else:
            idx = torch.cat([ctx_idx.repeat_interleave(m, dim=0), flat_tgt], dim=1)
            coords = token_coords(as_3d(tuple(grid or self.grid_size)), idx, x.device)
            rope = rope_angles(coords, self.width // self.num_heads)
        x = torch.cat([x, queries], dim=1)
        x = run_blocks(self.blocks, x, self.grad_checkpointing, rope)
        x = self.proj(self.norm(x[:, -t:]))
        return x.reshape(b, m, t, -1)


__all__ = ["Predictor", "PredictorConfig", "gather_tokens"]
