"""Push-T: push a T-shaped block to a goal pose with a round pusher, in gym-pusht's pymunk simulation,
the environment the shared Push-T episodes were recorded in (their actions replayed from each
episode's first state reproduce the recorded states to within 1e-4 px: ``push_t_tasks.replay_drift``).

- State: float32 [5], pusher x, y, block x, y, block angle (radians in [0, 2 pi)), in the 512 x 512
  workspace, as the episodes record it. Set exactly: the block's angle before its position
  (gym-pusht's ``reset_to_state`` sets the position first, which turns the block about its centre of
  gravity and moves it), then read back and checked. Velocities are not part of the state: a state
  set, and every state ``step_states`` starts from, is at rest (restarting recorded episodes at rest
  moves the state 25 control steps later by a median 0.01 px: ``push_t_tasks``).
- Actions: relative, as DINO-WM's: float32 [2]; the pusher's target is its position at the start of
  the step plus ``action_scale`` times the action (a zero action holds it where it is), held for
  ``frame_skip`` control steps of 0.1 s (gym-pusht's PD control at 10 Hz, 10 physics substeps each).
  One environment step is therefore 0.5 s, the frame skip of DINO-WM's world model.
- Success: the distance over (pusher x, y, block x, y) to the goal under ``success_distance`` px and
  the block's angle within ``success_angle`` of the goal's, checked after every control step, so
  that it counts at any step of the budget.
- Tasks: ``reset(seed=i)`` plays task ``i`` of ``tasks`` (a file written by ``jepa world pusht-tasks``:
  start and goal states from held-out episodes, the goal being where the next 25 recorded actions
  lead); without one, a random start (gym-pusht's ranges) and a random goal.

gym-pusht renders the fixed goal region of its own task (a green T at the centre) in every frame, as in
the shared episodes; it is part of the scene, not this environment's goal.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch

from ...errors import JEPAError
from ..interfaces import clip_norm
from .setup import configure

WORKSPACE = 512.0
CONTROL_HZ = 10
SUBSTEPS = 10  # physics steps of 0.01 s per control step, as gym-pusht
PUSHER_RADIUS = 15.0
# The T block's outline in its body frame (gym-pusht's add_tee with scale 30, length 4): the bar's and
# the stem's corners, the keypoints that the simulator arm's goal cost compares.
T_VERTICES = torch.tensor([[-60.0, 30.0], [60.0, 30.0], [60.0, 0.0], [-60.0, 0.0],
                           [-15.0, 30.0], [-15.0, 120.0], [15.0, 120.0], [15.0, 30.0]])


def _gym_pusht() -> Any:
    """gym-pusht's environment module, imported on first use (it loads pygame and OpenCV)."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import gym_pusht.envs.pusht as pusht
    except ImportError:
        raise JEPAError("push-t needs gym-pusht and pymunk: pip install 'jepa[pusht]' (the dev extra has them)") from None
    return pusht


@dataclass(frozen=True)
class PushTConfig:
    """Push-T's world and tasks.

    Args:
        resolution: frame side in pixels (the shared episodes: 96).
        frame_skip: control steps of 0.1 s per environment step (DINO-WM: 5).
        action_scale: pixels of pusher target per unit of action (DINO-WM: 100).
        max_action_norm: the action bound: 1.5 is a 150 px target, beyond the 97th percentile of the
            shared episodes' 5-step pusher moves (median 48 px, 99th percentile 163).
        success_distance: pixels, over (pusher x, y, block x, y).
        success_angle: radians of block angle (pi / 9).
        budget: control steps an episode may take (50: stable-worldmodel's budget), so
            ``budget // frame_skip`` environment steps.
        tasks: a task file of ``jepa world pusht-tasks`` (None: random starts and goals).
        keep_out, keep_out_clearance, agent_radius: the guardrail settings every environment takes;
            Push-T has no keep-out region (the agent's radius is the pusher's, 15 px).
    """

    resolution: int = 96
    frame_skip: int = 5
    action_scale: float = 100.0
    max_action_norm: float = 1.5
    success_distance: float = 20.0
    success_angle: float = math.pi / 9
    budget: int = 50
    tasks: str | None = None
    keep_out: tuple[float, float, float, float] | None = None
    keep_out_clearance: float = 0.0
    agent_radius: float = PUSHER_RADIUS

    def __post_init__(self) -> None:
        if self.keep_out is not None:
            raise ValueError("push-t has no keep-out region")
        if self.frame_skip < 1 or self.budget < self.frame_skip:
            raise ValueError(f"frame_skip must be >= 1 and budget >= frame_skip, got {self.frame_skip} and {self.budget}")
        if not self.resolution >= 16:
            raise ValueError(f"resolution must be >= 16, got {self.resolution}")


