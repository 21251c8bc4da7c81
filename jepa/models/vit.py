"""Vision Transformer encoder for JEPA: patch tokens, no class token, fixed 2-D sin-cos positions.

Blocks are timm's (pre-norm, SDPA attention) so that weights load into timm's VisionTransformer.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..grid import patch_grid, to_2tuple
from .pos_embed import sincos_2d, sincos_2d_on

# LayerNorm with eps 1e-6, as in timm's ViT and the I-JEPA code.
LayerNorm6 = functools.partial(nn.LayerNorm, eps=1e-6)

# name: (width, depth, heads, mlp_ratio). Standard ViT sizes; giant is I-JEPA's ViT-g (1408 wide, 40 deep).
VIT_SIZES: dict[str, tuple[int, int, int, float]] = {
    "tiny": (192, 12, 3, 4.0),
    "small": (384, 12, 6, 4.0),
    "base": (768, 12, 12, 4.0),
    "large": (1024, 24, 16, 4.0),
    "huge": (1280, 32, 16, 4.0),
    "giant": (1408, 40, 16, 48 / 11),
}


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Picks tokens ``x[b, idx[b, ...]]`` for ``x`` [B, N, D] and ``idx`` [B, *S] -> [B, *S, D]."""
    b, d = x.shape[0], x.shape[-1]
    flat = idx.reshape(b, -1)
    out = torch.gather(x, 1, flat.unsqueeze(-1).expand(-1, -1, d))
    return out.reshape(*idx.shape, d)


def init_vit_weights(module: nn.Module) -> None:
    """Truncated-normal(0.02) linears and convs, zero biases, unit norms (I-JEPA's init)."""
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.Conv3d)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def rescale_residual_branches(blocks: nn.ModuleList) -> None:
    """Divides each block's output projections by sqrt(2 * layer) so deep stacks start near identity."""
    for layer, block in enumerate(blocks, start=1):
        block.attn.proj.weight.data.div_(math.sqrt(2.0 * layer))
        block.mlp.fc2.weight.data.div_(math.sqrt(2.0 * layer))


def run_blocks(blocks: nn.ModuleList, x: torch.Tensor, use_checkpoint: bool) -> torch.Tensor:
    for block in blocks:
        if use_checkpoint and torch.is_grad_enabled():
            x = checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x)
    return x


@dataclass
class EncoderConfig:
    """Architecture of the context / target encoder.

    Args:
        size: one of tiny, small, base, large, huge, giant (sets width, depth, heads).
        patch_size: side of the square patches, in pixels.
        width: overrides the size's width when set.
        depth: overrides the size's depth when set.
        heads: overrides the size's number of heads when set.
        drop_path: stochastic-depth rate (0 in the papers).
    """

    size: str = "base"
    patch_size: int = 16
    width: int | None = None
    depth: int | None = None
    heads: int | None = None
    drop_path: float = 0.0

    def resolved(self) -> tuple[int, int, int, float]:
        if self.size not in VIT_SIZES:
            raise ValueError(f"unknown encoder size {self.size!r}: choose one of {', '.join(VIT_SIZES)}")
        width, depth, heads, mlp_ratio = VIT_SIZES[self.size]
        return self.width or width, self.depth or depth, self.heads or heads, mlp_ratio


class VisionTransformer(nn.Module):
    """ViT encoder that returns patch tokens.

    ``forward(images, keep=None)`` embeds ``images`` [B, C, H, W] into patches, adds the fixed
    position embedding, keeps only the patches listed in ``keep`` [B, K] (row-major indices) when
    given, runs the blocks and a final LayerNorm, and returns tokens [B, K or N, width]. Any image
    size that the patch size divides works; the default ``img_size`` only fixes the cached grid.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.img_size = to_2tuple(img_size)
        self.grid_size = patch_grid(self.img_size, patch_size)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.in_chans = in_chans
        self.grad_checkpointing = False
        # Same module names as timm's VisionTransformer (patch_embed.proj, blocks.N, norm).
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.register_buffer("pos_embed", sincos_2d(*self.grid_size, embed_dim).unsqueeze(0), persistent=False)
        rates = [x.item() for x in torch.linspace(0, drop_path_rate, depth)]
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=rates[i], norm_layer=LayerNorm6)
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.apply(init_vit_weights)
        rescale_residual_branches(self.blocks)
        # Patch embedding initialised like a linear layer (Xavier, as MAE): with I-JEPA's std 0.02 a
        # small patch (4x4x3 = 48 inputs) gives embeddings ~5x weaker than the position embedding,
        # and the targets then carry almost no image content at the start of training.
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))

    @classmethod
    def from_config(cls, cfg: EncoderConfig, img_size: int | tuple[int, int], in_chans: int = 3) -> VisionTransformer:
        width, depth, heads, mlp_ratio = cfg.resolved()
        return cls(img_size, cfg.patch_size, in_chans, width, depth, heads, mlp_ratio, drop_path_rate=cfg.drop_path)

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        if grid == self.grid_size:
            return self.pos_embed
        return sincos_2d_on(*grid, self.embed_dim, self.pos_embed.device, self.pos_embed.dtype).unsqueeze(0)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patch embedding plus positions: [B, C, H, W] -> [B, N, D]."""
        grid = patch_grid(tuple(images.shape[-2:]), self.patch_size)
        x = self.patch_embed.proj(images).flatten(2).transpose(1, 2)
        return x + self.position_embedding(grid)

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(images)
        if keep is not None:
            x = gather_tokens(x, keep)
        x = run_blocks(self.blocks, x, self.grad_checkpointing)
        return self.norm(x)

    def last_layers(self, images: torch.Tensor, n: int = 4) -> list[torch.Tensor]:
        """Tokens after each of the last ``n`` blocks, each through the final LayerNorm."""
        x = self.embed(images)
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i >= len(self.blocks) - n:
                outputs.append(self.norm(x))
        return outputs

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        """Average of the final patch tokens, the feature the I-JEPA paper evaluates."""
        return self.forward(images).mean(dim=1)


def layer_normed(x: torch.Tensor) -> torch.Tensor:
    """Parameter-free LayerNorm over the channel dimension (the JEPA target normalisation)."""
    return F.layer_norm(x, (x.shape[-1],))
