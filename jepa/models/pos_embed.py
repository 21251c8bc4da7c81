"""Fixed sine-cosine position embeddings (MAE / I-JEPA for images, V-JEPA for clips), for any grid shape."""

from __future__ import annotations

import functools
import math

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


@functools.lru_cache(maxsize=16)
def _sincos_3d_cached(grid_t: int, grid_h: int, grid_w: int, dim: int) -> torch.Tensor:
    if dim % 2:
        raise ValueError(f"3-D sin-cos embedding needs an even width, got {dim}")
    t = torch.arange(grid_t).repeat_interleave(grid_h * grid_w)
    rows = torch.arange(grid_h).repeat_interleave(grid_w).repeat(grid_t)
    cols = torch.arange(grid_w).repeat(grid_t * grid_h)
    # V-JEPA's "uniform power" (its recipes' setting): time, row and column get the same even number
    # of channels, ceil(dim / 6) * 2 each, and the concatenation is cut to ``dim``.
    part = math.ceil(dim / 6) * 2
    emb = torch.cat([sincos_1d(t, part), sincos_1d(rows, part), sincos_1d(cols, part)], dim=1)[:, :dim]
    return emb.to(torch.float32)


def _cached(grid: tuple[int, ...], dim: int) -> torch.Tensor:
    if len(grid) == 2:
        return _sincos_2d_cached(*grid, dim)
    if len(grid) == 3:
        return _sincos_3d_cached(*grid, dim)
    raise ValueError(f"sin-cos positions exist for 2-D and 3-D grids, got {grid}")


def sincos_grid(grid: tuple[int, ...], dim: int) -> torch.Tensor:
    """``[prod(grid), dim]`` embeddings of a (rows, cols) or (time, rows, cols) grid, row-major."""
    return _cached(tuple(int(g) for g in grid), dim).clone()


@functools.lru_cache(maxsize=32)
def sincos_grid_on(grid: tuple[int, ...], dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``sincos_grid`` on ``device`` in ``dtype``, made once per grid: building it on the host every
    forward pass would copy it to the GPU every step, and each such copy makes the host wait.
    Shared and read-only: add it, never write into it."""
    return _cached(tuple(int(g) for g in grid), dim).to(device=device, dtype=dtype)
