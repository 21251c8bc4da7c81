"""The readout of ``jepa plan``'s ``simulator_perceived`` arm: the planner on the true dynamics, scored
as the learned arm scores, by the distance between the world model's standardised representations of
the rendered final frame and of the goal frame.

A diagnostic that splits the learned arm's failures in two: where this arm succeeds and
``world_model`` fails, the world model's predictions are to blame; where this arm fails too, the
representation's distance does not lead to the goal (measured on Push-T: docs/push-t.md). The episode
itself is the simulator arm's (``evaluate.simulator_episode``) with this readout.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .envs.protocol import PlanningEnv
from .perception import Perception
from .world_model import WorldModel


def perceived(env: PlanningEnv, perception: Perception, world: WorldModel) -> Callable[[torch.Tensor], torch.Tensor]:
    """states [S], [B, S] or [B, H, S] -> the standardised representations of their rendered frames
    ([D], [B, D] or [B, H, D]). A rollout is rendered at its last step only, whose representation
    stands for every step: the arm scores the last step alone (mode ``final``), and rendering and
    encoding every step of every candidate would cost the horizon's length times more."""

    def readout(states: torch.Tensor) -> torch.Tensor:
        if states.dim() == 1:
            return readout(states[None])[0]
        if states.dim() == 3:
            return readout(states[:, -1])[:, None].expand(-1, states.shape[1], -1)
        return world.normalize(perception.encode(np.asarray(env.render_states(states.numpy()))))

    return readout
