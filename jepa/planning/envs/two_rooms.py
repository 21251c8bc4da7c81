"""Two rooms: a point agent (a red disc) in a square arena split by a vertical wall with one door.

Geometry (world units, x to the right, y up): the arena is ``[0, L]^2`` with ``L = arena_size``; the
wall is the band ``|x - L/2| <= wall_thickness/2`` except the door gap, ``y`` in
``L * (door_center -+ door_width/2)``. The wall is two rectangles (below and above the gap) and the
agent collides with one when its disc overlaps it (the disc-to-rectangle distance is below the
radius; touching is allowed), so the disc must fit through the gap and the gap's corners are round
to it. The agent must also stay whole inside the arena (centre in ``[r, L - r]^2``).

Dynamics (``step_states``): an action is a displacement, scaled onto the norm ball of radius
``max_action_norm``; it is split into ``substeps`` equal parts and, in each part, the x move and
then the y move are tried one at a time: a move that would collide is cancelled for that axis only,
so the agent slides along walls instead of stopping dead. Substeps are shorter than the wall is thick
(checked by the config), so the agent cannot tunnel through it. The same function, on a batch of one,
moves the environment, so a planner simulating with it predicts the environment exactly.

Images (``render_states``): row 0 is the top of the arena (``y = L``), column 0 its left edge; a light
background, the dark wall (anti-aliased once, at config time) and the agent as an anti-aliased red
disc. The keep-out region is not drawn: it is a constraint of the task, not part of the world, and
leaving it out lets one world model serve tasks with and without it.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import torch

from ...errors import JEPAError
from ..interfaces import clip_norm

ENV_ID = "jepa/TwoRooms-v0"
ENV_NAMES = ("two-rooms",)
# Margin kept between a sampled start or goal and any wall, beyond the agent's radius.
START_MARGIN = 0.02
BACKGROUND = (235, 235, 228)
WALL = (55, 58, 70)
AGENT = (220, 30, 30)
RENDER_CHUNK = 512  # states drawn at once


@dataclass(frozen=True)
class TwoRoomsConfig:
    """The two-rooms world and task (frozen: it keys the cached background image).

    Attributes:
        arena_size: side L of the square arena ``[0, L]^2``, in world units.
        resolution: side of the square observation, in pixels.
        wall_thickness: width of the vertical wall centred at ``x = L/2``.
        door_center: centre of the door gap along y, as a fraction of L.
        door_width: width of the door gap, as a fraction of L (more than the agent's diameter).
        agent_radius: radius of the agent's disc.
        max_action_norm: longest move of one step; longer actions are scaled down to it.
        success_radius: the task succeeds when the agent's centre is this close to the goal.
        keep_out: ``(x0, y0, x1, y1)`` rectangle the agent's centre must never enter, or None.
        max_episode_steps: steps before an episode is truncated.
        substeps: collision checks per step (more: agents stop closer to walls).
        keep_out_clearance: starts and goals lie at least this far from the keep-out rectangle (None:
            agent radius + half a step); a planner's safety margin must fit in it, or a goal could not
            be approached safely (``jepa plan`` sets it from the largest margin it uses).
    """

    arena_size: float = 1.0
    resolution: int = 64
    wall_thickness: float = 0.06
    door_center: float = 0.5
    door_width: float = 0.22
    agent_radius: float = 0.035
    max_action_norm: float = 0.2
    success_radius: float = 0.08
    keep_out: tuple[float, float, float, float] | None = None
    max_episode_steps: int = 100
    substeps: int = 8
    keep_out_clearance: float | None = None

    def __post_init__(self) -> None:
        L, r = self.arena_size, self.agent_radius
        if not L > 0:
            raise ValueError(f"arena_size must be > 0, got {L}")
        if int(self.resolution) != self.resolution or self.resolution < 8:
            raise ValueError(f"resolution must be an integer >= 8, got {self.resolution}")
        if not r > 0:
            raise ValueError(f"agent_radius must be > 0, got {r}")
        if not self.wall_thickness > 0:
            raise ValueError(f"wall_thickness must be > 0, got {self.wall_thickness}")
        if not self.door_width > 0 or self.door_center - self.door_width / 2 < 0 \
                or self.door_center + self.door_width / 2 > 1:
            raise ValueError(f"the door (door_center {self.door_center} -+ door_width/2 {self.door_width / 2}) "
                             "must lie within [0, 1] (fractions of arena_size)")
        if not self.door_width * L > 2 * r:
            raise ValueError(f"door_width * arena_size ({self.door_width * L:g}) must exceed the agent's "
                             f"diameter ({2 * r:g}) so that it fits through the door")
        if not room_bounds(self, 0)[2] > room_bounds(self, 0)[0]:
            raise ValueError(f"the rooms are too narrow for the agent: L/2 - wall_thickness/2 must exceed "
                             f"2 * (agent_radius + {START_MARGIN})")
        if not self.max_action_norm > 0:
            raise ValueError(f"max_action_norm must be > 0, got {self.max_action_norm}")
        if not self.success_radius > 0:
            raise ValueError(f"success_radius must be > 0, got {self.success_radius}")
        if int(self.max_episode_steps) != self.max_episode_steps or self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be an integer >= 1, got {self.max_episode_steps}")
        if int(self.substeps) != self.substeps or self.substeps < 1:
            raise ValueError(f"substeps must be an integer >= 1, got {self.substeps}")
        if not self.max_action_norm / self.substeps < self.wall_thickness + 2 * r:
            raise ValueError(f"max_action_norm / substeps ({self.max_action_norm / self.substeps:g}) must be "
                             f"below wall_thickness + 2 * agent_radius ({self.wall_thickness + 2 * r:g}), "
                             "or the agent could jump through the wall: raise substeps")
        if self.keep_out is not None:
            box = tuple(float(v) for v in self.keep_out)
            if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]):
                raise ValueError(f"keep_out must be (x0, y0, x1, y1) with x0 < x1 and y0 < y1, got {self.keep_out}")
            object.__setattr__(self, "keep_out", box)  # a YAML list becomes a hashable tuple
            c = self.clearance
            for room in (0, 1):
                x0, y0, x1, y1 = room_bounds(self, room)
                if box[0] - c <= x0 and box[1] - c <= y0 and box[2] + c >= x1 and box[3] + c >= y1:
                    raise ValueError(f"keep_out {box} widened by the clearance {c:g} covers the whole "
                                     f"{('left', 'right')[room]} room: no start or goal can be placed there")

    @property
    def clearance(self) -> float:
        """How far starts and goals stay from the keep-out rectangle."""
        if self.keep_out_clearance is not None:
            return float(self.keep_out_clearance)
        return self.agent_radius + self.max_action_norm / 2

    @property
    def wall_x(self) -> tuple[float, float]:
        """The wall's x extent ``(x0, x1)``."""
        half = self.arena_size / 2
        return half - self.wall_thickness / 2, half + self.wall_thickness / 2

    @property
    def door_y(self) -> tuple[float, float]:
        """The door gap's y extent ``(y0, y1)`` in world units."""
        L = self.arena_size
        return L * (self.door_center - self.door_width / 2), L * (self.door_center + self.door_width / 2)


def room_bounds(cfg: TwoRoomsConfig, room: int) -> tuple[float, float, float, float]:
    """The rectangle ``(x0, y0, x1, y1)`` where starts and goals of a room are drawn: the room less a
    margin of ``agent_radius + START_MARGIN`` from every wall.

    Args:
        cfg: the world.
        room: 0 for the left room, 1 for the right one.
    """
    m = cfg.agent_radius + START_MARGIN
    L = cfg.arena_size
    half = L / 2
    if room == 0:
        return m, m, half - cfg.wall_thickness / 2 - m, L - m
    return half + cfg.wall_thickness / 2 + m, m, L - m, L - m


def _overlaps(px: torch.Tensor, py: torch.Tensor, r: float, x0: float, y0: float, x1: float,
              y1: float) -> torch.Tensor:
    # Distance from the disc's centre to the rectangle, per axis; zero inside it.
    dx = torch.clamp(torch.maximum(x0 - px, px - x1), min=0)
    dy = torch.clamp(torch.maximum(y0 - py, py - y1), min=0)
    return dx * dx + dy * dy < r * r


def _free(px: torch.Tensor, py: torch.Tensor, cfg: TwoRoomsConfig) -> torch.Tensor:
    r, L = cfg.agent_radius, cfg.arena_size
    (wx0, wx1), (gy0, gy1) = cfg.wall_x, cfg.door_y
    inside = (px >= r) & (px <= L - r) & (py >= r) & (py <= L - r)
    below = _overlaps(px, py, r, wx0, -L, wx1, gy0)  # the wall rectangles reach past the arena
    above = _overlaps(px, py, r, wx0, gy1, wx1, 2 * L)
    return inside & ~below & ~above


def is_free(states: torch.Tensor, cfg: TwoRoomsConfig) -> torch.Tensor:
    """Whether the agent may be at each state: its disc inside the arena and off the wall.

    Args:
        states: [..., 2] agent positions.
        cfg: the world.

    Returns:
        bool [...].
    """
    states = torch.as_tensor(states)
    return _free(states[..., 0], states[..., 1], cfg)


def in_keep_out(states: torch.Tensor, cfg: TwoRoomsConfig) -> torch.Tensor:
    """Whether each state's centre is inside the keep-out rectangle (edges included); all False when
    the config has none.

    Args:
        states: [..., 2] agent positions.
        cfg: the world.

    Returns:
        bool [...].
    """
    states = torch.as_tensor(states)
    if cfg.keep_out is None:
        return torch.zeros(states.shape[:-1], dtype=torch.bool, device=states.device)
    x0, y0, x1, y1 = cfg.keep_out
    x, y = states[..., 0], states[..., 1]
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def room_of(states: torch.Tensor, cfg: TwoRoomsConfig) -> torch.Tensor:
    """The room of each state: 0 left of the wall's centre line, 1 right of it.

    Args:
        states: [..., 2] agent positions.
        cfg: the world.

    Returns:
        int64 [...].
    """
    states = torch.as_tensor(states)
    return (states[..., 0] >= cfg.arena_size / 2).long()


def step_states(states: torch.Tensor, actions: torch.Tensor, cfg: TwoRoomsConfig) -> torch.Tensor:
    """Moves agents one step: actions scaled onto the norm ball, split into substeps, each axis'
    move of a substep cancelled when it would collide (so agents slide along walls).

    Pure and deterministic; nothing is modified in place, and the result is differentiable in
    ``actions`` (zero gradient on an axis whose move was cancelled).

    Args:
        states: [B, 2] positions, free ones (from a colliding state, only moves that end free are taken).
        actions: [B, 2] displacements.
        cfg: the world.

    Returns:
        [B, 2] the positions after the step.
    """
    moves = clip_norm(actions, cfg.max_action_norm) / cfg.substeps
    x, y = states[..., 0], states[..., 1]
    dx, dy = moves[..., 0], moves[..., 1]
    for _ in range(cfg.substeps):
        nx = x + dx
        x = torch.where(_free(nx, y, cfg), nx, x)
        ny = y + dy
        y = torch.where(_free(x, ny, cfg), ny, y)
    return torch.stack([x, y], dim=-1)


@functools.lru_cache(maxsize=8)
def background(cfg: TwoRoomsConfig) -> np.ndarray:
    """The static image (background and wall, no agent) as float32 [H, W, 3], computed once per config.

    Args:
        cfg: the world.
    """
    res, L = cfg.resolution, cfg.arena_size
    (wx0, wx1), (gy0, gy1) = cfg.wall_x, cfg.door_y
    # 4x4 supersampling per pixel gives the wall's edges their fractional coverage.
    sub = 4
    pos = (np.arange(res * sub) + 0.5) / (res * sub) * L
    xs, ys = pos[None, :], L - pos[:, None]  # row 0 is the top of the arena
    wall = (xs >= wx0) & (xs <= wx1) & ((ys <= gy0) | (ys >= gy1))
    cover = wall.reshape(res, sub, res, sub).mean(axis=(1, 3))[..., None]
    image = ((1 - cover) * np.array(BACKGROUND, np.float64) + cover * np.array(WALL, np.float64)).astype(np.float32)
    image.setflags(write=False)  # shared by every caller through the cache
    return image


def render_states(states: torch.Tensor | np.ndarray, cfg: TwoRoomsConfig) -> torch.Tensor | np.ndarray:
    """Draws each state: the static background with the agent as an anti-aliased red disc.

    Args:
        states: [B, 2] agent positions (torch or numpy).
        cfg: the world.

    Returns:
        uint8 [B, H, W, 3], a tensor on the states' device for a tensor, else a numpy array.
    """
    is_numpy = not isinstance(states, torch.Tensor)
    pos = torch.as_tensor(np.asarray(states) if is_numpy else states).detach().float().reshape(-1, 2)
    bg = torch.tensor(background(cfg), device=pos.device)
    agent = torch.tensor(AGENT, dtype=torch.float32, device=pos.device)
    # In chunks, so that the float intermediates of a big batch stay a few tens of MB.
    chunks = [_draw(part, bg, agent, cfg) for part in pos.split(RENDER_CHUNK)] or [
        torch.empty(0, cfg.resolution, cfg.resolution, 3, dtype=torch.uint8, device=pos.device)]
    images = torch.cat(chunks)
    return images.cpu().numpy() if is_numpy else images


def _draw(pos: torch.Tensor, bg: torch.Tensor, agent: torch.Tensor, cfg: TwoRoomsConfig) -> torch.Tensor:
    res, L = cfg.resolution, cfg.arena_size
    scale = res / L  # pixels per world unit
    centres = torch.arange(res, device=pos.device, dtype=torch.float32) + 0.5
    # Distances in pixels from each pixel centre to each agent centre.
    dx = centres[None, None, :] - pos[:, 0, None, None] * scale
    dy = centres[None, :, None] - (L - pos[:, 1, None, None]) * scale
    dist = torch.sqrt(dx * dx + dy * dy)
    # Coverage ramps over one pixel across the disc's edge: a cheap, smooth anti-aliasing.
    cover = (cfg.agent_radius * scale + 0.5 - dist).clamp(0, 1)[..., None]
    return (bg + cover * (agent - bg)).round_().to(torch.uint8)


def sample_position(rng: np.random.Generator, cfg: TwoRoomsConfig, room: int, avoid_keep_out: bool = True,
                    max_tries: int = 10_000) -> np.ndarray:
    """Draws a position uniformly in a room's ``room_bounds``, outside the keep-out region inflated by
    ``cfg.clearance`` (a goal closer than a planner's safety margin could not be approached safely).

    Args:
        rng: the random generator.
        cfg: the world.
        room: 0 left, 1 right.
        avoid_keep_out: whether to stay out of the keep-out region.
        max_tries: rejection-sampling attempts before giving up.

    Returns:
        float32 [2].
    """
    x0, y0, x1, y1 = room_bounds(cfg, room)
    for _ in range(max_tries):
        xy = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)], np.float32)
        if not avoid_keep_out or cfg.keep_out is None:
            return xy
        k0, l0, k1, l1 = cfg.keep_out
        r = cfg.clearance
        if not (k0 - r <= xy[0] <= k1 + r and l0 - r <= xy[1] <= l1 + r):
            return xy
    raise ValueError(f"no free position found in room {room} outside keep_out {cfg.keep_out} "
                     f"in {max_tries} tries: shrink the keep-out region")


