"""Pictures of ``jepa plan``: trajectories over the arena and the energy landscape."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib import colormaps
from matplotlib.figure import Figure  # no pyplot: nothing changes the process's backend
from matplotlib.patches import Rectangle

from .agent import EpisodeResult
from .envs.two_rooms import TwoRoomsConfig


def _arena(ax, cfg: TwoRoomsConfig) -> None:
    L = cfg.arena_size
    (wx0, wx1), (dy0, dy1) = cfg.wall_x, cfg.door_y
    ax.add_patch(Rectangle((wx0, 0), wx1 - wx0, dy0, color="0.25"))
    ax.add_patch(Rectangle((wx0, dy1), wx1 - wx0, L - dy1, color="0.25"))
    if cfg.keep_out is not None:
        x0, y0, x1, y1 = cfg.keep_out
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, color="tab:orange", alpha=0.35, label="keep-out"))
    ax.set_xlim(0, L)
    ax.set_ylim(0, L)  # y up, as in the environment (row 0 of a frame is the top, y = L)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_trajectories(runs: dict[str, list[EpisodeResult]], goals: dict[int, torch.Tensor], cfg: TwoRoomsConfig,
                      path: str | Path, count: int = 4) -> Path:
    """One panel per arm: the first ``count`` episodes' paths, starts (circles) and goals (stars)."""
    arms = list(runs)
    fig = Figure(figsize=(3.2 * len(arms), 3.4))
    axes = fig.subplots(1, len(arms), squeeze=False)
    colours = colormaps["tab10"]
    for ax, arm in zip(axes[0], arms):
        _arena(ax, cfg)
        episodes = runs[arm][:count]
        for i, ep in enumerate(episodes):
            p = ep.path.numpy()
            c = colours(i)
            ax.plot(p[:, 0], p[:, 1], "-", color=c, lw=1.2)
            ax.plot(p[0, 0], p[0, 1], "o", color=c, ms=5)
            g = goals[ep.seed]
            ax.plot(float(g[0]), float(g[1]), "*", color=c, ms=10, mec="k", mew=0.5)
        wins = sum(ep.success for ep in runs[arm])
        ax.set_title(f"{arm}: {wins}/{len(runs[arm])} reached", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def plot_energy(landscapes: dict[str, torch.Tensor], max_norm: float, path: str | Path) -> Path:
    """Cost over a grid of first actions (x right, y up), one panel per model."""
    fig = Figure(figsize=(3.4 * len(landscapes), 3.2))
    axes = fig.subplots(1, len(landscapes), squeeze=False)
    for ax, (name, grid) in zip(axes[0], landscapes.items()):
        im = ax.imshow(grid.numpy(), origin="lower", extent=(-max_norm, max_norm, -max_norm, max_norm), cmap="viridis")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("first action x")
        ax.set_ylabel("first action y")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
