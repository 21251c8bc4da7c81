"""``two-rooms``: the gymnasium environment over the world of ``arena.py`` drawn by ``render.py``:
reach the goal in the other room through the door, never entering the keep-out region.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium
import numpy as np
import torch

from ...errors import JEPAError
from .arena import (  # noqa: F401  (re-exported: the world's names are part of two_rooms' API)
    TwoRoomsConfig,
    in_keep_out,
    is_free,
    room_bounds,
    room_of,
    sample_position,
    step_states,
)
from .render import background, render_states  # noqa: F401

ENV_ID = "jepa/TwoRooms-v0"
ENV_NAMES = ("two-rooms",)


class TwoRoomsEnv(gymnasium.Env):
    """Reach the goal in the other room through the door, never entering the keep-out region.

    Observations are uint8 [res, res, 3] images; actions are float32 [2] displacements (longer ones
    are scaled onto the norm ball). The reward is minus the distance to the goal; an episode
    terminates on success and is truncated after ``max_episode_steps``.

    Args:
        config: the world and task (default: ``TwoRoomsConfig()``).
        render_mode: ``"rgb_array"`` (``render()`` returns the current frame) or None.
        **overrides: TwoRoomsConfig fields replacing those of ``config``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: TwoRoomsConfig | None = None, render_mode: str | None = "rgb_array",
                 **overrides: Any) -> None:
        config = config or TwoRoomsConfig()
        fields = {f.name for f in dataclasses.fields(TwoRoomsConfig)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise TypeError(f"unknown two-rooms option {unknown[0]!r}: options are {', '.join(sorted(fields))}")
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.render_mode = render_mode
        res, high = self.config.resolution, self.config.max_action_norm
        self.observation_space = gymnasium.spaces.Box(0, 255, (res, res, 3), np.uint8)
        self.action_space = gymnasium.spaces.Box(-high, high, (2,), np.float32)
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

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode with start and goal in different rooms (which is which is random).

        Args:
            seed: seeds the environment's generator (gymnasium's convention).
            options: optional ``start`` and/or ``goal`` positions to use instead of random ones.

        Returns:
            The observation and an info dict with ``goal_obs``, ``goal``, ``state`` and ``distance``.
        """
        super().reset(seed=seed)
        options = options or {}
        start_room = int(self.np_random.integers(2))
        start = sample_position(self.np_random, self.config, start_room)
        goal = sample_position(self.np_random, self.config, 1 - start_room)
        if options.get("start") is not None:
            start = self._check_position(options["start"], "start")
        if options.get("goal") is not None:
            goal = self._check_position(options["goal"], "goal")
        self._state, self._goal, self._steps = start, goal, 0
        info = self._info()
        info["goal_obs"] = self._observe(goal)
        return self._observe(start), info

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

    def render(self) -> np.ndarray | None:
        """The current frame, uint8 [res, res, 3] (None when render_mode is None)."""
        if self.render_mode is None:
            return None
        return self._observe(self._require(self._state))


def register_envs() -> None:
    """Registers ``jepa/TwoRooms-v0`` with gymnasium (once), so that ``gymnasium.make`` finds it."""
    if ENV_ID not in gymnasium.registry:
        # No TimeLimit wrapper: the environment truncates at max_episode_steps itself.
        gymnasium.register(id=ENV_ID, entry_point=f"{__name__}:TwoRoomsEnv")


def make_env(name: str, **kwargs: Any) -> TwoRoomsEnv:
    """Builds an environment by name (unwrapped: no gymnasium checker or wrappers).

    Args:
        name: ``"two-rooms"`` or ``"jepa/TwoRooms-v0"``.
        **kwargs: ``config``, ``render_mode`` and TwoRoomsConfig fields (overriding ``config``'s).

    Raises:
        JEPAError: unknown name, unknown option or invalid value (one line).
    """
    register_envs()
    if name not in (*ENV_NAMES, ENV_ID):
        raise JEPAError(f"unknown environment {name!r}: available are {', '.join(ENV_NAMES)}")
    try:
        return TwoRoomsEnv(**kwargs)
    except (TypeError, ValueError) as err:
        raise JEPAError(f"{name}: {err}") from err