class TwoRoomsEnv(gymnasium.Env):
    """Reach the goal in the other room through the door, never entering the keep-out region.

    Observations are uint8 [res, res, 3] images; actions are float32 [2] displacements (longer ones
    are scaled onto the norm ball). The reward is minus the distance to the goal; an episode
    terminates on success and is truncated after ``max_episode_steps``.

    Args:
        config: the world and task (default: ``TwoRoomsConfig()``).
        render_mode: ``"rgb_array"`` (``render()`` returns the current frame) or None.
        **overrides: TwoRoomsConfig fields replacing those of ``config``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: TwoRoomsConfig | None = None, render_mode: str | None = "rgb_array",
                 **overrides: Any) -> None:
        config = config or TwoRoomsConfig()
        fields = {f.name for f in dataclasses.fields(TwoRoomsConfig)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise TypeError(f"unknown two-rooms option {unknown[0]!r}: options are {', '.join(sorted(fields))}")
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.render_mode = render_mode
        res, high = self.config.resolution, self.config.max_action_norm
        self.observation_space = gymnasium.spaces.Box(0, 255, (res, res, 3), np.uint8)
        self.action_space = gymnasium.spaces.Box(-high, high, (2,), np.float32)
        self._state: np.ndarray | None = None
        self._goal: np.ndarray | None = None
        self._steps = 0

    @property
    def state(self) -> np.ndarray:
        """The agent's true position, float32 [2]."""
        return self._require(self._state).copy()

    @property
    def goal(self) -> np.ndarray:
        """The goal position, float32 [2]."""
        return self._require(self._goal).copy()

    def _require(self, value: np.ndarray | None) -> np.ndarray:
        if value is None:
            raise RuntimeError("call reset() first")
        return value

    def _observe(self, xy: np.ndarray) -> np.ndarray:
        return render_states(xy[None], self.config)[0]

    def _check_position(self, xy: Any, what: str) -> np.ndarray:
        arr = np.asarray(xy, dtype=np.float32).reshape(-1)
        if arr.shape != (2,) or not np.isfinite(arr).all():
            raise ValueError(f"{what} must be 2 finite numbers (x, y), got {xy!r}")
        if not bool(is_free(torch.from_numpy(arr), self.config)):
            raise ValueError(f"{what} ({arr[0]:g}, {arr[1]:g}) is inside the wall or outside the arena")
        return arr

    def _info(self) -> dict[str, Any]:
        state, goal = self._require(self._state), self._require(self._goal)
        distance = float(np.linalg.norm(state - goal))
        return {"state": state.copy(), "goal": goal.copy(), "distance": distance,
                "success": distance <= self.config.success_radius,
                "in_keep_out": bool(in_keep_out(torch.from_numpy(state), self.config))}

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode with start and goal in different rooms (which is which is random).

        Args:
            seed: seeds the environment's generator (gymnasium's convention).
            options: optional ``start`` and/or ``goal`` positions to use instead of random ones.

        Returns:
            The observation and an info dict with ``goal_obs``, ``goal``, ``state`` and ``distance``.
        """
        super().reset(seed=seed)
        options = options or {}
        start_room = int(self.np_random.integers(2))
        start = sample_position(self.np_random, self.config, start_room)
        goal = sample_position(self.np_random, self.config, 1 - start_room)
        if options.get("start") is not None:
            start = self._check_position(options["start"], "start")
        if options.get("goal") is not None:
            goal = self._check_position(options["goal"], "goal")
        self._state, self._goal, self._steps = start, goal, 0
        info = self._info()
        info["goal_obs"] = self._observe(goal)
        return self._observe(start), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Moves the agent with ``step_states``.

        Args:
            action: a displacement (x, y); longer than ``max_action_norm`` is scaled down.

        Returns:
            observation, reward (minus the distance to the goal), terminated (success), truncated
            (``max_episode_steps`` reached), info (``state``, ``goal``, ``success``, ``distance``,
            ``in_keep_out``).
        """
        state = self._require(self._state)
        act = torch.as_tensor(np.asarray(action, dtype=np.float32).reshape(1, 2))
        self._state = step_states(torch.from_numpy(state)[None], act, self.config)[0].numpy()
        self._steps += 1
        info = self._info()
        truncated = self._steps >= self.config.max_episode_steps
        return self._observe(self._state), -info["distance"], info["success"], truncated, info

    def set_state(self, xy: Any) -> np.ndarray:
        """Puts the agent at ``xy`` (the oracle's reset); raises ValueError inside the wall or outside
        the arena.

        Args:
            xy: the position (x, y).

        Returns:
            The new observation.
        """
        self._state = self._check_position(xy, "state")
        return self._observe(self._state)

    def render(self) -> np.ndarray | None:
        """The current frame, uint8 [res, res, 3] (None when render_mode is None)."""
        if self.render_mode is None:
            return None
        return self._observe(self._require(self._state))


def register_envs() -> None:
    """Registers ``jepa/TwoRooms-v0`` with gymnasium (once), so that ``gymnasium.make`` finds it."""
    if ENV_ID not in gymnasium.registry:
        # No TimeLimit wrapper: the environment truncates at max_episode_steps itself.
        gymnasium.register(id=ENV_ID, entry_point=f"{__name__}:TwoRoomsEnv")


def make_env(name: str, **kwargs: Any) -> TwoRoomsEnv:
    """Builds an environment by name (unwrapped: no gymnasium checker or wrappers).

    Args:
        name: ``"two-rooms"`` or ``"jepa/TwoRooms-v0"``.
        **kwargs: ``config``, ``render_mode`` and TwoRoomsConfig fields (overriding ``config``'s).

    Raises:
        JEPAError: unknown name, unknown option or invalid value (one line).
    """
    register_envs()
    if name not in (*ENV_NAMES, ENV_ID):
        raise JEPAError(f"unknown environment {name!r}: available are {', '.join(ENV_NAMES)}")
    try:
        return TwoRoomsEnv(**kwargs)
    except (TypeError, ValueError) as err:
        raise JEPAError(f"{name}: {err}") from err

