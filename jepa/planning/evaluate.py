"""``jepa plan``'s evaluation: the same seeded episodes of an environment for four arms.

- ``random``: uniform actions in the norm ball.
- ``hold``: the zero action every step (where an environment's goal moves its objects, as Push-T's,
  the floor: how many tasks are done without acting).
- ``dataset``: the task's recorded actions (Push-T: the recorded pusher target at the end of each
  environment step's control steps, held for that step): how well the action space expresses the
  recordings the goals were replayed from.
- ``greedy``: a straight line to the goal at full speed (it reads the true positions; it fails
  where the wall stands between start and goal, which is the point of two rooms).
- ``simulator``: the planner on the true dynamics and true state (the ceiling).
- ``simulator_perceived``: the planner on the true dynamics, scored by the learned arm's distance
  between representations (``perceived_simulator.py``): a diagnostic of the representation.
- ``world_model``: the planner on the learned world model, seeing only frames (flat).
- ``hierarchical``: the two-level planner (``hierarchical.py``): the slow model's subgoals for the same
  planner on the fast model.
- ``oracle_subgoals``: that low level given true waypoints (frames at the doors of the shortest
  route) instead of the high level's subgoals: a diagnostic.

Guardrail violations are judged on the true state for every arm.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..errors import JEPAError
from .agent import AgentSettings, EpisodeResult, run_episode, summarise, task_budget
from .costs import GoalEnergy, KeepOut, PositionProbe
from .envs.protocol import PlanningEnv
from .hierarchical import HierarchicalPlanner, HierarchySettings, OracleSubgoals
from .interfaces import Planner, clip_norm
from .perceived_simulator import perceived
from .perception import Perception
from .simulator import SimulatorDynamics
from .slow_ensemble import SlowEnsemble
from .slow_model import SlowWorldModel
from .workers import map_in_workers
from .world_model import LatentContext, LatentDynamics, WorldModel

ARMS = ("random", "hold", "dataset", "greedy", "simulator", "simulator_perceived", "world_model", "hierarchical",
        "oracle_subgoals")
NEEDS_AGENT = ("simulator_perceived", "world_model", "hierarchical", "oracle_subgoals")
TWO_LEVEL = ("hierarchical", "oracle_subgoals")
# What jepa plan evaluates without --arms, by --hierarchy.
DEFAULT_ARMS = {1: ("random", "greedy", "simulator", "world_model"), 2: ("world_model", "hierarchical")}


@dataclass(frozen=True)
class GoalSettings:
    """How the planning arms score the goal (``GoalEnergy``'s mode and discount): at the last imagined
    step ("final", DINO-WM) or summed over the horizon with step t weighted by ``discount ** t`` ("sum")."""

    mode: str = "final"
    discount: float = 1.0


@dataclass
class LearnedAgent:
    """What the world-model arm needs: perception, the world model and the position probe that
    judges the keep-out guardrail in representation space (with its error margin)."""

    perception: Perception
    world: WorldModel
    probe: PositionProbe | None = None
    probe_margin: float = 0.0
    energy: str = "latent"  # "latent": distance between representations; "probe": between the positions they encode
    slow: SlowWorldModel | SlowEnsemble | None = None  # the two-level arms' slow model (or several)
    hierarchy: HierarchySettings | None = None

    @property
    def readout(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """What the goal energy compares: standardised representations, or the positions the probe reads."""
        return self.probe if self.energy == "probe" else self.world.normalize


def _policy_episode(env: PlanningEnv, seed: int, policy: Callable[[np.ndarray, np.ndarray, np.random.Generator], Any],
                    budget: int) -> EpisodeResult:
    _, info = env.reset(seed=seed)
    budget = task_budget(info, budget)
    rng = np.random.default_rng(seed)
    goal = np.asarray(info["goal"], dtype=np.float32)
    path, actions, violations, success = [torch.as_tensor(info["state"])], [], 0, False
    while len(actions) < budget and not success:
        action = np.asarray(policy(np.asarray(info["state"]), goal, rng), dtype=np.float32)
        _, _, terminated, truncated, info = env.step(action)
        actions.append(torch.as_tensor(action))
        path.append(torch.as_tensor(info["state"]))
        violations += int(bool(info["in_keep_out"]))
        success = bool(info["success"])
        if terminated or truncated:
            break
    return EpisodeResult(seed, success, len(actions), torch.stack(path).float(),
                         torch.stack(actions) if actions else torch.zeros(0, 2), 0, violations, [])


def random_policy(max_norm: float) -> Callable:
    def act(state: np.ndarray, goal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        angle, radius = rng.uniform(0, 2 * math.pi), max_norm * math.sqrt(rng.uniform())
        return np.array([radius * math.cos(angle), radius * math.sin(angle)])
    return act


def hold_policy() -> Callable:
    def act(state: np.ndarray, goal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(2)
    return act


def dataset_policy(env: PlanningEnv) -> Callable:
    """The recorded actions of the current task, in order (``env.recorded_action(k)`` for step k)."""
    if not hasattr(env, "recorded_action"):
        raise JEPAError(f"{env.name} has no recorded actions: the dataset arm needs tasks from recorded episodes")
    step = iter(range(10**9))

    def act(state: np.ndarray, goal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return env.recorded_action(next(step))
    return act


def greedy_policy(max_norm: float) -> Callable:
    def act(state: np.ndarray, goal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return clip_norm(torch.as_tensor(goal - state, dtype=torch.float32), max_norm).numpy()
    return act


def _keep_out(env: PlanningEnv, position_of: Callable, margin: float, info: dict) -> KeepOut | None:
    if env.keep_out is None:
        return None
    return KeepOut(env.keep_out, position_of, margin=margin, goal_position=tuple(info["goal"]))


def simulator_episode(env: PlanningEnv, seed: int, planner: Planner, settings: AgentSettings,
                      margin: float, scoring: GoalSettings = GoalSettings(),
                      readout: Callable[[torch.Tensor], torch.Tensor] | None = None) -> EpisodeResult:
    """An episode on the true dynamics. The goal cost compares ``readout`` of the states: by default
    what the environment names (``goal_features``: Push-T's pixels and angle on one scale), for the
    ``simulator_perceived`` arm the world model's representations of the rendered frames."""

    def perceive(obs: Any, info: dict) -> torch.Tensor:
        # The ceiling sees the true state; the goal observation stands for the goal position.
        return torch.as_tensor(info["goal"] if obs is info.get("goal_obs") else info["state"], dtype=torch.float32)

    def cost_for_goal(goal: torch.Tensor, info: dict) -> GoalEnergy:
        keep = _keep_out(env, lambda s: s[..., :2], margin, info)
        # An environment whose state mixes units (Push-T: pixels and an angle) says what to compare.
        return GoalEnergy(goal, env.max_action_norm, **asdict(scoring), distance="l2", keep_out=keep,
                          readout=readout or getattr(env, "goal_features", None))

    return run_episode(env, seed, perceive, SimulatorDynamics(env), planner, cost_for_goal, settings)


def world_model_episode(env: PlanningEnv, seed: int, planner: Planner, settings: AgentSettings,
                        agent: LearnedAgent, scoring: GoalSettings = GoalSettings()) -> EpisodeResult:
    history = agent.world.config.history
    action_dim = int(env.action_space.shape[0])
    if agent.world.action_dim != action_dim:
        raise JEPAError(f"the world model takes {agent.world.action_dim}-D actions but {env.name} acts in "
                        f"{action_dim}-D")
    if (env.keep_out is not None or agent.energy == "probe") and agent.probe is None:
        raise JEPAError("a keep-out region and the probe energy need the world model's position probe "
                        "(jepa world fits it when the episodes have states)")

    def perceive(obs: Any, info: dict) -> torch.Tensor:
        return agent.perception.encode(np.asarray(obs)[None])[0]

    def context(reps: list[torch.Tensor], actions: list[torch.Tensor]) -> LatentContext:
        known = reps[-history:]
        past = actions[len(actions) - (len(known) - 1):] if len(known) > 1 else []
        past_t = torch.stack(past) if past else torch.zeros(0, action_dim)
        return LatentContext(torch.stack(known), past_t)

    def cost_for_goal(goal: torch.Tensor, info: dict) -> GoalEnergy:
        keep = _keep_out(env, agent.probe, agent.probe_margin, info) if agent.probe is not None else None
        return GoalEnergy(goal, env.max_action_norm, **asdict(scoring), distance="l2", keep_out=keep,
                          readout=agent.readout)

    return run_episode(env, seed, perceive, LatentDynamics(agent.world), planner, cost_for_goal, settings,
                       context_fn=context)


def two_level_episode(arm: str, env: PlanningEnv, seed: int, low: Planner, settings: AgentSettings,
                      agent: LearnedAgent, scoring: GoalSettings = GoalSettings()) -> EpisodeResult:
    """An episode of a two-level arm: ``hierarchical`` (the slow model's subgoals) or
    ``oracle_subgoals`` (frames at the waypoints of ``env.waypoints()``), ``low`` below either."""
    if arm == "hierarchical":
        if agent.slow is None:
            raise JEPAError("the hierarchical arm needs a slow world model (--slow, written by jepa world slow)")
        planner: Any = HierarchicalPlanner(agent.slow, low, agent.hierarchy)
    else:
        if not hasattr(env, "waypoints"):
            raise JEPAError(f"{env.name} gives no waypoints for the oracle_subgoals arm")
        env.reset(seed=seed)  # the task of this seed, to read its waypoints (run_episode resets it again)
        points = env.waypoints()
        reps = list(agent.perception.encode(np.asarray(env.render_states(np.stack(points))))) if points else []
        # Reached: within the task's success radius (judged on the true state: this arm is a diagnostic).
        # A wider one (half a door) let the agent turn toward the next door before it was through this
        # one and cut into the wall: a true-state greedy follower then reaches 46/50 tasks, 50/50 at 0.05.
        radius = env.config.success_radius
        planner = OracleSubgoals(reps, lambda i: float(np.linalg.norm(env.state - points[i])) <= radius, low)
    result = world_model_episode(env, seed, planner, settings, agent, scoring)
    if arm == "hierarchical" and agent.probe is not None:
        result.subgoals = [[round(float(v), 4) for v in agent.probe(s.rep)] for s in planner.subgoals if s.rep is not None]
    return result


def evaluate(env: PlanningEnv, seeds: Iterable[int], arms: Iterable[str], planner_for: Callable[[], Planner],
             settings: AgentSettings, agent: LearnedAgent | None = None, margin: float = 0.0,
             scoring: GoalSettings = GoalSettings(),
             progress: Callable[[str, int], None] | None = None,
             low_planner_for: Callable[[], Planner] | None = None, workers: int = 1) -> dict[str, Any]:
    """Runs every arm on the same seeded episodes; returns per-arm summaries and episode records.
    ``low_planner_for`` makes the two-level arms' low level (default: ``planner_for``); ``workers``
    episodes play at once, in forked processes (``workers.py``; the results do not depend on it)."""
    seeds = list(seeds)
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise JEPAError(f"unknown arm {unknown[0]!r}: arms are {', '.join(ARMS)}")
    out: dict[str, Any] = {}
    for arm in arms:
        if arm in NEEDS_AGENT and agent is None:
            raise JEPAError(f"the {arm} arm needs --encoder and --world")

        def play(seed: int, arm: str = arm) -> EpisodeResult:
            try:
                if arm in TWO_LEVEL:
                    return two_level_episode(arm, env, seed, (low_planner_for or planner_for)(), settings, agent,
                                             scoring)
                return _episode(arm, env, seed, planner_for, settings, agent, margin, scoring)
            except ValueError as exn:  # the environment found no start or goal clear of the keep-out region
                raise JEPAError(f"{env.name} episode {seed}: {exn}") from None

        results = []
        t0 = time.perf_counter()
        episodes = map_in_workers(play, seeds, workers)
        try:
            for i, res in enumerate(episodes):
                results.append(res)
                if progress is not None:
                    progress(arm, i + 1)
        finally:
            episodes.close()  # a stop between episodes ends the workers now
        out[arm] = {"summary": {**summarise(results), "wall_s": round(time.perf_counter() - t0, 1)},
                    "episodes": results}
    return out


def _episode(arm: str, env: PlanningEnv, seed: int, planner_for: Callable[[], Planner], settings: AgentSettings,
             agent: LearnedAgent | None, margin: float, scoring: GoalSettings) -> EpisodeResult:
    if arm == "random":
        return _policy_episode(env, seed, random_policy(env.max_action_norm), settings.step_budget)
    if arm == "hold":
        return _policy_episode(env, seed, hold_policy(), settings.step_budget)
    if arm == "dataset":
        return _policy_episode(env, seed, dataset_policy(env), settings.step_budget)
    if arm == "greedy":
        return _policy_episode(env, seed, greedy_policy(env.max_action_norm), settings.step_budget)
    if arm == "simulator":
        return simulator_episode(env, seed, planner_for(), settings, margin, scoring)
    if arm == "simulator_perceived":  # scored at the last step: rendering every step would cost the horizon times more
        return simulator_episode(env, seed, planner_for(), settings, margin, GoalSettings(mode="final"),
                                 readout=perceived(env, agent.perception, agent.world))
    return world_model_episode(env, seed, planner_for(), settings, agent, scoring)
