"""What every planner's search shares: the best candidate seen (safe and overall), the ranking that
puts guardrail violators last, and seeded noise drawn on the CPU and moved to the model's device (so
a plan is reproducible and the same on CPU and GPU)."""

from __future__ import annotations

from typing import Any

import torch

from .interfaces import Cost, Dynamics, PlanResult


class BestSeen:
    """The lowest-cost safe candidate and the lowest-cost candidate overall, across a whole search.
    Kept as tensors and updated with ``torch.where``, so the search never waits on the device."""

    def __init__(self) -> None:
        self.safe: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.any: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def evaluate(self, model: Dynamics, context: Any, cost: Cost,
                 candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rolls out candidates [B, H, A] in one call, records them and returns (costs [B], violated [B])."""
        states = model.rollout(context, candidates)
        costs = cost(states, candidates)
        violated = cost.violations(states, candidates)
        self.record(candidates, states, costs, violated)
        return costs, violated.to(torch.bool)

    def record(self, actions: torch.Tensor, states: torch.Tensor, costs: torch.Tensor,
               violated: torch.Tensor) -> None:
        """Keeps the better of the recorded bests and this batch's (all tensors detached)."""
        costs = _finite_costs(costs.detach())
        actions, states, violated = actions.detach(), states.detach(), violated.to(torch.bool)
        self.safe = _keep_better(self.safe, actions, states, costs.masked_fill(violated, float("inf")))
        self.any = _keep_better(self.any, actions, states, costs)

    def result(self) -> PlanResult:
        """The safe best if one was seen (``feasible``), else the overall best."""
        assert self.safe is not None and self.any is not None, "no candidate was evaluated"
        feasible = bool(torch.isfinite(self.safe[0]))
        c, a, st = self.safe if feasible else self.any
        return PlanResult(actions=a.clone(), cost=float(c), feasible=feasible, states=st.clone())


def _keep_better(prev: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None, actions: torch.Tensor,
                states: torch.Tensor, costs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    i = costs.argmin()
    new = (costs[i], actions[i], states[i])
    if prev is None:
        return new
    better = new[0] < prev[0]
    return tuple(torch.where(better, n, p) for n, p in zip(new, prev))  # type: ignore[return-value]


def _finite_costs(costs: torch.Tensor) -> torch.Tensor:
    """NaN and infinite costs become the largest finite value: ranked last, but still comparable, so
    only the guardrail (set to +inf in ``BestSeen``) can make a candidate unusable."""
    big = torch.finfo(costs.dtype).max
    return costs.nan_to_num(nan=big, posinf=big, neginf=-big)


def rank_key(costs: torch.Tensor, violated: torch.Tensor) -> torch.Tensor:
    """Costs plus a penalty larger than the batch's cost spread on violating candidates, so every
    violating candidate ranks below every safe one whatever the cost's scale; among violators the
    cost (with its soft penalties) still orders them, so the search moves out of the region."""
    c = _finite_costs(costs)
    return c + violated.to(c.dtype) * (c.max() - c.min() + 1.0)


def seeded_randn(shape: tuple[int, ...], generator: torch.Generator, device: torch.device,
                 dtype: torch.dtype) -> torch.Tensor:
    """Standard normal noise from ``generator`` (on its device), moved to ``device``."""
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
