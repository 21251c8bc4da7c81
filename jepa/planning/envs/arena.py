"""The arena of the planning worlds: a point agent (a red disc) in a square arena with walls. Two-Rooms
(``TwoRoomsConfig``) splits it by a vertical wall with one door; Four-Rooms (``four_rooms.py``) uses
the same dynamics and drawing with its own walls: a world is its wall rectangles (``walls``) and its
rooms (``rooms``), and everything below reads only those.

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..interfaces import clip_norm

# Margin kept between a sampled start or goal and any wall, beyond the agent's radius.
START_MARGIN = 0.02


@dataclass(frozen=True)
class ArenaConfig:
    """What every arena world has (frozen: a world keys its cached background image).

    Attributes:
        arena_size: side L of the square arena ``[0, L]^2``, in world units.
        resolution: side of the square observation, in pixels.
        wall_thickness: width of the walls.
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
    agent_radius: float = 0.035
    max_action_norm: float = 0.2
    success_radius: float = 0.08
    keep_out: tuple[float, float, float, float] | None = None
    max_episode_steps: int = 100
    substeps: int = 8
    keep_out_clearance: float | None = None

    @property
    def clearance(self) -> float:
        """How far starts and goals stay from the keep-out rectangle."""
        return clearance(self)


@dataclass(frozen=True)
class TwoRoomsConfig(ArenaConfig):
    """The two-rooms world and task: ``ArenaConfig`` with one vertical wall at ``x = L/2`` and its door.

    Attributes:
        door_center: centre of the door gap along y, as a fraction of L.
        door_width: width of the door gap, as a fraction of L (more than the agent's diameter).
    """

    door_center: float = 0.5
    door_width: float = 0.22
    room_names = ("left", "right")

    def __post_init__(self) -> None:
        L, r = self.arena_size, self.agent_radius
        check_sizes(self)
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
        check_task(self)

    @property
    def wall_x(self) -> tuple[float, float]:
        """The wall's x extent ``(x0, x1)``."""
        return centred(self.arena_size / 2, self.wall_thickness)

    @property
    def door_y(self) -> tuple[float, float]:
        """The door gap's y extent ``(y0, y1)`` in world units."""
        return centred(self.arena_size * self.door_center, self.arena_size * self.door_width)

    @property
    def walls(self) -> tuple[Rect, ...]:
        """The wall as two rectangles, below and above the door (reaching past the arena)."""
        L = self.arena_size
        (wx0, wx1), (gy0, gy1) = self.wall_x, self.door_y
        return (wx0, -L, wx1, gy0), (wx0, gy1, wx1, 2 * L)

    @property
    def rooms(self) -> tuple[Rect, ...]:
        """The left and the right room."""
        L = self.arena_size
        wx0, wx1 = self.wall_x
        return (0.0, 0.0, wx0, L), (wx1, 0.0, L, L)


Rect = tuple[float, float, float, float]  # (x0, y0, x1, y1)


def centred(centre: float, width: float) -> tuple[float, float]:
    """The interval of ``width`` around ``centre``: a wall's extent across it, a door's along it."""
    return centre - width / 2, centre + width / 2


def check_sizes(cfg) -> None:
    """The size checks every arena config shares, before its rooms can be computed (ValueError, one line)."""
    if not cfg.arena_size > 0:
        raise ValueError(f"arena_size must be > 0, got {cfg.arena_size}")
    if int(cfg.resolution) != cfg.resolution or cfg.resolution < 8:
        raise ValueError(f"resolution must be an integer >= 8, got {cfg.resolution}")
    if not cfg.agent_radius > 0:
        raise ValueError(f"agent_radius must be > 0, got {cfg.agent_radius}")
    if not cfg.wall_thickness > 0:
        raise ValueError(f"wall_thickness must be > 0, got {cfg.wall_thickness}")