def angle_gap(a: torch.Tensor | np.ndarray | float, b: torch.Tensor | np.ndarray | float) -> Any:
    """|a - b| wrapped to [0, pi]."""
    d = (a - b + math.pi) % (2 * math.pi) - math.pi
    return abs(d)


def succeeded(state: np.ndarray, goal: np.ndarray, config: PushTConfig) -> bool:
    """The benchmark's criterion (DINO-WM, stable-worldmodel): position distance and angle gap."""
    close = float(np.linalg.norm(np.asarray(state[:4], np.float64) - np.asarray(goal[:4], np.float64)))
    return close < config.success_distance and float(angle_gap(float(state[4]), float(goal[4]))) < config.success_angle


def keypoints(states: torch.Tensor) -> torch.Tensor:
    """[..., 5] states -> [..., 18]: the pusher's position and the block's eight corners, in pixels:
    position and angle on one scale (what the simulator arm's goal cost compares)."""
    angle = states[..., 4:5]
    cos, sin = torch.cos(angle), torch.sin(angle)
    vx, vy = T_VERTICES[:, 0].to(states), T_VERTICES[:, 1].to(states)
    x = states[..., 2:3] + cos * vx - sin * vy
    y = states[..., 3:4] + sin * vx + cos * vy
    return torch.cat([states[..., :2], torch.stack([x, y], dim=-1).flatten(-2)], dim=-1)


class Simulator:
    """One gym-pusht pymunk world, placed and stepped directly: the state set angle first, the PD
    control loop of gym-pusht's ``step`` without its per-step coverage reward (a shapely polygon
    intersection that costs 15 times the physics)."""

    def __init__(self, resolution: int) -> None:
        pusht = _gym_pusht()
        self.sim = pusht.PushTEnv(obs_type="state", render_mode="rgb_array", observation_width=resolution,
                                  observation_height=resolution)
        self.Vec2d = pusht.Vec2d

    def place(self, state: np.ndarray | torch.Tensor, check: bool = False) -> None:
        s = [float(v) for v in state]
        # A new space each time (0.1 ms): a reused one keeps the contacts of the bodies' last places,
        # and its replays of recorded episodes then drift (up to 200 px in 3 of 206).
        self.sim._setup()
        agent, block = self.sim.agent, self.sim.block
        agent.position, agent.velocity = (s[0], s[1]), (0.0, 0.0)
        block.velocity, block.angular_velocity = (0.0, 0.0), 0.0
        block.angle = s[4]  # before the position: turning moves the position otherwise
        block.position = (s[2], s[3])
        self.sim.space.step(self.sim.dt)  # as gym-pusht's reset: the placement takes effect
        if check:
            got = self.state()
            if np.abs(got[:4] - np.asarray(s[:4])).max() > 1e-2 or angle_gap(float(got[4]), s[4]) > 1e-4:
                raise ValueError(f"push-t state {np.round(s, 3).tolist()} does not hold: it reads back as "
                                 f"{np.round(got, 3).tolist()}")
            # The physics pushes overlapping bodies apart over the next steps, not at once: an
            # overlap is found by asking, not by reading back. Contact while pushing sinks ~0.1 px.
            depth = min(shape.point_query(agent.position).distance for shape in self.sim._block_shapes)
            if depth < PUSHER_RADIUS - 1.0:
                raise ValueError(f"push-t state {np.round(s, 3).tolist()} puts the pusher inside the block")

    def state(self) -> np.ndarray:
        agent, block = self.sim.agent.position, self.sim.block.position
        return np.array([agent.x, agent.y, block.x, block.y, self.sim.block.angle % (2 * math.pi)], np.float32)

    def control(self, target: tuple[float, float]) -> None:
        """One control step toward ``target`` (gym-pusht's PD control: kp 100, kv 20)."""
        sim, goal = self.sim, self.Vec2d(*target)
        for _ in range(SUBSTEPS):
            acceleration = sim.k_p * (goal - sim.agent.position) + sim.k_v * (self.Vec2d(0, 0) - sim.agent.velocity)
            sim.agent.velocity += acceleration * sim.dt
            sim.space.step(sim.dt)

    def render(self) -> np.ndarray:
        return self.sim._render()


