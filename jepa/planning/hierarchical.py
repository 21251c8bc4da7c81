"""The two-level planner behind the ``Planner`` interface: a high level that plans macro-actions with
the slow world model and hands its first predicted representation to the low level as a subgoal,
and a low level that is the flat MPC on the fast model (HWM, Zhang et al. 2026).

Every ``replan_every`` low-level calls (environment steps with ``execute 1``) the high level plans
``macro_horizon`` macro-actions from the current representation toward the goal (``BankCEM`` over
codes of training chunks, warm-started from its previous plan; ``ArrivalCost``: the goal energy of
the last macro-step plus a little of the mean over all of them, and the same keep-out guardrail read
on the imagined representations). Its first
predicted representation, about k steps ahead, becomes the low level's goal; when the best plan is
already closest to the goal after its first macro-action (the goal is within one macro-action), the
low level chases the goal itself. The guardrail holds at both levels; the low level's check is the
one that decides what runs (it sees every step, the high level only every k-th).

``OracleSubgoals`` is the diagnostic arm: the same low level given true waypoints (frames at the
doors of the shortest route), to tell a weak high level from a weak low level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import JEPAError
from .bank_cem import BankCEM, BankCEMSettings
from .costs import GoalEnergy
from .graph_search import GraphSearch, GraphSearchSettings
from .interfaces import Dynamics, Planner, PlanResult
from .slow_ensemble import SlowEnsemble
from .slow_model import MacroDynamics, SlowWorldModel


@dataclass
class HierarchySettings:
    """The high level's settings.

    Attributes:
        high: the high level's search: "graph" (``GraphSearch`` over imagined macro-states, its
            ``graph`` settings) or "cem" (``BankCEM`` over ``macro_horizon`` codes, its ``search``
            settings, ``ArrivalCost``).
        macro_horizon: macro-actions the bank CEM plans (each ``steps`` environment steps of the slow model).
        replan_every: low-level plans between two high-level plans.
        search: the bank CEM's samples, iterations, elites and seed.
        graph: the graph search's codes per node, depth, frontier and merge radius.
        final_tolerance: the goal is "within one macro-action" when the best plan's first imagined
            representation is at most this factor of its closest one's energy from the goal.
        sooner: weight of the mean energy over the macro-steps beside the last one's (see ``ArrivalCost``).
    """

    high: str = "graph"
    macro_horizon: int = 3
    replan_every: int = 3
    search: BankCEMSettings = field(default_factory=BankCEMSettings)
    graph: GraphSearchSettings = field(default_factory=GraphSearchSettings)
    final_tolerance: float = 1.25
    sooner: float = 0.1

    def __post_init__(self) -> None:
        if self.high not in ("graph", "cem"):
            raise JEPAError(f"unknown high-level search {self.high!r}: use 'graph' or 'cem'")
        if self.macro_horizon < 1 or self.replan_every < 1:
            raise JEPAError(f"the hierarchy needs macro_horizon >= 1 and replan_every >= 1, got {self.macro_horizon} "
                            f"and {self.replan_every}")


@dataclass
class Subgoal:
    """One high-level decision: the low-level call it was made at, the subgoal representation (None:
    the goal itself) and the high level's imagined macro-steps [M, D]."""

    call: int
    rep: torch.Tensor | None
    plan: torch.Tensor


class HierarchicalPlanner:
    """``plan(model, context, cost, horizon, init)`` as every planner; ``model`` and ``context`` are the
    fast model's (``LatentDynamics``, ``LatentContext``) and ``cost`` a ``GoalEnergy`` toward the goal.
    One instance per episode: it keeps the current subgoal and the log of decisions (``subgoals``).

    Args:
        slow: the slow world model (on the same encoder as the fast one), or several as a ``SlowEnsemble``.
        low: the low-level planner (CEM, MPPI or gradient).
        settings: the high level's settings.
    """

    def __init__(self, slow: SlowWorldModel | SlowEnsemble, low: Planner, settings: HierarchySettings | None = None) -> None:
        self.slow = slow
        self.low = low
        self.settings = settings or HierarchySettings()
        self.high = BankCEM(self.settings.search)
        self.graph = GraphSearch(self.settings.graph)
        self.dynamics = MacroDynamics(slow)
        self.subgoals: list[Subgoal] = []
        self.calls = 0
        self._target: torch.Tensor | None = None
        self._codes: torch.Tensor | None = None  # the last high-level plan: the next search's first candidate

    def plan(self, model: Dynamics, context: Any, cost: GoalEnergy, horizon: int,
             init: torch.Tensor | None = None) -> PlanResult:
        if self.calls % self.settings.replan_every == 0:
            self._target = self._decide(context.reps[-1], cost)
        self.calls += 1
        low_cost = cost if self._target is None else cost.toward(self._target)
        return self.low.plan(model, context, low_cost, horizon, init)

    def _decide(self, current: torch.Tensor, cost: GoalEnergy) -> torch.Tensor | None:
        if self.settings.high == "graph":
            route = self.graph.plan(self.slow.successors, current, cost, self.slow.bank)
            # a goal within one macro-step (or nearer than every imagined place) is chased directly
            target = route.states[0] if len(route.states) > 1 else None
            self.subgoals.append(Subgoal(self.calls, target, route.states))
            return target
        high_cost = ArrivalCost(cost, self.settings.sooner)
        result = self.high.plan(self.dynamics, current, high_cost, self.settings.macro_horizon, self.slow.bank,
                                self._codes)
        self._codes = result.actions
        per_step = high_cost.goal.per_step(result.states[None])[0]
        within_one = bool(per_step[0] <= self.settings.final_tolerance * per_step.min())
        target = None if within_one else result.states[0]
        self.subgoals.append(Subgoal(self.calls, target, result.states))
        return target


class ArrivalCost:
    """The high level's cost: the goal energy of the last macro-step plus ``sooner`` times the mean over
    all of them. The last step's alone lets the plan go away from the goal first (round a closed
    door: a sum over steps of a distance in representation space prefers waiting in front of the
    wall); the small mean term prefers, among plans that arrive, the one that arrives sooner. The
    keep-out penalty and guardrail are the goal energy's, judged on every imagined macro-step."""

    def __init__(self, goal: GoalEnergy, sooner: float) -> None:
        self.goal = goal
        self.sooner = float(sooner)
        self.max_action_norm = goal.max_action_norm

    def __call__(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        per_step = self.goal.per_step(states)
        return per_step[:, -1] + self.sooner * per_step.mean(dim=1) + self.goal.penalty(states)

    def violations(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.goal.violations(states, actions)


class OracleSubgoals:
    """The low level chasing true waypoints: ``subgoals`` are the representations of frames at the
    waypoints (in order), ``reached(i)`` tells (from the true state: this arm is a diagnostic, not an
    agent) whether waypoint i is reached, after which the next is chased, and the goal after the last."""

    def __init__(self, subgoals: list[torch.Tensor], reached: Callable[[int], bool], low: Planner) -> None:
        self.targets = subgoals
        self.reached = reached
        self.low = low
        self.index = 0

    def plan(self, model: Dynamics, context: Any, cost: GoalEnergy, horizon: int,
             init: torch.Tensor | None = None) -> PlanResult:
        while self.index < len(self.targets) and self.reached(self.index):
            self.index += 1
        target = self.targets[self.index] if self.index < len(self.targets) else None
        return self.low.plan(model, context, cost if target is None else cost.toward(target), horizon, init)