def check_task(cfg) -> None:
    """The checks every arena config shares once its rooms exist: step, budget, substeps and the
    keep-out region (ValueError, one line); a keep-out given as a list becomes a tuple."""
    r = cfg.agent_radius
    if not cfg.max_action_norm > 0:
        raise ValueError(f"max_action_norm must be > 0, got {cfg.max_action_norm}")
    if not cfg.success_radius > 0:
        raise ValueError(f"success_radius must be > 0, got {cfg.success_radius}")
    if int(cfg.max_episode_steps) != cfg.max_episode_steps or cfg.max_episode_steps < 1:
        raise ValueError(f"max_episode_steps must be an integer >= 1, got {cfg.max_episode_steps}")
    if int(cfg.substeps) != cfg.substeps or cfg.substeps < 1:
        raise ValueError(f"substeps must be an integer >= 1, got {cfg.substeps}")
    if not cfg.max_action_norm / cfg.substeps < cfg.wall_thickness + 2 * r:
        raise ValueError(f"max_action_norm / substeps ({cfg.max_action_norm / cfg.substeps:g}) must be "
                         f"below wall_thickness + 2 * agent_radius ({cfg.wall_thickness + 2 * r:g}), "
                         "or the agent could jump through the wall: raise substeps")
    if cfg.keep_out is not None:
        box = tuple(float(v) for v in cfg.keep_out)
        if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]):
            raise ValueError(f"keep_out must be (x0, y0, x1, y1) with x0 < x1 and y0 < y1, got {cfg.keep_out}")
        object.__setattr__(cfg, "keep_out", box)  # a YAML list becomes a hashable tuple
        c = cfg.clearance
        for room in range(len(cfg.rooms)):
            x0, y0, x1, y1 = room_bounds(cfg, room)
            if box[0] - c <= x0 and box[1] - c <= y0 and box[2] + c >= x1 and box[3] + c >= y1:
                raise ValueError(f"keep_out {box} widened by the clearance {c:g} covers the whole "
                                 f"{room_name(cfg, room)} room: no start or goal can be placed there")


def room_name(cfg, room: int) -> str:
    return cfg.room_names[room]


def clearance(cfg) -> float:
    """How far starts and goals stay from the keep-out rectangle: ``keep_out_clearance``, or the
    agent's radius plus half a step."""
    if cfg.keep_out_clearance is not None:
        return float(cfg.keep_out_clearance)
    return cfg.agent_radius + cfg.max_action_norm / 2


def room_bounds(cfg: TwoRoomsConfig, room: int) -> tuple[float, float, float, float]:
    """The rectangle ``(x0, y0, x1, y1)`` where starts and goals of a room are drawn: the room
    (``cfg.rooms[room]``) less a margin of ``agent_radius + START_MARGIN`` from every wall.

    Args:
        cfg: the world.
        room: an index into ``cfg.rooms`` (Two-Rooms: 0 left, 1 right).
    """
    m = cfg.agent_radius + START_MARGIN
    x0, y0, x1, y1 = cfg.rooms[room]
    return x0 + m, y0 + m, x1 - m, y1 - m


def _overlaps(px: torch.Tensor, py: torch.Tensor, r: float, x0: float, y0: float, x1: float,
              y1: float) -> torch.Tensor:
    # Distance from the disc's centre to the rectangle, per axis; zero inside it.
    dx = torch.clamp(torch.maximum(x0 - px, px - x1), min=0)
    dy = torch.clamp(torch.maximum(y0 - py, py - y1), min=0)
    return dx * dx + dy * dy < r * r


def _free(px: torch.Tensor, py: torch.Tensor, cfg: TwoRoomsConfig) -> torch.Tensor:
    r, L = cfg.agent_radius, cfg.arena_size
    free = (px >= r) & (px <= L - r) & (py >= r) & (py <= L - r)
    for wall in cfg.walls:
        free = free & ~_overlaps(px, py, r, *wall)
    return free


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
