"""The contracts between the planning agent's parts: a world model (anything that rolls a state
forward under actions), a cost, and a planner. Each part only sees these, so that the learned
world model and the true simulator are interchangeable behind one planner (the simulator arm of
``jepa plan`` is the same planner on the true dynamics).

Shapes: B candidate action sequences, H horizon steps, A action dimensions, D state dimensions
(a representation for a learned world model, the true state for a simulator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch


class Dynamics(Protocol):
    """Rolls states forward: ``rollout(context, actions [B, H, A]) -> states [B, H, D]``, the state
    after each action. ``context`` is what the model needs to start from (opaque to planners: a
    history of representations for a learned model, the true state for a simulator); the model
    broadcasts it to the B candidates. Rollouts must be differentiable in ``actions`` for the
    gradient planner."""

    action_dim: int

    def rollout(self, context: Any, actions: torch.Tensor) -> torch.Tensor: ...


class Cost(Protocol):
    """Scores imagined futures. ``__call__(states [B, H, D], actions [B, H, A]) -> [B]`` is what planners
    minimise (goal energy plus soft penalties); ``violations(states, actions) -> bool [B]`` marks
    candidates that break a hard guardrail (never executed); ``max_action_norm`` bounds every action."""

    max_action_norm: float

    def __call__(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor: ...

    def violations(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor: ...


@dataclass
class PlanResult:
    """A planner's answer.

    Attributes:
        actions: [H, A] the best action sequence found that breaks no hard guardrail; when none of the
            candidates is safe, the best one regardless (``feasible`` False: the agent must not run it).
        cost: its cost.
        feasible: whether ``actions`` breaks no hard guardrail under the model.
        states: [H, D] the imagined states of ``actions``.
    """

    actions: torch.Tensor
    cost: float
    feasible: bool
    states: torch.Tensor


class Planner(Protocol):
    """``plan(model, context, cost, horizon, init=None) -> PlanResult``; ``init`` [H, A] warm-starts the
    search (the previous plan shifted by the steps executed)."""

    def plan(self, model: Dynamics, context: Any, cost: Cost, horizon: int,
             init: torch.Tensor | None = None) -> PlanResult: ...


def clip_norm(actions: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scales every action (last dimension) whose norm exceeds ``max_norm`` back onto the norm ball."""
    norm = actions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return actions * (max_norm / norm).clamp(max=1.0)
