"""The gymnasium environment shared by the arena worlds (Two-Rooms, Four-Rooms): a point agent that
moves by ``arena.step_states`` and is drawn by ``render.render_states``, with what planning needs
(``protocol.PlanningEnv``). Each world subclasses it with its config and its tasks.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch

from .arena import TwoRoomsConfig, in_keep_out, is_free, step_states
from .render import render_states
from .setup import configure


class ArenaEnv(gymnasium.Env):
    """A point agent in an arena world (``arena.py``), drawn by ``render.py``: reach the goal, never
    entering the keep-out region. Subclasses name the world (``name``, ``config_class``) and its tasks
    (``reset``, ``sample_start``).

    Observations are uint8 [res, res, 3] images; actions are float32 [2] displacements (longer ones
    are scaled onto the norm ball). The reward is minus the distance to the goal; an episode
    terminates on success and is truncated after ``max_episode_steps``.

    Args:
        config: the world and task (default: ``config_class()``).
        render_mode: ``"rgb_array"`` (``render()`` returns the current frame) or None.
        **overrides: config fields replacing those of ``config``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    name = "arena"
    config_class: type = TwoRoomsConfig

    def __init__(self, config: Any = None, render_mode: str | None = "rgb_array", **overrides: Any) -> None:
        configure(self, config, overrides, render_mode)
        self._state: np.ndarray | None = None
        self._goal: np.ndarray | None = None
        self._steps = 0

    @property
    def state(self) -> np.ndarray:
        """The agent's true position, float32 [2]."""
        return self._require(self._state).copy()

    @property
    def goal(self) -> np.ndarray:
        """The goal position, float32 [2]."""
        return self._require(self._goal).copy()

    def _require(self, value: np.ndarray | None) -> np.ndarray:
        if value is None:
            raise RuntimeError("call reset() first")
        return value

    def _observe(self, xy: np.ndarray) -> np.ndarray:
        return render_states(xy[None], self.config)[0]

    def _check_position(self, xy: Any, what: str) -> np.ndarray:
        arr = np.asarray(xy, dtype=np.float32).reshape(-1)
        if arr.shape != (2,) or not np.isfinite(arr).all():
            raise ValueError(f"{what} must be 2 finite numbers (x, y), got {xy!r}")
        if not bool(is_free(torch.from_numpy(arr), self.config)):
            raise ValueError(f"{what} ({arr[0]:g}, {arr[1]:g}) is inside the wall or outside the arena")
        return arr

    def _info(self) -> dict[str, Any]:
        state, goal = self._require(self._state), self._require(self._goal)
        distance = float(np.linalg.norm(state - goal))
        return {"state": state.copy(), "goal": goal.copy(), "distance": distance,
                "success": distance <= self.config.success_radius,
                "in_keep_out": bool(in_keep_out(torch.from_numpy(state), self.config))}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Moves the agent with ``step_states``.

        Args:
            action: a displacement (x, y); longer than ``max_action_norm`` is scaled down.

        Returns:
            observation, reward (minus the distance to the goal), terminated (success), truncated
            (``max_episode_steps`` reached), info (``state``, ``goal``, ``success``, ``distance``,
            ``in_keep_out``).
        """
        state = self._require(self._state)
        act = torch.as_tensor(np.asarray(action, dtype=np.float32).reshape(1, 2))
        self._state = step_states(torch.from_numpy(state)[None], act, self.config)[0].numpy()
        self._steps += 1
        info = self._info()
        truncated = self._steps >= self.config.max_episode_steps
        return self._observe(self._state), -info["distance"], info["success"], truncated, info

    def set_state(self, xy: Any) -> np.ndarray:
        """Puts the agent at ``xy`` (the oracle's reset); raises ValueError inside the wall or outside
        the arena.

        Args:
            xy: the position (x, y).

        Returns:
            The new observation.
        """
        self._state = self._check_position(xy, "state")
        return self._observe(self._state)

    # What planning needs beyond gymnasium (protocol.PlanningEnv).
    @property
    def max_action_norm(self) -> float:
        return self.config.max_action_norm

    @property
    def keep_out(self) -> tuple[float, float, float, float] | None:
        return self.config.keep_out

    def explore_config(self, rng: np.random.Generator) -> Any:
        """The world an exploration episode runs in: this one (worlds whose tasks vary, such as a
        closed door, draw one per episode so that the world model sees every variant)."""
        return self.config

    def with_config(self, config: Any) -> ArenaEnv:
        """The same environment over another world (``explore_config``'s)."""
        return type(self)(config=config, render_mode=self.render_mode)

    def explore_start(self, rng: np.random.Generator, config: Any, start: np.ndarray) -> np.ndarray:
        """Where an exploration episode in ``config`` starts: ``start`` as drawn (nothing more drawn)."""
        return start

    def step_states(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The true dynamics on a batch: [B, 2] positions, [B, 2] actions -> [B, 2] (``arena.step_states``)."""
        return step_states(states, actions, self.config)

    def render_states(self, states: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """The frames of [B, 2] positions, uint8 [B, res, res, 3] (``render.render_states``)."""
        return render_states(states, self.config)

    def draw(self, ax: Any) -> None:
        """The arena in world units, y up: its walls (clipped to the arena) and the keep-out region."""
        from matplotlib.patches import Rectangle

        cfg = self.config
        L = cfg.arena_size
        for x0, y0, x1, y1 in cfg.walls:
            x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, L), min(y1, L)
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, color="0.25"))
        if cfg.keep_out is not None:
            x0, y0, x1, y1 = cfg.keep_out
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, color="tab:orange", alpha=0.35, label="keep-out"))
        ax.set_xlim(0, L)
        ax.set_ylim(0, L)

    def render(self) -> np.ndarray | None:
        """The current frame, uint8 [res, res, 3] (None when render_mode is None)."""
        if self.render_mode is None:
            return None
        return self._observe(self._require(self._state))
