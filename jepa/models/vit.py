"""Vision Transformer encoder for JEPA on images and clips: patch (or tubelet) tokens, no class
token, fixed sin-cos positions (2-D for images, 3-D for clips) or 3-D rotary positions.

Blocks are timm's (pre-norm, SDPA attention) so that an image encoder's weights load into timm's
VisionTransformer; with ``pos="rope"`` they are ``RopeBlock``s with the same parameter names.
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

from ..grid import clip_grid, patch_grid, to_2tuple, tubelet_for
from .patch_embed import PatchEmbed
from .pos_embed import sincos_grid, sincos_grid_on
from .rope import Rope, RopeBlock, rope_angles, rope_axis_dim, token_coords

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


POSITIONS = ("sincos", "rope")


def make_blocks(pos: str, width: int, depth: int, heads: int, mlp_ratio: float, qkv_bias: bool = True,
                drop_path_rate: float = 0.0) -> nn.ModuleList:
    """``depth`` pre-norm transformer blocks: timm's, or ``RopeBlock``s (same parameter names)."""
    if pos not in POSITIONS:
        raise ValueError(f"positions must be one of {', '.join(POSITIONS)}, got {pos!r}")
    if pos == "rope":
        rope_axis_dim(width // heads)  # an unusable head width fails here, not at the first step
    cls = RopeBlock if pos == "rope" else Block
    rates = [x.item() for x in torch.linspace(0, drop_path_rate, depth)]
    return nn.ModuleList(
        cls(width, heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=rates[i], norm_layer=LayerNorm6)
        for i in range(depth)
    )


def as_3d(grid: tuple[int, ...]) -> tuple[int, int, int]:
    """A (rows, cols) grid as one time step of a (time, rows, cols) grid."""
    return (1, *grid) if len(grid) == 2 else grid  # type: ignore[return-value]


def run_blocks(blocks: nn.ModuleList, x: torch.Tensor, use_checkpoint: bool, rope: Rope | None = None) -> torch.Tensor:
    """Runs the blocks in turn (``RopeBlock``s with the same ``rope`` angles, computed once per
    forward), recomputing each in the backward pass with ``use_checkpoint`` while grad is enabled."""
    extra = () if rope is None else (rope,)
    for block in blocks:
        if use_checkpoint and torch.is_grad_enabled():
            x = checkpoint(block, x, *extra, use_reentrant=False)
        else:
            x = block(x, *extra)
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
        tubelet_size: frames per token of a video encoder (None: 1 for images, V-JEPA's 2 for clips).
        pos: ``sincos`` (fixed sine-cosine positions added to the tokens: I-JEPA, V-JEPA) or ``rope``
            (3-D rotary positions in every attention layer: V-JEPA 2; any frame count and
            resolution without interpolation).
    """

    size: str = "base"
    patch_size: int = 16
    width: int | None = None
    depth: int | None = None
    heads: int | None = None
    drop_path: float = 0.0
    tubelet_size: int | None = None
    pos: str = "sincos"

    def tubelet(self, num_frames: int) -> int:
        """The tubelet size for clips of ``num_frames`` (1 for images)."""
        return tubelet_for(num_frames, self.tubelet_size)

    def resolved(self) -> tuple[int, int, int, float]:
        if self.size not in VIT_SIZES:
            raise ValueError(f"unknown encoder size {self.size!r}: choose one of {', '.join(VIT_SIZES)}")
        width, depth, heads, mlp_ratio = VIT_SIZES[self.size]
        return self.width or width, self.depth or depth, self.heads or heads, mlp_ratio


class VisionTransformer(nn.Module):
    """ViT encoder that returns patch (or tubelet) tokens.

    ``forward(x, keep=None)`` embeds images [B, C, H, W] or clips [B, C, T, H, W] into tokens (in
    row-major (time, row, column) order), adds the fixed position embedding (``pos="sincos"``),
    keeps only the tokens listed in ``keep`` [B, K] when given, runs the blocks (rotating queries
    and keys by each token's position with ``pos="rope"``) and a final LayerNorm, and returns
    tokens [B, K or N, width]. Any size the patch divides works; ``img_size`` and ``num_frames``
    only fix the cached grid. A video encoder (``num_frames > 1``) also takes images: each is a
    clip of one tubelet.
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
        num_frames: int = 1,
        tubelet_size: int = 1,
        pos: str = "sincos",
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.img_size = to_2tuple(img_size)
        self.num_frames = num_frames
        self.tubelet_size = tubelet_size
        self.video = num_frames > 1
        self.pos = pos
        self.grid_size: tuple[int, ...] = (
            clip_grid(num_frames, self.img_size, patch_size, tubelet_size) if self.video
            else patch_grid(self.img_size, patch_size)
        )
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.in_chans = in_chans
        self.grad_checkpointing = False
        # Same module names as timm's VisionTransformer (patch_embed.proj, blocks.N, norm).
        self.patch_embed = PatchEmbed(in_chans, embed_dim, patch_size, tubelet_size, video=self.video)
        if pos == "sincos":
            self.register_buffer("pos_embed", sincos_grid(self.grid_size, embed_dim).unsqueeze(0), persistent=False)
        self.blocks = make_blocks(pos, embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.apply(init_vit_weights)
        rescale_residual_branches(self.blocks)
        # Patch embedding initialised like a linear layer (Xavier, as MAE): with I-JEPA's std 0.02 a
        # small patch (4x4x3 = 48 inputs) gives embeddings ~5x weaker than the position embedding,
        # and the targets then carry almost no image content at the start of training.
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))

    @classmethod
    def from_config(cls, cfg: EncoderConfig, img_size: int | tuple[int, int], in_chans: int = 3,
                    num_frames: int = 1) -> VisionTransformer:
        width, depth, heads, mlp_ratio = cfg.resolved()
        return cls(img_size, cfg.patch_size, in_chans, width, depth, heads, mlp_ratio, drop_path_rate=cfg.drop_path,
                   num_frames=num_frames, tubelet_size=cfg.tubelet(num_frames), pos=cfg.pos)

    def arch(self) -> dict[str, object]:
        """The architecture, as an export's config.json records it (read from the model itself)."""
        return {
            "arch": "vit",
            "modality": "video" if self.video else "image",
            "width": self.embed_dim,
            "depth": len(self.blocks),
            "heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "patch_size": self.patch_size,
            "img_size": list(self.img_size),
            "in_chans": self.in_chans,
            "num_frames": self.num_frames,
            "tubelet_size": self.tubelet_size,
            "pos": self.pos,
        }

    @property
    def num_patches(self) -> int:
        return math.prod(self.grid_size)

    def token_grid(self, x: torch.Tensor) -> tuple[int, ...]:
        """Token grid of input ``x``: (rows, cols) for an image encoder, (time, rows, cols) for a video one."""
        return self.patch_embed.grid(x.shape)

    def position_embedding(self, grid: tuple[int, ...]) -> torch.Tensor:
        if grid == self.grid_size:
            return self.pos_embed
        return sincos_grid_on(grid, self.embed_dim, self.pos_embed.device, self.pos_embed.dtype).unsqueeze(0)

    def rope(self, grid: tuple[int, ...], keep: torch.Tensor | None, device: torch.device) -> Rope | None:
        """Rotary angles of the kept tokens (None with sin-cos positions)."""
        if self.pos != "rope":
            return None
        return rope_angles(token_coords(as_3d(grid), keep, device), self.embed_dim // self.num_heads)

    def embed(self, x: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        """Patch embedding plus positions: [B, C, (T,) H, W] of token ``grid`` -> [B, N, D]."""
        tokens = self.patch_embed(x)
        if self.pos == "sincos":
            tokens = tokens + self.position_embedding(grid)
        return tokens

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        grid = self.token_grid(x)
        tokens = self.embed(x, grid)
        if keep is not None:
            tokens = gather_tokens(tokens, keep)
        tokens = run_blocks(self.blocks, tokens, self.grad_checkpointing, self.rope(grid, keep, x.device))
        return self.norm(tokens)

    def last_layers(self, x: torch.Tensor, n: int = 4) -> list[torch.Tensor]:
        """Tokens after each of the last ``n`` blocks, each through the final LayerNorm."""
        grid = self.token_grid(x)
        tokens = self.embed(x, grid)
        extra = () if self.pos != "rope" else (self.rope(grid, None, x.device),)
        outputs = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens, *extra)
            if i >= len(self.blocks) - n:
                outputs.append(self.norm(tokens))
        return outputs

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Average of the final tokens, the feature the I-JEPA paper evaluates."""
        return self.forward(x).mean(dim=1)


def layer_normed(x: torch.Tensor) -> torch.Tensor:
    """Parameter-free LayerNorm over the channel dimension (the JEPA target normalisation)."""
    return F.layer_norm(x, (x.shape[-1],))
