"""What the planning agent needs of an environment, beyond gymnasium's ``reset``/``step``.

Every registered environment (``registry.py``) provides this, so that episodes, the simulator arm,
the evaluation arms, guardrails and pictures work for any of them without naming one:

- ``reset(seed=, options=)`` and ``step(action)`` as gymnasium's, with ``info`` holding ``state`` and
  ``goal`` (the true positions, float32 [D]), ``distance``, ``success`` and ``in_keep_out`` (the true
  state inside the task's keep-out region: what guardrails are judged on); ``reset`` adds
  ``goal_obs``, the frame of the goal.
- ``set_state(xy)``: the oracle's reset; ``state`` and ``goal``.
- ``step_states(states [B, D], actions [B, A])``: the true dynamics on a batch, the very function
  ``step`` uses, so the simulator arm predicts the environment exactly; differentiable in ``actions``.
- ``render_states(states [B, D])``: the frames of those states, uint8 [B, H, W, 3].
- ``sample_start(rng)``: where an exploration episode starts.
- ``explore_config(rng)`` and ``with_config(config)``: the world an exploration episode runs in (one
  per episode where tasks change the world, as Four-Rooms' closed door) and the environment over it.
- ``explore_start(rng, config, start)``: where an episode in that world starts, given
  ``sample_start``'s draw (an environment may move it where the world needs seeing, as beside a
  closed door; the others return ``start`` and draw nothing, so their episodes stay as they were).
- ``draw(ax)``: the arena on a matplotlib axis in world units (walls, keep-out region).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch


class PlanningEnv(Protocol):
    """A gymnasium environment with what planning needs (see the module docstring)."""

    name: str
    config: Any

    @property
    def max_action_norm(self) -> float: ...

    @property
    def keep_out(self) -> tuple[float, float, float, float] | None: ...

    @property
    def state(self) -> np.ndarray: ...

    @property
    def goal(self) -> np.ndarray: ...

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]: ...

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]: ...

    def set_state(self, xy: Any) -> np.ndarray: ...

    def step_states(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor: ...

    def render_states(self, states: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray: ...

    def sample_start(self, rng: np.random.Generator) -> np.ndarray: ...

    def explore_config(self, rng: np.random.Generator) -> Any: ...

    def with_config(self, config: Any) -> PlanningEnv: ...

    def explore_start(self, rng: np.random.Generator, config: Any, start: np.ndarray) -> np.ndarray: ...

    def draw(self, ax: Any) -> None: ...
