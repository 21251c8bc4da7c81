"""``jepa plan``: the planning agent in a registered environment, four arms over the same seeded episodes; writes
``plan.json``, ``trajectories.png``, ``energy.png`` and ``frames.png``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import write_json_atomic
from ..errors import JEPAError
from ..progress import Progress
from ..runlock import folders_released_after, take_folder
from ..stopping import StopRequested, exit_code, raise_if_stop_requested, stop_signals
from .agent import AgentSettings
from .costs import GoalEnergy
from .envs.registry import make_env
from .evaluate import DEFAULT_ARMS, NEEDS_AGENT, TWO_LEVEL, GoalSettings, LearnedAgent, evaluate
from .graph_search import GraphSearchSettings
from .hierarchical import HierarchySettings
from .perception import Perception
from .planners import CEM, MPPI, CEMSettings, GradientPlanner, GradientSettings, MPPISettings
from .plots import plot_energy, plot_final_frames, plot_trajectories
from .simulator import SimulatorDynamics
from .slow_ensemble import SlowEnsemble
from .workers import usable_workers, worker_threads
from .world_export import load_position_probe, load_slow_model, load_world_model, read_world_config
from .world_model import LatentContext, LatentDynamics


def make_planner(args: argparse.Namespace, seed: int, samples: int | None = None, iterations: int | None = None):
    """The planner of ``--planner`` with ``--samples`` and ``--iterations`` (or the given ones)."""
    samples = samples or args.samples
    iterations = iterations or args.iterations
    if args.planner == "cem":
        # DINO-WM keeps the best 10% (30 of 300) as elites.
        return CEM(CEMSettings(samples=samples, iterations=iterations, elites=max(2, samples // 10), seed=seed))
    if args.planner == "mppi":
        return MPPI(MPPISettings(samples=samples, iterations=iterations, seed=seed))
    return GradientPlanner(GradientSettings(steps=iterations * 3, seed=seed))


@torch.no_grad()
def energy_grid(dynamics, context: Any, cost: GoalEnergy, max_norm: float, n: int = 41) -> torch.Tensor:
    """Goal energy after one action, over an n x n grid of actions [rows: y, cols: x]."""
    axis = torch.linspace(-max_norm, max_norm, n)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    actions = torch.stack([xs.flatten(), ys.flatten()], dim=1)[:, None]
    return cost.energy(dynamics.rollout(context, actions)).reshape(n, n)


def _landscapes(env, agent: LearnedAgent | None, seed: int) -> dict[str, torch.Tensor]:
    _, info = env.reset(seed=seed)
    high = env.max_action_norm
    start = torch.as_tensor(info["state"], dtype=torch.float32)
    goal = torch.as_tensor(info["goal"], dtype=torch.float32)
    readout = getattr(env, "goal_features", None)
    out = {"simulator": energy_grid(SimulatorDynamics(env), start, GoalEnergy(goal, high, readout=readout), high)}
    if agent is not None:
        rep = agent.perception.encode(np.asarray(env.render())[None])
        goal_rep = agent.perception.encode(np.asarray(info["goal_obs"])[None])[0]
        context = LatentContext(rep, torch.zeros(0, agent.world.action_dim))
        out[f"world_model ({agent.energy})"] = energy_grid(
            LatentDynamics(agent.world), context, GoalEnergy(goal_rep, high, readout=agent.readout), high)
    return out


TASK_KEYS = ("closed_door", "shortest_path", "shortest_steps", "budget", "keep_out", "episode", "t")


def plan_main(args: argparse.Namespace) -> int:
    """``jepa plan`` with its arguments read (``jepa.planning.commands.plan_parser``)."""
    with folders_released_after():
        try:
            return _plan(args)
        except StopRequested as stop:  # raised between episodes by the progress callback
            print(f"{stop}: no plan.json was written; the same command plays the episodes again",
                  file=sys.stderr, flush=True)
            return exit_code(stop.signum)


def _plan(args: argparse.Namespace) -> int:
    if args.episodes < 1 or (args.steps is not None and args.steps < 1):
        raise JEPAError("--episodes and --steps must be >= 1")
    if not args.discount > 0:
        raise JEPAError(f"--discount must be > 0, got {args.discount}")
    workers = min(usable_workers(args.workers), args.episodes)  # no idle workers: plan.json records what ran
    if args.arms is None:
        args.arms = list(DEFAULT_ARMS[args.hierarchy])
    two_level = [a for a in args.arms if a in TWO_LEVEL]
    if "hierarchical" in two_level and args.hierarchy != 2:
        raise JEPAError("the hierarchical arm plans with two levels: add --hierarchy 2 and --slow DIR")
    if args.hierarchy == 2 and not args.slow:
        raise JEPAError("--hierarchy 2 needs --slow DIR (the world/ folder of jepa world slow)")
    tasks = {"tasks": args.tasks} if args.tasks else {}  # an environment without task files refuses it in one line
    default = make_env(args.env, **tasks)  # the environment as registered: its step and agent size
    half_step = default.max_action_norm / 2
    agent = None
    needing = [a for a in args.arms if a in NEEDS_AGENT]
    if needing:
        if not args.encoder or not args.world:
            raise JEPAError(f"the {needing[0]} arm needs --encoder and --world (or leave it out with --arms)")
        seen = read_world_config(args.world)
        perception = Perception.load(args.encoder, grid=int(seen["grid"]), blur=float(seen.get("blur", 0.0)))
        world, _ = load_world_model(args.world, perception.encoder_id)
        probe, probe_error = load_position_probe(args.world)
        if (args.keep_out or args.energy == "probe") and probe is None:
            raise JEPAError(f"{args.world} has no position probe (its episodes had no states): the keep-out "
                            "guardrail and --energy probe need it")
        margin = args.margin if args.margin is not None else probe_error + half_step
        agent = LearnedAgent(perception, world, probe, margin, args.energy)
        if args.hierarchy == 2:
            members = [load_slow_model(d, perception.encoder_id, args.world)[0] for d in args.slow]
            agent.slow = members[0] if len(members) == 1 else SlowEnsemble(members)
            agent.hierarchy = HierarchySettings(args.high, args.macro_horizon, args.replan_every,
                                                graph=GraphSearchSettings(disagreement=args.disagreement))
    # Every arm plays the same episodes: starts and goals clear of the widest margin any arm keeps.
    clearance = max(half_step, agent.probe_margin if agent else 0.0) + default.config.agent_radius
    env = make_env(args.env, keep_out=tuple(args.keep_out) if args.keep_out else None, keep_out_clearance=clearance,
                   **tasks)
    cfg = env.config
    out = Path(args.out or (Path(args.world) / "plan" if args.world else "runs/plan"))
    take_folder(out, "jepa plan", hint="give another --out")
    if (out / "plan.json").exists() and not args.overwrite:
        raise JEPAError(f"{out} already holds a plan.json: pass --overwrite to replace it, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    settings = AgentSettings(horizon=args.horizon, execute_k=args.execute, step_budget=args.steps)
    seeds = list(range(args.seed, args.seed + args.episodes))
    counter = iter(range(10**9))
    bar = Progress(len(seeds) * len(args.arms), "episodes")

    def progress(arm: str, done: int) -> None:
        raise_if_stop_requested()
        bar.update(next(counter) + 1, f"{arm} {done}/{len(seeds)}")

    with stop_signals("stopping after the current episode, writing nothing"):
        runs = evaluate(env, seeds, args.arms, lambda: make_planner(args, 0), settings, agent,
                        margin=half_step, scoring=GoalSettings(args.goal, args.discount), progress=progress,
                        low_planner_for=lambda: make_planner(args, 0, args.low_samples, args.low_iterations),
                        workers=workers)
    bar.close()
    goals, tasks = {}, {}
    for s in seeds:
        _, info = env.reset(seed=s)
        goals[s] = torch.as_tensor(info["goal"])
        # The task as the environment drew it (Four-Rooms: closed door, shortest path, budget), saved with the results.
        tasks[s] = {"start": [round(float(v), 4) for v in info["state"]], "goal": [round(float(v), 4) for v in info["goal"]],
                    **{k: info[k] for k in TASK_KEYS if k in info}}
    report = {
        "env": {"name": env.name, **{k: getattr(cfg, k) for k in cfg.__dataclass_fields__}},
        "settings": {"episodes": args.episodes, "seed": args.seed, "steps": args.steps, "horizon": args.horizon,
                     "execute": args.execute, "planner": args.planner, "samples": args.samples,
                     "iterations": args.iterations, "world": args.world, "encoder": args.encoder, "tasks": args.tasks,
                     "margin": agent.probe_margin if agent else None,
                     "perception": agent.perception.settings if agent else None,
                     "energy": args.energy, "goal": args.goal,
                     "discount": args.discount, "hierarchy": args.hierarchy,
                     # Planning ms per step are measured inside each worker, on its share of the threads.
                     "workers": workers, "threads_per_worker": worker_threads(workers),
                     **({"slow": args.slow if len(args.slow) > 1 else args.slow[0],
                         **({"disagreement": args.disagreement} if len(args.slow) > 1 else {}), "high": args.high, "macro_horizon": args.macro_horizon, "replan_every": args.replan_every,
                         "low_samples": args.low_samples, "low_iterations": args.low_iterations,
                         "steps_per_macro_action": agent.slow.config.steps}
                        if agent is not None and agent.slow is not None else {})},
        "arms": {arm: r["summary"] for arm, r in runs.items()},
        "episodes": {arm: [{"seed": e.seed, "success": e.success, "steps": e.steps, "violations": e.violations,
                            "rejections": e.rejections,
                            "final_distance": round(float((e.path[-1] - goals[e.seed]).norm()), 4),
                            "plan_ms_per_step": round(e.plan_ms_per_step, 2) if e.plan_ms_per_step else None,
                            **({"subgoals": e.subgoals} if e.subgoals else {}), **tasks.get(e.seed, {})}
                           for e in r["episodes"]] for arm, r in runs.items()},
    }
    write_json_atomic(out / "plan.json", report)
    plot_trajectories({a: r["episodes"] for a, r in runs.items()}, goals, env, out / "trajectories.png")
    plot_energy(_landscapes(env, agent, seeds[0]), env.max_action_norm, out / "energy.png")
    plot_final_frames({a: r["episodes"] for a, r in runs.items()}, env, out / "frames.png")
    print(table(report["arms"]))
    print(f"written to {out} (plan.json, trajectories.png, energy.png, frames.png)")
    return 0


def table(arms: dict[str, dict[str, Any]]) -> str:
    rows = [f"{'arm':<16} {'success':>8} {'steps':>6} {'violations':>10} {'rejected':>8} {'plan ms':>8} {'ms/step':>8}"]
    for arm, s in arms.items():
        steps = f"{s['mean_steps_to_success']:.1f}" if s["mean_steps_to_success"] is not None else "-"
        ms = f"{s['plan_ms_mean']:.0f}" if s["plan_ms_mean"] is not None else "-"
        per_step = f"{s['plan_ms_per_step_median']:.0f}" if s.get("plan_ms_per_step_median") is not None else "-"
        rows.append(f"{arm:<16} {100 * s['success_rate']:>7.0f}% {steps:>6} {s['violations']:>10} "
                    f"{s['rejections']:>8} {ms:>8} {per_step:>8}")
    return "\n".join(rows)
