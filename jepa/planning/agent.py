"""The model-predictive control loop: perceive, plan, execute the first actions, re-plan.

The environment is gymnasium-style: ``reset(seed=...) -> (obs, info)`` with ``info["goal_obs"]`` (an
observation of the goal) and ``info["state"]`` (the true state, for the record only), and
``step(action) -> (obs, reward, terminated, truncated, info)`` with ``info["success"]`` and
``info["in_keep_out"]``. The agent never reads the true state to decide anything.

Perception is split in two so that one loop serves single-frame and history-of-frames models:
``perceive(obs, info) -> representation`` encodes one frame, and ``context_fn(reps, actions)`` builds
the model's context from every representation and action so far (by default the latest
representation).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import JEPAError
from .interfaces import Cost, Dynamics, Planner

Perceive = Callable[[Any, dict], torch.Tensor]
ContextFn = Callable[[list[torch.Tensor], list[torch.Tensor]], Any]
CostForGoal = Callable[[torch.Tensor, dict], Cost]


# Two-Rooms tasks take about 5 steps; 40 leaves a wide margin (the README's figures ran with it).
DEFAULT_STEP_BUDGET = 40


@dataclass
class AgentSettings:
    """The control loop's settings.

    Attributes:
        horizon: actions per plan.
        execute_k: actions executed before re-planning (1: re-plan after every step).
        step_budget: environment steps before the episode counts as failed; None: the task's own budget
            where the environment sets one (Four-Rooms: 2.8 times its shortest path), else
            ``DEFAULT_STEP_BUDGET``.
        warm_start: start each plan from the previous one, shifted by the steps executed.
    """

    horizon: int = 5
    execute_k: int = 1
    step_budget: int | None = None
    warm_start: bool = True


@dataclass
class EpisodeResult:
    """One episode's record.

    Attributes:
        seed: the environment's reset seed.
        success: whether the environment reported success within the budget.
        steps: environment steps taken (rejections' zero actions included).
        path: [steps + 1, S] the true states, from ``info["state"]``.
        actions: [steps, A] the executed actions.
        rejections: plans not executed because no safe candidate was found (a zero action ran instead).
        violations: executed steps whose true state was in the keep-out region (``info["in_keep_out"]``).
        plan_ms: wall-clock milliseconds of every ``planner.plan`` call.
        subgoals: positions (x, y) of the subgoals a two-level planner chose, as its position probe reads
            them (empty for other planners).
    """

    seed: int
    success: bool
    steps: int
    path: torch.Tensor
    actions: torch.Tensor
    rejections: int
    violations: int
    plan_ms: list[float] = field(default_factory=list)
    subgoals: list[list[float]] = field(default_factory=list)

    @property
    def plan_ms_per_step(self) -> float | None:
        """Planning time per environment step: all ``plan`` calls' time over the steps taken."""
        return sum(self.plan_ms) / self.steps if self.steps and self.plan_ms else None


def latest(reps: list[torch.Tensor], actions: list[torch.Tensor]) -> torch.Tensor:
    """The default context: the latest representation (a single-frame model)."""
    return reps[-1]


def run_episode(env: Any, seed: int, perceive: Perceive, model: Dynamics, planner: Planner,
                cost_for_goal: CostForGoal, settings: AgentSettings | None = None,
                context_fn: ContextFn = latest) -> EpisodeResult:
    """Runs one closed-loop episode.

    Args:
        env: a gymnasium-style environment (see the module docstring for the info keys it must give).
        seed: passed to ``env.reset``.
        perceive: ``(obs, info) -> representation`` of one frame; called without gradients.
        model: the world model the planner rolls out.
        planner: the planner.
        cost_for_goal: ``(goal representation, reset info) -> Cost``, e.g. a ``GoalEnergy`` with a keep-out
            region; the reset info lets it read the goal's position for the keep-out check.
        settings: the loop's settings.
        context_fn: ``(representations so far, executed actions so far) -> model context``.

    Returns:
        the episode's record.
    """
    cfg = settings or AgentSettings()
    if not 1 <= cfg.execute_k <= cfg.horizon:
        raise JEPAError(f"execute_k must be between 1 and the horizon ({cfg.horizon}), got {cfg.execute_k}")
    obs, info = env.reset(seed=seed)
    budget = task_budget(info, cfg.step_budget)
    with torch.no_grad():
        cost = cost_for_goal(perceive(info["goal_obs"], info), info)
        reps = [perceive(obs, info)]
    path = [_as_tensor(info["state"])]
    actions: list[torch.Tensor] = []
    plan_ms: list[float] = []
    rejections = violations = 0
    success = terminated = truncated = False
    warm: torch.Tensor | None = None
    while len(actions) < budget and not success:
        t0 = time.perf_counter()
        result = planner.plan(model, context_fn(reps, actions), cost, cfg.horizon, warm if cfg.warm_start else None)
        plan_ms.append((time.perf_counter() - t0) * 1e3)
        if result.feasible:
            to_run = result.actions[: cfg.execute_k]
            rest = result.actions[cfg.execute_k:]
            warm = torch.cat([rest, torch.zeros(cfg.horizon - rest.shape[0], rest.shape[1],
                                                dtype=rest.dtype, device=rest.device)])
        else:
            # Repair: staying put is safe while the current state is; the next plan starts cold, since
            # the rejected plan is no place to search from.
            rejections += 1
            to_run = torch.zeros_like(result.actions[:1])
            warm = None
        for action in to_run:
            obs, _, terminated, truncated, info = env.step(action.detach().cpu().numpy())
            actions.append(action.detach())
            path.append(_as_tensor(info["state"]))
            violations += int(bool(info.get("in_keep_out", False)))
            with torch.no_grad():
                reps.append(perceive(obs, info))
            success = bool(info.get("success", False))
            if success or terminated or truncated or len(actions) >= budget:
                break
        if terminated or truncated:
            break
    action_dim = int(getattr(model, "action_dim", 0))
    return EpisodeResult(
        seed=seed, success=success, steps=len(actions), path=torch.stack(path),
        actions=torch.stack(actions).cpu() if actions else torch.zeros(0, action_dim),
        rejections=rejections, violations=violations, plan_ms=plan_ms)


def task_budget(info: dict[str, Any], step_budget: int | None) -> int:
    """The steps an episode may take: the task's own budget (``info["budget"]``: Four-Rooms gives 2.8
    times each task's shortest path) or ``DEFAULT_STEP_BUDGET`` where it sets none; a given
    ``step_budget`` caps it."""
    own = info.get("budget")
    if step_budget is None:
        return DEFAULT_STEP_BUDGET if own is None else int(own)
    return step_budget if own is None else min(step_budget, int(own))


def summarise(results: Sequence[EpisodeResult]) -> dict[str, float | int | None]:
    """Aggregates episodes.

    Args:
        results: the episodes' records.

    Returns:
        episodes, success_rate, mean_steps_to_success (None without a success), violations (executed steps
        in the keep-out region, all episodes), episodes_with_violation, rejections, plan_ms_mean,
        plan_ms_median (over every re-plan of every episode; None without one), plan_ms_per_step_median and
        plan_ms_per_step_p95 (over episodes, each its planning time over its steps; nearest-rank p95).
    """
    wins = [r.steps for r in results if r.success]
    ms = [t for r in results for t in r.plan_ms]
    per_step = sorted(r.plan_ms_per_step for r in results if r.plan_ms_per_step is not None)
    return {
        "episodes": len(results),
        "success_rate": len(wins) / len(results) if results else 0.0,
        "mean_steps_to_success": statistics.fmean(wins) if wins else None,
        "violations": sum(r.violations for r in results),
        "episodes_with_violation": sum(r.violations > 0 for r in results),
        "rejections": sum(r.rejections for r in results),
        "plan_ms_mean": statistics.fmean(ms) if ms else None,
        "plan_ms_median": statistics.median(ms) if ms else None,
        # Over tasks: each task's planning time over its environment steps (what a two-level planner
        # must not raise: it plans rarely at the top and cheaply at the bottom).
        "plan_ms_per_step_median": statistics.median(per_step) if per_step else None,
        "plan_ms_per_step_p95": per_step[min(len(per_step) - 1, math.ceil(0.95 * len(per_step)) - 1)] if per_step else None,
    }


def _as_tensor(state: Any) -> torch.Tensor:
    return torch.as_tensor(state).detach().to("cpu", torch.float32)
