"""The ``simulator_perceived`` arm of ``jepa plan``: the planner on the true dynamics, scored as the
learned arm scores, by the distance between the world model's standardised representations of the
rendered final frame and of the goal frame (at the last imagined step whatever ``--goal`` says:
rendering and encoding every step of every candidate would cost the horizon's length times more). A
diagnostic that splits the learned arm's failures in
two: where this arm succeeds and ``world_model`` fails, the world model's predictions are to blame;
where this arm fails too, the representation's distance does not lead to the goal (measured on
Push-T: docs/push-t.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .agent import AgentSettings, EpisodeResult, run_episode
from .costs import GoalEnergy
from .envs.protocol import PlanningEnv
from .interfaces import Planner
from .perception import Perception
from .simulator import SimulatorDynamics
from .world_model import WorldModel


def perceived(env: PlanningEnv, perception: Perception, world: WorldModel):
    """states [S], [B, S] or [B, H, S] -> the standardised representations of their rendered frames
    ([D], [B, D] or [B, H, D]); a rollout is rendered at its last step only, whose representation
    stands for every step (the cost reads the last step alone: mode ``final``)."""

    def readout(states: torch.Tensor) -> torch.Tensor:
        if states.dim() == 1:
            return readout(states[None])[0]
        if states.dim() == 3:
            return readout(states[:, -1])[:, None].expand(-1, states.shape[1], -1)
        return world.normalize(perception.encode(np.asarray(env.render_states(states.numpy()))))

    return readout


def perceived_simulator_episode(env: PlanningEnv, seed: int, planner: Planner, settings: AgentSettings,
                                perception: Perception, world: WorldModel) -> EpisodeResult:
    """One episode of the ``simulator_perceived`` arm."""

    def perceive(obs: Any, info: dict) -> torch.Tensor:
        # The dynamics step true states; the goal observation stands for the goal state.
        return torch.as_tensor(info["goal"] if obs is info.get("goal_obs") else info["state"], dtype=torch.float32)

    readout = perceived(env, perception, world)

    def cost_for_goal(goal: torch.Tensor, info: dict) -> GoalEnergy:
        return GoalEnergy(goal, env.max_action_norm, mode="final", distance="l2", readout=readout)

    return run_episode(env, seed, perceive, SimulatorDynamics(env), planner, cost_for_goal, settings)
