"""Drawing an arena world (Two-Rooms, Four-Rooms).

Images (``render_states``): row 0 is the top of the arena (``y = L``), column 0 its left edge; a light
background, the dark walls (anti-aliased once, at config time) and the agent as an anti-aliased red
disc. The keep-out region is not drawn: it is a constraint of the task, not part of the world, and
leaving it out lets one world model serve tasks with and without it.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .arena import TwoRoomsConfig

BACKGROUND = (235, 235, 228)
WALL = (55, 58, 70)
AGENT = (220, 30, 30)
RENDER_CHUNK = 512  # states drawn at once


@functools.lru_cache(maxsize=8)
def background(cfg: TwoRoomsConfig) -> np.ndarray:
    """The static image (background and wall, no agent) as float32 [H, W, 3], computed once per config.

    Args:
        cfg: the world.
    """
    res, L = cfg.resolution, cfg.arena_size
    # 4x4 supersampling per pixel gives the walls' edges their fractional coverage.
    sub = 4
    pos = (np.arange(res * sub) + 0.5) / (res * sub) * L
    xs, ys = pos[None, :], L - pos[:, None]  # row 0 is the top of the arena
    wall = np.zeros((res * sub, res * sub), bool)
    for x0, y0, x1, y1 in cfg.walls:
        wall |= (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
    cover = wall.reshape(res, sub, res, sub).mean(axis=(1, 3))[..., None]
    image = ((1 - cover) * np.array(BACKGROUND, np.float64) + cover * np.array(WALL, np.float64)).astype(np.float32)
    image.setflags(write=False)  # shared by every caller through the cache
    return image


def render_states(states: torch.Tensor | np.ndarray, cfg: TwoRoomsConfig) -> torch.Tensor | np.ndarray:
    """Draws each state: the static background with the agent as an anti-aliased red disc.

    Args:
        states: [B, 2] agent positions (torch or numpy).
        cfg: the world.

    Returns:
        uint8 [B, H, W, 3], a tensor on the states' device for a tensor, else a numpy array.
    """
    is_numpy = not isinstance(states, torch.Tensor)
    pos = torch.as_tensor(np.asarray(states) if is_numpy else states).detach().float().reshape(-1, 2)
    bg = torch.tensor(background(cfg), device=pos.device)
    agent = torch.tensor(AGENT, dtype=torch.float32, device=pos.device)
    # In chunks, so that the float intermediates of a big batch stay a few tens of MB.
    chunks = [_draw(part, bg, agent, cfg) for part in pos.split(RENDER_CHUNK)] or [
        torch.empty(0, cfg.resolution, cfg.resolution, 3, dtype=torch.uint8, device=pos.device)]
    images = torch.cat(chunks)
    return images.cpu().numpy() if is_numpy else images


def _draw(pos: torch.Tensor, bg: torch.Tensor, agent: torch.Tensor, cfg: TwoRoomsConfig) -> torch.Tensor:
    res, L = cfg.resolution, cfg.arena_size
    scale = res / L  # pixels per world unit
    centres = torch.arange(res, device=pos.device, dtype=torch.float32) + 0.5
    # Distances in pixels from each pixel centre to each agent centre.
    dx = centres[None, None, :] - pos[:, 0, None, None] * scale
    dy = centres[None, :, None] - (L - pos[:, 1, None, None]) * scale
    dist = torch.sqrt(dx * dx + dy * dy)
    # Coverage ramps over one pixel across the disc's edge: a cheap, smooth anti-aliasing.
    cover = (cfg.agent_radius * scale + 0.5 - dist).clamp(0, 1)[..., None]
    return (bg + cover * (agent - bg)).round_().to(torch.uint8)
