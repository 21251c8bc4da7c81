"""Planners, costs, guardrails and the MPC loop on an analytic point mass x_{t+1} = x_t + a_t (state =
position, D = 2), where the optimum is known: from the origin, a goal 0.6 away is reached in 5 steps of
norm 0.12 under a bound of 0.2."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from jepa.errors import JEPAError
from jepa.planning.agent import AgentSettings, run_episode, summarise
from jepa.planning.costs import GoalEnergy, KeepOut, PositionProbe
from jepa.planning.interfaces import PlanResult, clip_norm
from jepa.planning.planners import CEM, MPPI, CEMSettings, GradientPlanner

MAX_NORM, HORIZON = 0.2, 5
START, GOAL = torch.zeros(2), torch.tensor([0.6, 0.0])
OPTIMUM = torch.tensor([[0.12, 0.0]] * HORIZON)


class PointMass:
    """The analytic model: positions after each action, for every candidate at once."""

    action_dim = 2

    def __init__(self) -> None:
        self.calls = 0

    def rollout(self, context: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return context.reshape(1, 1, 2) + actions.cumsum(dim=1)


def identity(states: torch.Tensor) -> torch.Tensor:
    return states


PLANNERS = {"cem": CEM, "mppi": MPPI, "gradient": GradientPlanner}


@pytest.mark.parametrize("name", PLANNERS)
def test_planner_reaches_a_reachable_goal_within_the_norm_bound(name):
    result = PLANNERS[name]().plan(PointMass(), START, GoalEnergy(GOAL, MAX_NORM), HORIZON)
    assert result.feasible and result.actions.shape == (HORIZON, 2) and result.states.shape == (HORIZON, 2)
    assert (result.states[-1] - GOAL).norm() < 0.02
    assert (result.actions.norm(dim=-1) <= MAX_NORM + 1e-6).all()
    # The states are the returned actions' own rollout.
    assert torch.allclose(result.states, START + result.actions.cumsum(dim=0), atol=1e-6)


@pytest.mark.parametrize("name", PLANNERS)
def test_warm_start_from_the_optimum_keeps_its_quality(name):
    result = PLANNERS[name]().plan(PointMass(), START, GoalEnergy(GOAL, MAX_NORM), HORIZON, init=OPTIMUM)
    assert result.feasible and result.cost < 1e-8


def test_cem_sends_each_iteration_through_one_rollout_and_is_reproducible():
    model, settings = PointMass(), CEMSettings(samples=50, iterations=7)
    a = CEM(settings).plan(model, START, GoalEnergy(GOAL, MAX_NORM), HORIZON)
    assert model.calls == settings.iterations + 1  # one call per iteration, one for the final mean
    b = CEM(settings).plan(PointMass(), START, GoalEnergy(GOAL, MAX_NORM), HORIZON)
    assert torch.equal(a.actions, b.actions)


@pytest.mark.parametrize("name", PLANNERS)
def test_plan_goes_around_a_keep_out_box(name):
    box = KeepOut((0.25, -0.1, 0.35, 0.1), identity, margin=0.02, goal_position=(0.6, 0.0))
    cost = GoalEnergy(GOAL, MAX_NORM, keep_out=box)
    assert box.violates((START + OPTIMUM.cumsum(dim=0))[None]).item()  # the straight line crosses it
    result = PLANNERS[name]().plan(PointMass(), START, cost, HORIZON)
    assert result.feasible and not box.violates(result.states[None]).item()
    assert (result.states[-1] - GOAL).norm() < 0.05
    assert (result.actions.norm(dim=-1) <= MAX_NORM + 1e-6).all()


@pytest.mark.parametrize("name", PLANNERS)
def test_no_safe_candidate_means_infeasible(name):
    # Every position within reach of the start lies in the box: no plan can be safe.
    box = KeepOut((-2.0, -2.0, 2.0, 2.0), identity, goal_position=(3.0, 0.0))
    cost = GoalEnergy(torch.tensor([3.0, 0.0]), MAX_NORM, keep_out=box)
    result = PLANNERS[name]().plan(PointMass(), START, cost, HORIZON)
    assert not result.feasible and box.violates(result.states[None]).item()


def test_goal_inside_the_keep_out_is_a_one_line_error():
    with pytest.raises(JEPAError, match="lies inside the keep-out region") as err:
        KeepOut((0.5, -0.1, 0.55, 0.1), identity, margin=0.1, goal_position=(0.6, 0.0))
    assert "\n" not in str(err.value) and "no plan can reach it safely" in str(err.value)


def test_goal_energy_modes_and_distances():
    states = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])  # one candidate, two steps
    goal = torch.tensor([1.0, 2.0])
    actions = torch.zeros(1, 2, 2)
    assert GoalEnergy(goal, 1.0)(states, actions).item() == pytest.approx(2.0)  # final, mean of (0, 4)
    assert GoalEnergy(goal, 1.0, distance="l1")(states, actions).item() == pytest.approx(1.0)
    assert GoalEnergy(goal, 1.0, mode="sum", discount=0.5)(states, actions).item() == pytest.approx(2.5 + 0.5 * 2.0)
    with pytest.raises(JEPAError):
        GoalEnergy(goal, 1.0, mode="mean")  # type: ignore[arg-type]


def test_position_probe_recovers_a_linear_map(tmp_path):
    g = torch.Generator().manual_seed(0)
    reps = torch.randn(600, 8, generator=g) * 3.0 + 1.0
    true_map, offset = torch.randn(8, 2, generator=g), torch.tensor([0.5, -1.0])
    positions = reps @ true_map + offset + 0.005 * torch.randn(600, 2, generator=g)
    probe = PositionProbe().fit(reps[:500], positions[:500], l2=1e-6)
    assert probe.error_quantile(reps[500:], positions[500:], q=0.99) < 0.03
    assert probe(reps[500:].reshape(20, 5, 8)).shape == (20, 5, 2)
    save_file(probe.state_dict(), tmp_path / "probe.safetensors")
    loaded = PositionProbe().load_state_dict(load_file(tmp_path / "probe.safetensors"))
    assert torch.equal(loaded(reps[500:]), probe(reps[500:]))
    with pytest.raises(JEPAError, match="not fitted"):
        PositionProbe()(reps)


BOX = (-0.1, -0.2, 0.1, 0.2)


class PointMassEnv:
    """A gymnasium-like point mass without walls; the keep-out box lies between start and goal."""

    def __init__(self, box: tuple[float, float, float, float] = BOX, tolerance: float = 0.05) -> None:
        self.box, self.tolerance = box, tolerance

    def reset(self, seed: int) -> tuple[torch.Tensor, dict]:
        g = torch.Generator().manual_seed(seed)
        u = torch.rand(4, generator=g)
        self.x = torch.stack([-0.7 + 0.2 * u[0], -0.1 + 0.2 * u[1]])
        self.goal = torch.stack([0.5 + 0.2 * u[2], -0.1 + 0.2 * u[3]])
        return self.x.clone(), {"goal_obs": self.goal.clone(), "state": self.x.clone()}

    def step(self, action) -> tuple[torch.Tensor, float, bool, bool, dict]:
        self.x = self.x + clip_norm(torch.as_tensor(action, dtype=torch.float32), MAX_NORM)
        x0, y0, x1, y1 = self.box
        inside = bool(x0 <= self.x[0] <= x1 and y0 <= self.x[1] <= y1)
        success = bool((self.x - self.goal).norm() < self.tolerance)
        info = {"state": self.x.clone(), "success": success, "in_keep_out": inside}
        return self.x.clone(), 0.0, success, False, info


def test_closed_loop_never_enters_the_keep_out_box():
    def perceive(obs, info):
        return torch.as_tensor(obs, dtype=torch.float32)

    def cost_for_goal(goal, info):
        box = KeepOut(BOX, identity, margin=0.03, goal_position=tuple(goal.tolist()))
        return GoalEnergy(goal, MAX_NORM, keep_out=box)

    planner = CEM(CEMSettings(samples=100, iterations=10))
    env, model = PointMassEnv(), PointMass()
    results = [run_episode(env, seed, perceive, model, planner, cost_for_goal, AgentSettings(horizon=HORIZON))
               for seed in range(50)]
    summary = summarise(results)
    print(summary)
    assert summary["violations"] == 0
    for r in results:
        x0, y0, x1, y1 = BOX
        inside = (r.path[:, 0] >= x0) & (r.path[:, 0] <= x1) & (r.path[:, 1] >= y0) & (r.path[:, 1] <= y1)
        assert not inside.any() and r.path.shape == (r.steps + 1, 2)
        assert (r.actions.norm(dim=-1) <= MAX_NORM + 1e-6).all() and len(r.plan_ms) >= 1
    assert summary["success_rate"] > 0.8


class ScriptedPlanner:
    """Returns the given results in turn and records the warm starts it was given."""

    def __init__(self, results: list[PlanResult]) -> None:
        self.results, self.inits = results, []

    def plan(self, model, context, cost, horizon, init=None) -> PlanResult:
        self.inits.append(init)
        return self.results[len(self.inits) - 1]


def test_agent_repairs_infeasible_plans_and_shifts_warm_starts():
    plan = torch.tensor([[0.0, 0.1], [0.0, 0.1], [0.1, 0.0], [0.1, 0.0], [0.0, 0.0]])
    ok = PlanResult(actions=plan, cost=0.0, feasible=True, states=plan.cumsum(dim=0))
    bad = PlanResult(actions=torch.full((HORIZON, 2), 0.1), cost=0.0, feasible=False, states=plan)
    planner = ScriptedPlanner([ok, bad, ok])
    result = run_episode(PointMassEnv(), 0, lambda obs, info: obs, PointMass(), planner,
                         lambda goal, info: GoalEnergy(goal, MAX_NORM), AgentSettings(horizon=HORIZON, step_budget=3))
    assert planner.inits[0] is None and planner.inits[2] is None  # cold start first and after a rejection
    assert torch.equal(planner.inits[1], torch.cat([plan[1:], torch.zeros(1, 2)]))
    assert torch.equal(result.actions, torch.stack([plan[0], torch.zeros(2), plan[0]]))
    assert result.rejections == 1 and result.steps == 3 and not result.success and len(result.plan_ms) == 3