class PushTEnv(gymnasium.Env):
    """Push-T behind ``protocol.PlanningEnv`` (see the module docstring for state, actions, success and tasks).

    Args:
        config: world and tasks (default: ``PushTConfig()``).
        render_mode: ``"rgb_array"`` or None.
        **overrides: config fields replacing those of ``config``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}
    name = "push-t"
    config_class = PushTConfig

    def __init__(self, config: PushTConfig | None = None, render_mode: str | None = "rgb_array", **overrides: Any) -> None:
        configure(self, config, overrides, render_mode)
        self.tasks = load_tasks(self.config.tasks) if self.config.tasks else None
        self._sim = Simulator(self.config.resolution)
        self._scratch: Simulator | None = None  # for step_states and render_states
        self._goal: np.ndarray | None = None
        self._started = False
        self._steps = 0
        self._task: dict[str, Any] = {}

    # --- protocol ------------------------------------------------------------------------------
    @property
    def max_action_norm(self) -> float:
        return self.config.max_action_norm

    @property
    def keep_out(self) -> None:
        return None

    @property
    def max_episode_steps(self) -> int:
        return self.config.budget // self.config.frame_skip

    @property
    def state(self) -> np.ndarray:
        """The true state, float32 [5]."""
        if not self._started:
            raise RuntimeError("call reset() first")
        return self._sim.state()

    @property
    def goal(self) -> np.ndarray:
        """The goal state, float32 [5]."""
        if self._goal is None:
            raise RuntimeError("call reset() first")
        return self._goal.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Task ``seed`` of the task file, or a random one; ``options={"start": s, "goal": g}`` sets both."""
        super().reset(seed=seed)
        options = options or {}
        if "start" in options or "goal" in options:
            start, goal, self._task = options["start"], options["goal"], {}
        elif self.tasks is not None:
            if seed is None or not 0 <= seed < len(self.tasks):
                raise ValueError(f"push-t has {len(self.tasks)} tasks in {self.config.tasks}: seeds 0 to "
                                 f"{len(self.tasks) - 1}, got {seed}")
            task = self.tasks[seed]
            start, goal = task["start"], task["goal"]
            self._task = {k: task[k] for k in ("episode", "t", "targets")}
        else:
            rng = np.random.default_rng(seed)
            start, goal, self._task = self.sample_start(rng), self.sample_start(rng), {}
        self._sim.place(start, check=True)
        self._started, self._steps = True, 0
        self._goal = self._checked_goal(goal)
        info = self._info(False)
        info["goal_obs"] = self.render_states(self._goal[None])[0]
        info["budget"] = self.max_episode_steps
        return self._observe(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (2,) or not np.isfinite(a).all():
            raise ValueError(f"action must be 2 finite numbers, got {action!r}")
        pusher = self._sim.sim.agent.position
        target = self._target(np.array([pusher.x, pusher.y]), self.bounded(a))
        success = False
        for _ in range(self.config.frame_skip):
            self._sim.control(target)
            success = success or succeeded(self._sim.state(), self._goal, self.config)
        self._steps += 1
        info = self._info(success)
        truncated = self._steps >= self.max_episode_steps and not success
        return self._observe(), -float(info["distance"]), success, truncated, info

    def set_state(self, state: Any) -> np.ndarray:
        """Places the pusher and block at ``state`` (at rest), checked; returns the frame."""
        arr = np.asarray(state, dtype=np.float32).reshape(-1)
        if arr.shape != (5,) or not np.isfinite(arr).all():
            raise ValueError(f"a push-t state is 5 finite numbers (pusher x, y, block x, y, angle), got {state!r}")
        self._sim.place(arr, check=True)
        self._started = True
        return self._observe()

    def step_states(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """One environment step of each state (from rest) under each action: [B, 5], [B, 2] -> [B, 5].
        Not differentiable (pymunk is not batched): the gradient planner cannot use the simulator arm."""
        sim = self._scratch_sim()
        s_np = states.detach().cpu().double().numpy().reshape(-1, 5)
        a_np = self.bounded(actions.detach().cpu().double().numpy().reshape(-1, 2))
        out = np.empty((len(s_np), 5), np.float32)
        for i, (s, a) in enumerate(zip(s_np, a_np)):
            sim.place(s)
            target = self._target(s[:2], a)
            for _ in range(self.config.frame_skip):
                sim.control(target)
            out[i] = sim.state()
        return torch.from_numpy(out).to(states.device)

    def render_states(self, states: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """uint8 [B, H, W, 3] frames of [B, 5] states (torch in, torch out)."""
        is_torch = isinstance(states, torch.Tensor)
        arr = states.detach().cpu().numpy() if is_torch else np.asarray(states)
        sim = self._scratch_sim()
        frames = []
        for s in arr.reshape(-1, 5):
            sim.place(s)
            frames.append(sim.render())
        out = np.stack(frames).astype(np.uint8)
        return torch.from_numpy(out) if is_torch else out

    def render(self) -> np.ndarray:
        return self._observe()

    def sample_start(self, rng: np.random.Generator) -> np.ndarray:
        """gym-pusht's random start: pusher in [50, 450]^2, block in [100, 400]^2, any angle, not overlapping."""
        while True:
            state = np.array([rng.uniform(50, 450), rng.uniform(50, 450), rng.uniform(100, 400),
                              rng.uniform(100, 400), rng.uniform(0, 2 * math.pi)], np.float32)
            if np.linalg.norm(state[:2] - state[2:4]) > 140:  # clear of the T (its corners lie within 124 px)
                return state

    def explore_config(self, rng: np.random.Generator) -> None:
        return None  # one world for every episode

    def with_config(self, config: Any) -> PushTEnv:
        return self

    def explore_start(self, rng: np.random.Generator, config: Any, start: np.ndarray) -> np.ndarray:
        return start

    def draw(self, ax: Any) -> None:
        """The workspace on a matplotlib axis in pixels (y down, as the frames); the paths drawn over it
        are the pusher's (the frames picture shows the block)."""
        ax.set_xlim(0, WORKSPACE)
        ax.set_ylim(WORKSPACE, 0)
        ax.set_aspect("equal")

    def goal_features(self, states: torch.Tensor) -> torch.Tensor:
        """What the simulator arm's goal cost compares: the pusher and the block's corners (``keypoints``)."""
        return keypoints(states)

    def recorded_action(self, step: int) -> np.ndarray:
        """The dataset arm's action at environment step ``step`` of the current task: toward the
        recorded pusher target of the step's last control step, held for the step (zero once the
        recording is over)."""
        targets = self._task.get("targets")
        if targets is None:
            raise JEPAError("push-t's dataset arm plays the recorded actions of a task file: give --tasks FILE")
        k = (step + 1) * self.config.frame_skip - 1
        if k >= len(targets):
            return np.zeros(2, np.float32)
        return self.bounded(self.action_toward(targets[k])).astype(np.float32)

    def action_toward(self, target: Any) -> np.ndarray:
        """The (unbounded) action whose pusher target is ``target`` (workspace pixels), from where the pusher is."""
        return (np.asarray(target, np.float64) - self._sim.state()[:2]) / self.config.action_scale

    def bounded(self, actions: np.ndarray) -> np.ndarray:
        """Actions [..., 2] scaled back onto the norm ball where longer, as ``step`` applies them."""
        return clip_norm(torch.from_numpy(np.asarray(actions, np.float64)), self.config.max_action_norm).numpy()

    def _target(self, pusher: np.ndarray, action: np.ndarray) -> tuple[float, float]:
        # Relative actions (DINO-WM): the pusher's target is where it is plus action_scale x the action.
        return (float(pusher[0] + self.config.action_scale * action[0]),
                float(pusher[1] + self.config.action_scale * action[1]))

    # --- helpers -------------------------------------------------------------------------------
    def _scratch_sim(self) -> Simulator:
        if self._scratch is None:
            self._scratch = Simulator(self.config.resolution)
        return self._scratch

    def _checked_goal(self, goal: Any) -> np.ndarray:
        arr = np.asarray(goal, dtype=np.float32).reshape(-1)
        if arr.shape != (5,) or not np.isfinite(arr).all():
            raise ValueError(f"a push-t goal is 5 finite numbers (pusher x, y, block x, y, angle), got {goal!r}")
        return arr

    def _observe(self) -> np.ndarray:
        return self._sim.render()

    def _info(self, success: bool) -> dict[str, Any]:
        state = self._sim.state()
        return {"state": state, "goal": self._goal.copy(), "success": bool(success), "in_keep_out": False,
                "distance": float(np.linalg.norm(state[:4] - self._goal[:4])),
                "angle_gap": float(angle_gap(float(state[4]), float(self._goal[4]))),
                **{k: v for k, v in self._task.items() if k != "targets"}}


def load_tasks(path: str | Path) -> list[dict[str, Any]]:
    """The tasks of a ``jepa world pusht-tasks`` file; a missing or foreign file ends in one line."""
    p = Path(path)
    if not p.is_file():
        raise JEPAError(f"push-t task file {p} does not exist: write one with jepa world pusht-tasks")
    try:
        data = json.loads(p.read_text())
        tasks = data["tasks"]
        assert all(len(t["start"]) == 5 and len(t["goal"]) == 5 for t in tasks)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise JEPAError(f"{p} is not a push-t task file (jepa world pusht-tasks writes one)") from None
    return tasks
