"""The Push-T benchmark's tasks, drawn from recorded episodes, and how faithfully the simulator replays them.

- Split: by whole episodes, fixed once: the last fifth of the episodes (in shard order) is held out,
  as for ``jepa shards pusht-angles``; tasks come from held-out episodes only.
- A task (DINO-WM's and stable-worldmodel's protocol): start = the recorded state at step t of a
  held-out episode; goal = the state after the next ``offset`` (25) recorded actions replayed in the
  simulator from that start (and its frame), so every goal is reachable. Pairs whose start already
  meets the success criterion are left out, as are starts the simulator cannot place (the pusher
  overlapping the block).
- Fidelity: the recorded actions replayed from each episode's first state against the recorded
  states (drift in px and rad), and from every ``every``-th step at rest against the state
  ``offset`` steps later (how often the recorded goal meets the success criterion).

``jepa world pusht-tasks`` writes both into one JSON file that ``jepa plan --env push-t --tasks FILE`` reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_json_atomic
from ..errors import JEPAError
from .envs.push_t import PushTConfig, Simulator, angle_gap, succeeded
from .trajectories import Episode, held_out_count, read_episodes


@dataclass
class Recorded:
    """One recorded Push-T episode: its key, states [T, 5] and absolute pusher targets [T, 2]."""

    key: str
    states: np.ndarray
    targets: np.ndarray


def read_recorded(spec: str, max_episodes: int | None = None) -> list[Recorded]:
    """The episodes of ``spec`` (episode shards with ``state.npy``), checked to be Push-T's."""
    out = []
    for ep in read_episodes(spec, max_episodes, frames=False):  # the simulator renders its own
        out.append(_checked(ep))
    if len(out) < 2:
        raise JEPAError(f"{spec} holds {len(out)} episode(s): the split needs at least 2")
    return out


def _checked(ep: Episode) -> Recorded:
    if ep.states is None or ep.states.shape[1] != 5 or ep.actions.shape[1] != 2:
        raise JEPAError(f"episode {ep.key} of {ep.url} is not a Push-T episode: it needs state.npy [T, 5] "
                        "(pusher x, y, block x, y, angle) and action.npy [T, 2] (pusher targets)")
    return Recorded(ep.key, ep.states.astype(np.float64), ep.actions.astype(np.float64))


def replay(sim: Simulator, start: np.ndarray, targets: Sequence[np.ndarray]) -> np.ndarray:
    """States [len(targets), 5] after each recorded target, replayed from ``start`` at rest."""
    sim.place(start)
    out = []
    for target in targets:
        sim.control((float(target[0]), float(target[1])))
        out.append(sim.state())
    return np.stack(out)


def replay_drift(episodes: Sequence[Recorded], config: PushTConfig = PushTConfig(), offset: int = 25,
                 every: int = 10) -> dict[str, Any]:
    """Replay fidelity of recorded episodes (see the module docstring): per-episode drift from the first
    state, and the goal criterion on restarts every ``every`` steps."""
    sim = Simulator(config.resolution)
    final_xy, max_xy, max_angle = [], [], []
    met, windows = 0, 0
    for ep in episodes:
        states = replay(sim, ep.states[0], ep.targets[:-1])  # state t + 1 follows target t
        xy = np.linalg.norm(states[:, :4] - ep.states[1:, :4], axis=1)
        final_xy.append(float(xy[-1]))
        max_xy.append(float(xy.max()))
        max_angle.append(float(angle_gap(states[:, 4], ep.states[1:, 4]).max()))
        for t in range(0, len(ep.targets) - offset, every):
            end = replay(sim, ep.states[t], ep.targets[t:t + offset])[-1]
            met += succeeded(end, ep.states[t + offset], config)
            windows += 1
    return {"episodes": len(episodes), "steps": int(sum(len(ep.targets) for ep in episodes)),
            "final_drift_px_median": float(np.median(final_xy)), "max_drift_px": float(max(max_xy)),
            "max_drift_rad": float(max(max_angle)), "offset": offset, "windows": windows,
            "goal_met_fraction": met / max(1, windows)}


