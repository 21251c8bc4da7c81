"""3-D rotary position embeddings (RoPE) for ViT blocks, as in V-JEPA 2.

Each attention head's dimension is split into three equal, even parts that are rotated by a token's
t, h and w coordinate; any remainder (``head_dim - 3 * part``, e.g. 4 of 64) stays un-rotated, as in
V-JEPA 2. Rotations act on interleaved pairs ``(x[2i], x[2i + 1])``, V-JEPA 2's layout, with the
frequencies of its corrected code (one frequency per pair): the released V-JEPA 2 checkpoints
use the older tiling, so their weights are not drop-in compatible with this module.

Positions enter only through the rotation of queries and keys, so the attention logits depend on
coordinate differences alone, and tokens may be any subset of the grid in any order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Attention, Block
from torch import nn

Rope = tuple[torch.Tensor, torch.Tensor]


def rope_axis_dim(head_dim: int) -> int:
    """Channels per head rotated by each of t, h and w: the largest even number <= head_dim / 3.

    Args:
        head_dim: channels per attention head; must be even and at least 6.

    Returns:
        The per-axis part (20 for 64, 10 for 32, 4 for 16); ``head_dim - 3 * part`` stay un-rotated.
    """
    part = 2 * (head_dim // 6)
    if head_dim % 2 or part == 0:
        raise ValueError(f"3-D RoPE needs an even head dimension of at least 6, got {head_dim}")
    return part


def rope_angles(coords: torch.Tensor, head_dim: int, base: float = 10000.0) -> Rope:
    """Cosines and sines of the rotation angles for tokens at ``coords``.

    Channels ``[0, p)`` rotate with t, ``[p, 2p)`` with h, ``[2p, 3p)`` with w (``p`` from
    :func:`rope_axis_dim`); pair ``j`` of an axis turns by ``coord * base ** (-j / (p / 2))``. The
    remaining channels get cos 1 and sin 0, so :func:`apply_rope` leaves them unchanged.

    Args:
        coords: [..., N, 3] (t, h, w) position of each token, integer or float.
        head_dim: channels per attention head.
        base: frequency base (10000, as in V-JEPA 2).

    Returns:
        ``(cos, sin)``, float32, each [..., 1, N, head_dim]: a [B, N, 3] input broadcasts against
        queries [B, heads, N, head_dim] and an [N, 3] or [1, N, 3] input against any batch.
    """
    part = rope_axis_dim(head_dim)
    # float32 whatever the autocast or input dtype: bf16 angles would be off by whole radians.
    steps = torch.arange(part // 2, dtype=torch.float32, device=coords.device)
    inv_freq = base ** (-steps / (part // 2))
    angles = coords.float().unsqueeze(-1) * inv_freq  # [..., N, 3, part/2]
    # Both channels of a pair share their angle: [..., N, 3 * part], t block, then h, then w.
    angles = angles.flatten(-2).repeat_interleave(2, dim=-1)
    cos, sin = angles.cos(), angles.sin()
    rest = head_dim - 3 * part
    if rest:
        cos = F.pad(cos, (0, rest), value=1.0)
        sin = F.pad(sin, (0, rest), value=0.0)
    return cos.unsqueeze(-3), sin.unsqueeze(-3)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotates each interleaved channel pair ``(x[2i], x[2i + 1])`` of ``x`` by its angle.

    Args:
        x: [..., N, head_dim] queries or keys, e.g. [B, heads, N, head_dim].
        cos: cosines from :func:`rope_angles`, broadcastable to ``x``.
        sin: sines from :func:`rope_angles`, broadcastable to ``x``.

    Returns:
        The rotated tensor, same shape and dtype as ``x`` (computed in float32 when ``cos`` is).
    """
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    rotated = torch.stack((-x2, x1), dim=-1).flatten(-2)
    return (x * cos + rotated * sin).to(x.dtype)


class RopeAttention(Attention):
    """timm's Attention (same parameters and names) that rotates queries and keys before SDPA."""

    def forward(self, x: torch.Tensor, rope: Rope | None = None) -> torch.Tensor:  # type: ignore[override]
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        x = x.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim)
        return self.proj_drop(self.proj(x))


class RopeBlock(Block):
    """timm's pre-norm Block with 3-D RoPE attention; its state dict has exactly timm's Block keys.

    ``forward(x, rope)`` takes tokens [B, N, dim] and ``rope = rope_angles(coords, head_dim)`` for
    their coordinates (or None: attention without positions, which equals timm's Block).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        drop_path: float = 0.0,
        norm_layer: Callable[..., nn.Module] = nn.LayerNorm,
    ) -> None:
        super().__init__(
            dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=drop_path, norm_layer=norm_layer
        )
        # Replaced after the fact because Block only takes an attention class (attn_layer) from
        # timm 1.0.1x on, and we support timm >= 1.0.9; the module keeps its place and key names.
        self.attn = RopeAttention(dim, num_heads=num_heads, qkv_bias=qkv_bias, norm_layer=norm_layer)

    def forward(self, x: torch.Tensor, rope: Rope | None = None) -> torch.Tensor:  # type: ignore[override]
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), rope)))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


def token_coords(
    grid: tuple[int, int, int], idx: torch.Tensor | None, device: torch.device | str | None = None
) -> torch.Tensor:
    """(t, h, w) coordinates of tokens given by their flat, (t, h, w)-row-major grid indices.

    Args:
        grid: (T, H, W) tokens along time, height and width; images use T = 1.
        idx: [B, K] integer token indices (any leading shape works), or None for all T*H*W tokens.
        device: where to build the result; defaults to ``idx``'s device.

    Returns:
        Float coordinates [B, K, 3], or [1, N, 3] when ``idx`` is None.
    """
    t, h, w = grid
    if idx is None:
        idx = torch.arange(t * h * w, device=device).unsqueeze(0)
    elif device is not None:
        idx = idx.to(device)
    return torch.stack((idx // (h * w), idx // w % h, idx % w), dim=-1).float()


__all__ = [
    "RopeAttention",
    "RopeBlock",
    "apply_rope",
    "rope_angles",
    "rope_axis_dim",
    "token_coords",
]
