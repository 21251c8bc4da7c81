"""Fixed sine-cosine position embeddings (MAE / I-JEPA style), for any grid shape."""

from __future__ import annotations

import functools

import torch


def sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Embeds 1-D positions into ``dim`` channels: half sines, half cosines over geometric frequencies."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even width, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = positions.to(torch.float64).reshape(-1, 1) * omega.reshape(1, -1)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


@functools.lru_cache(maxsize=16)
def _sincos_2d_cached(grid_h: int, grid_w: int, dim: int) -> torch.Tensor:
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs a width divisible by 4, got {dim}")
    rows = torch.arange(grid_h).repeat_interleave(grid_w)
    cols = torch.arange(grid_w).repeat(grid_h)
    # First half of the channels encodes the row, second half the column.
    emb = torch.cat([sincos_1d(rows, dim // 2), sincos_1d(cols, dim // 2)], dim=1)
    return emb.to(torch.float32)


def sincos_2d(grid_h: int, grid_w: int, dim: int) -> torch.Tensor:
    """Returns ``[grid_h * grid_w, dim]`` embeddings in row-major patch order (a fresh copy)."""
    return _sincos_2d_cached(grid_h, grid_w, dim).clone()


@functools.lru_cache(maxsize=32)
def sincos_2d_on(grid_h: int, grid_w: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``sincos_2d`` on ``device`` in ``dtype``, made once per grid: building it on the host every
    forward pass would copy it to the GPU every step, and each such copy makes the host wait.
    Shared and read-only: add it, never write into it."""
    return _sincos_2d_cached(grid_h, grid_w, dim).to(device=device, dtype=dtype)
