"""The true Two-Rooms dynamics behind the planners' ``Dynamics`` interface: the ceiling arm of
``jepa plan`` (the same planner and cost, on the true state instead of a learned representation)."""

from __future__ import annotations

import torch

from .envs.two_rooms import TwoRoomsConfig, step_states


class SimulatorDynamics:
    """``rollout(state [2], actions [B, H, 2]) -> [B, H, 2]`` with the environment's own step."""

    action_dim = 2

    def __init__(self, config: TwoRoomsConfig) -> None:
        self.config = config

    def rollout(self, context: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        state = context.reshape(1, 2).expand(actions.shape[0], 2)
        out = []
        for i in range(actions.shape[1]):
            state = step_states(state, actions[:, i], self.config)
            out.append(state)
        return torch.stack(out, dim=1)
