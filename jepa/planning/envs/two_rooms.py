"""``two-rooms``: reach the goal in the other room through the door, never entering the keep-out
region; the world is ``arena.TwoRoomsConfig``, the environment machinery ``arena_env.ArenaEnv``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .arena import (  # noqa: F401  (re-exported: the world's names are part of two_rooms' API)
    TwoRoomsConfig,
    in_keep_out,
    is_free,
    room_bounds,
    room_of,
    sample_position,
    step_states,
)
from .arena_env import ArenaEnv
from .render import background, render_states  # noqa: F401

ENV_ID = "jepa/TwoRooms-v0"


class TwoRoomsEnv(ArenaEnv):
    """Reach the goal in the other room through the door, never entering the keep-out region (see
    ``ArenaEnv`` for observations, actions, rewards and the planning methods).

    Args:
        config: the world and task (default: ``TwoRoomsConfig()``).
        render_mode: ``"rgb_array"`` (``render()`` returns the current frame) or None.
        **overrides: TwoRoomsConfig fields replacing those of ``config``.
    """

    name = "two-rooms"
    config_class = TwoRoomsConfig

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

    def sample_start(self, rng: np.random.Generator) -> np.ndarray:
        """An exploration start, uniform over both rooms (same size: a fair coin, then uniform in the room)."""
        return sample_position(rng, self.config, int(rng.integers(2)))
