"""An environment's true dynamics behind the planners' ``Dynamics`` interface: the ceiling arm of
``jepa plan`` (the same planner and cost, on the true state instead of a learned representation)."""

from __future__ import annotations

import torch

from .envs.protocol import PlanningEnv


class SimulatorDynamics:
    """``rollout(state [D], actions [B, H, A]) -> [B, H, D]`` with the environment's own ``step_states``."""

    def __init__(self, env: PlanningEnv) -> None:
        self.env = env
        self.action_dim = int(env.action_space.shape[0])

    def rollout(self, context: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        state = context.reshape(1, -1).expand(actions.shape[0], -1)
        out = []
        for i in range(actions.shape[1]):
            state = self.env.step_states(state, actions[:, i])
            out.append(state)
        return torch.stack(out, dim=1)
