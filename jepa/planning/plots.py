"""Pictures of ``jepa plan``: trajectories over the arena and the energy landscape."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib import colormaps
from matplotlib.figure import Figure  # no pyplot: nothing changes the process's backend

from .agent import EpisodeResult
from .envs.protocol import PlanningEnv


def _arena(ax, env: PlanningEnv) -> None:
    env.draw(ax)  # y up, as in the environment (row 0 of a frame is the top)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_trajectories(runs: dict[str, list[EpisodeResult]], goals: dict[int, torch.Tensor], env: PlanningEnv,
                      path: str | Path, count: int = 4) -> Path:
    """One panel per arm: the first ``count`` episodes' paths, starts (circles), goals (stars) and
    the subgoals of two-level arms (crosses).
    Where those episodes' tasks change the arena (a closed Four-Rooms door), one row per episode
    instead, each over its own arena."""
    arms = list(runs)
    seeds = [ep.seed for ep in runs[arms[0]][:count]]
    arenas = []
    for seed in seeds:
        env.reset(seed=seed)
        arenas.append(env.config)
    rows = [seeds] if all(a == arenas[0] for a in arenas) else [[s] for s in seeds]
    fig = Figure(figsize=(3.2 * len(arms), 3.4 * len(rows)))
    axes = fig.subplots(len(rows), len(arms), squeeze=False)
    colours = colormaps["tab10"]
    for r, shown in enumerate(rows):
        env.reset(seed=shown[0])
        for ax, arm in zip(axes[r], arms):
            _arena(ax, env)
            for ep in runs[arm]:
                if ep.seed not in shown:
                    continue
                p = ep.path.numpy()
                c = colours(seeds.index(ep.seed))
                ax.plot(p[:, 0], p[:, 1], "-", color=c, lw=1.2)
                ax.plot(p[0, 0], p[0, 1], "o", color=c, ms=5)
                g = goals[ep.seed]
                ax.plot(float(g[0]), float(g[1]), "*", color=c, ms=10, mec="k", mew=0.5)
                if ep.subgoals:  # where the position probe reads the chosen subgoals (two-level arms)
                    sg = torch.tensor(ep.subgoals)
                    ax.plot(sg[:, 0], sg[:, 1], "x", color=c, ms=5, mew=1.2)
            wins = sum(ep.success for ep in runs[arm])
            title = f"{arm}: {wins}/{len(runs[arm])} reached" if r == 0 else f"{arm}, episode {shown[0]}"
            ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def plot_final_frames(runs: dict[str, list[EpisodeResult]], env: PlanningEnv, path: str | Path,
                      count: int = 4) -> Path:
    """One row per episode (the first ``count``): the start frame, the goal frame and each arm's last
    frame, titled reached or not."""
    arms = list(runs)
    episodes = runs[arms[0]][:count]
    fig = Figure(figsize=(1.9 * (len(arms) + 2), 2.0 * len(episodes)))
    axes = fig.subplots(len(episodes), len(arms) + 2, squeeze=False)
    for r, first in enumerate(episodes):
        _, info = env.reset(seed=first.seed)
        panels = [("start", env.render()), ("goal", info["goal_obs"])]
        for arm in arms:
            ep = next(e for e in runs[arm] if e.seed == first.seed)
            frame = env.render_states(ep.path[-1:].numpy())[0]
            panels.append((f"{arm}: {'reached' if ep.success else 'not reached'}", frame))
        for ax, (title, frame) in zip(axes[r], panels):
            ax.imshow(frame)
            ax.set_title(title if r == 0 or title in ("start", "goal") else title.split(": ")[1], fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
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