def make_tasks(episodes: Sequence[Recorded], count: int = 100, offset: int = 25, seed: int = 0,
               holdout_fraction: float = 0.2, config: PushTConfig = PushTConfig()) -> dict[str, Any]:
    """``count`` seeded start/goal tasks from the held-out episodes (see the module docstring)."""
    if count < 1 or offset < 1:
        raise JEPAError(f"--count and --offset must be >= 1, got {count} and {offset}")
    held = list(episodes[len(episodes) - held_out_count(len(episodes), holdout_fraction):])
    candidates = [(i, t) for i, ep in enumerate(held) for t in range(len(ep.targets) - offset)]
    rng = np.random.default_rng(seed)
    sim = Simulator(config.resolution)
    tasks, skipped = [], {"already_done": 0, "unplaceable": 0}
    for j in rng.permutation(len(candidates)):
        i, t = candidates[j]
        ep = held[i]
        start = ep.states[t]
        try:
            sim.place(start, check=True)
        except ValueError:
            skipped["unplaceable"] += 1
            continue
        goal = replay(sim, start, ep.targets[t:t + offset])[-1]
        if succeeded(start.astype(np.float32), goal, config):
            skipped["already_done"] += 1
            continue
        tasks.append({"episode": ep.key, "t": int(t), "start": _rounded(start), "goal": _rounded(goal),
                      "targets": [_rounded(x) for x in ep.targets[t:t + offset]],
                      "distance": round(float(np.linalg.norm(goal[:4] - start[:4])), 2),
                      "angle_gap": round(float(angle_gap(float(goal[4]), float(start[4]))), 4)})
        if len(tasks) == count:
            break
    if len(tasks) < count:
        raise JEPAError(f"the held-out episodes give only {len(tasks)} tasks of {count}: ask for fewer or hold out more")
    return {"count": count, "offset": offset, "seed": seed, "holdout_fraction": holdout_fraction,
            "held_out": [ep.key for ep in held], "skipped": skipped, "tasks": tasks}


def _rounded(values: np.ndarray) -> list[float]:
    # Full float32 precision: a start replayed from the file must be the start the goal was replayed from.
    return [float(np.float32(v)) for v in values]


def describe(fidelity: dict[str, Any], tasks: dict[str, Any]) -> str:
    """The lines ``jepa world pusht-tasks`` prints."""
    d = [t["distance"] for t in tasks["tasks"]]
    a = [math.degrees(t["angle_gap"]) for t in tasks["tasks"]]
    return "\n".join([
        f"replay of {fidelity['episodes']} episodes ({fidelity['steps']} steps) from their first states: final drift "
        f"median {fidelity['final_drift_px_median']:.2g} px, largest {fidelity['max_drift_px']:.2g} px and "
        f"{fidelity['max_drift_rad']:.2g} rad",
        f"restarted at rest every few steps: the recorded state {fidelity['offset']} steps later met the success "
        f"criterion in {100 * fidelity['goal_met_fraction']:.1f}% of {fidelity['windows']} replays",
        f"{len(tasks['tasks'])} tasks from {len(tasks['held_out'])} held-out episodes (skipped: "
        f"{tasks['skipped']['already_done']} already at the goal, {tasks['skipped']['unplaceable']} unplaceable); "
        f"start-goal distance median {np.median(d):.0f} px, angle gap median {np.median(a):.0f} deg"])


def write_tasks(episodes: str, out: str, count: int = 100, offset: int = 25, seed: int = 0,
                overwrite: bool = False) -> str:
    """Reads ``episodes``, measures replay fidelity, draws the tasks and writes both to ``out``
    (JSON, atomically); returns the lines to print."""
    path = Path(out)
    if path.exists() and not overwrite:
        raise JEPAError(f"{path} exists: pass --overwrite to replace it, or give another OUT")
    recorded = read_recorded(episodes)
    config = PushTConfig()
    tasks = make_tasks(recorded, count, offset, seed, config=config)
    fidelity = replay_drift(recorded, config, offset)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"source": episodes, **tasks, "fidelity": fidelity})
    return describe(fidelity, tasks) + f"\nwritten to {path}"
