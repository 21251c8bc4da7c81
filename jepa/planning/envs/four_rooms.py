"""``four-rooms``: a long-horizon task where flat planning must fail. Four rooms joined by four doors,
one of them closed in half the tasks, on the arena, dynamics and drawing of Two-Rooms.

Geometry (world units, y up, arena ``[0, L]^2``): a vertical wall at ``x = L/2`` and a horizontal one
at ``y = L/2``, each ``wall_thickness`` thick, cross in the middle. Door 0 joins the bottom rooms
(on the vertical wall at ``y = L/4``), door 1 the top rooms (``y = 3L/4``), door 2 the left rooms
(on the horizontal wall at ``x = L/4``), door 3 the right rooms (``x = 3L/4``). A closed door is a
wall like the others (drawn in the frames, so the agent can see it).

Tasks (``reset``): with probability 0.5 start and goal lie in diagonally opposite rooms, all doors
open (two routes through two doors each, and a straight line to the goal runs into the crossing
walls); otherwise in two rooms next to each other whose shared door is closed, so that the agent
must go round through the other two rooms (three doors), away from the goal first. The step bound
``max_action_norm`` is 0.07 of the arena side and positions are drawn until the shortest path
(``paths.py``, on a 0.01 grid) is 15 to 30 steps; ``info`` carries the task (closed door, shortest
path in world units and in steps, and a step budget of 2.8 times the shortest path). About 30 % of
tasks also draw a keep-out square (side 0.1 L, invisible in the frames) on their shortest route,
which the planner must never enter; their shortest path goes round it, and a route round it at a
margin of 0.08 L stays open.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .arena import ArenaConfig, Rect, centred, check_sizes, check_task, is_free, room_bounds, sample_position
from .arena_env import ArenaEnv
from .paths import DistanceField, round_keep_out

ENV_ID = "jepa/FourRooms-v0"
# door -> (wall, centre along it as a fraction of L, the two rooms it joins); rooms are numbered
# 0 bottom-left, 1 bottom-right, 2 top-left, 3 top-right.
DOORS = (("vertical", 0.25, (0, 1)), ("vertical", 0.75, (2, 3)),
         ("horizontal", 0.25, (0, 2)), ("horizontal", 0.75, (1, 3)))
TASK_TRIES = 400
KEEP_OUT_TRIES = 20
# Starts and goals lie at least this far (fraction of L) from a task's keep-out square: more than any
# planner's margin (probe error + half a step, about 0.07 here).
KEEP_OUT_AWAY = 0.12
# A task's route round its keep-out square can keep this far (fraction of L) from it, so that a planner
# with that safety margin can still pass (through the doors too); the oracle's waypoints keep it.
KEEP_OUT_MARGIN = 0.08
DOOR_START_SHARE = 0.5  # exploration episodes with a closed door that start beside it (explore_start)
DOOR_START_RADIUS = 0.12  # how far from the closed door's centre they start, per axis, in L
KEEP_OUT_DETOUR = 1.25  # a square that lengthens the shortest path more blocks a door: drawn again


def _distance_to_box(p: np.ndarray, box: Rect) -> float:
    dx = max(box[0] - p[0], 0.0, p[0] - box[2])
    dy = max(box[1] - p[1], 0.0, p[1] - box[3])
    return math.hypot(dx, dy)


@dataclass(frozen=True)
class FourRoomsConfig(ArenaConfig):
    """The four-rooms world and task: ``ArenaConfig`` with two crossing walls and four doors.

    Attributes:
        door_width: width of every door, as a fraction of L (more than the agent's diameter).
        max_action_norm: 0.07 of the arena side (Two-Rooms: 0.2), so that tasks take 15-30 steps.
        success_radius: Two-Rooms' 0.08 scaled down with the step: 0.05.
        closed_door: the door (0-3, see ``DOORS``) that is a wall in this task, or None.
        path_steps: the range of the tasks' shortest paths, in steps of ``max_action_norm``.
        budget_factor: a task's step budget is this many times its shortest path in steps.
        keep_out_tasks: the share of tasks that draw a keep-out square on their shortest route (when
            the world sets no ``keep_out`` of its own).
        keep_out_side: that square's side, as a fraction of L.
    """

    max_action_norm: float = 0.07
    success_radius: float = 0.05
    door_width: float = 0.16
    closed_door: int | None = None
    path_steps: tuple[int, int] = (15, 30)
    budget_factor: float = 2.8
    keep_out_tasks: float = 0.3
    keep_out_side: float = 0.1
    room_names = ("bottom-left", "bottom-right", "top-left", "top-right")

    def __post_init__(self) -> None:
        check_sizes(self)
        if not self.door_width * self.arena_size > 2 * self.agent_radius:
            raise ValueError(f"door_width * arena_size ({self.door_width * self.arena_size:g}) must exceed the "
                             f"agent's diameter ({2 * self.agent_radius:g}) so that it fits through a door")
        if not 0 < self.door_width < 0.5 - self.wall_thickness / self.arena_size:
            raise ValueError(f"door_width must lie in (0, {0.5 - self.wall_thickness / self.arena_size:g}), "
                             f"got {self.door_width}")
        if self.closed_door not in (None, 0, 1, 2, 3):
            raise ValueError(f"closed_door must be None or a door 0-3, got {self.closed_door!r}")
        lo, hi = (int(v) for v in self.path_steps)
        if not 0 < lo <= hi:
            raise ValueError(f"path_steps must be (low, high) with 0 < low <= high, got {self.path_steps}")
        object.__setattr__(self, "path_steps", (lo, hi))
        if not 0 <= self.keep_out_tasks <= 1 or not 0 < self.keep_out_side < 0.5:
            raise ValueError(f"keep_out_tasks must lie in [0, 1] and keep_out_side in (0, 0.5), got "
                             f"{self.keep_out_tasks} and {self.keep_out_side}")
        check_task(self)

    @property
    def band(self) -> tuple[float, float]:
        """The extent of both walls across their length (they cross in the middle)."""
        return centred(self.arena_size / 2, self.wall_thickness)

    def gap(self, door: int) -> tuple[float, float]:
        """A door's extent along its wall, in world units."""
        return centred(self.arena_size * DOORS[door][1], self.arena_size * self.door_width)

    def door_rect(self, door: int) -> Rect:
        """The rectangle a door's gap leaves in its wall."""
        b0, b1 = self.band
        g0, g1 = self.gap(door)
        return (b0, g0, b1, g1) if DOORS[door][0] == "vertical" else (g0, b0, g1, b1)

    @property
    def walls(self) -> tuple[Rect, ...]:
        """Both walls cut by their doors (reaching past the arena), and the closed door if any."""
        L = self.arena_size
        b0, b1 = self.band
        (v0, v1), (v2, v3) = self.gap(0), self.gap(1)
        (h0, h1), (h2, h3) = self.gap(2), self.gap(3)
        walls = [(b0, -L, b1, v0), (b0, v1, b1, v2), (b0, v3, b1, 2 * L),
                 (-L, b0, h0, b1), (h1, b0, h2, b1), (h3, b0, 2 * L, b1)]
        if self.closed_door is not None:
            walls.append(self.door_rect(self.closed_door))
        return tuple(walls)

    @property
    def rooms(self) -> tuple[Rect, ...]:
        L = self.arena_size
        b0, b1 = self.band
        return (0.0, 0.0, b0, b0), (b1, 0.0, L, b0), (0.0, b1, b0, L), (b1, b1, L, L)


def room_of(states: torch.Tensor, cfg: FourRoomsConfig) -> torch.Tensor:
    """The room of each state [..., 2]: 0 bottom-left, 1 bottom-right, 2 top-left, 3 top-right."""
    states = torch.as_tensor(states)
    half = cfg.arena_size / 2
    return (states[..., 0] >= half).long() + 2 * (states[..., 1] >= half).long()


@dataclass(frozen=True)
class Task:
    """One four-rooms task: rooms, the closed door, and how long its shortest path is."""

    start_room: int
    goal_room: int
    closed_door: int | None
    shortest_path: float  # world units
    shortest_steps: float  # in steps of max_action_norm
    budget: int  # environment steps allowed: budget_factor x the shortest path, rounded up
    keep_out: Rect | None = None  # this task's keep-out square (x0, y0, x1, y1), if it drew one


class FourRoomsEnv(ArenaEnv):
    """Reach the goal in another room through the doors (going round a closed one), never entering the
    keep-out region. See the module docstring for the tasks and ``ArenaEnv`` for the rest.

    Args:
        config: the world (default: ``FourRoomsConfig()``); each task sets its own ``closed_door``.
        render_mode: ``"rgb_array"`` or None.
        **overrides: FourRoomsConfig fields replacing those of ``config``.
    """

    name = "four-rooms"
    config_class = FourRoomsConfig

    def __init__(self, config: FourRoomsConfig | None = None, render_mode: str | None = "rgb_array",
                 **overrides: Any) -> None:
        super().__init__(config, render_mode, **overrides)
        self.world = self.config  # the config every task starts from
        self.task: Task | None = None

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Draws a task (see the module docstring), or uses ``options`` ``start``, ``goal`` and
        ``closed_door`` where given (a task with a given start draws no keep-out square).

        Returns:
            The observation and an info dict with ``goal_obs``, ``goal``, ``state``, ``distance`` and the
            task: ``closed_door``, ``shortest_path``, ``shortest_steps``, ``budget``, ``keep_out``.
        """
        super().reset(seed=seed)
        options = options or {}
        rng = self.np_random
        if rng.random() < 0.5:
            closed = None
            start_room = int(rng.integers(4))
            goal_room = 3 - start_room
        else:
            closed = int(rng.integers(4))
            start_room, goal_room = DOORS[closed][2][:: 1 if rng.random() < 0.5 else -1]
        if "closed_door" in options:
            closed = options["closed_door"]
        self.config = dataclasses.replace(self.world, closed_door=closed)
        start, goal, length = self._draw_task(rng, start_room, goal_room, options)
        self._state, self._goal, self._steps = start, goal, 0
        # Drawn after start, goal and door, so that the tasks without one are the same as without this step.
        box = self._draw_keep_out(rng, length) if self.world.keep_out is None and "start" not in options else None
        if box is not None:
            self.config, length = dataclasses.replace(self.config, keep_out=box[0]), box[1]
        steps = length / self.config.max_action_norm
        self.task = Task(start_room, goal_room, closed, round(length, 4), round(steps, 2),
                         math.ceil(self.config.budget_factor * steps), box[0] if box else None)
        info = self._info()
        info.update(goal_obs=self._observe(goal), **dataclasses.asdict(self.task))
        return self._observe(start), info

    def _draw_task(self, rng: np.random.Generator, start_room: int, goal_room: int,
                   options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float]:
        cfg = self.config
        lo, hi = cfg.path_steps
        fixed_start, fixed_goal = options.get("start"), options.get("goal")
        for _ in range(TASK_TRIES):
            goal = self._check_position(fixed_goal, "goal") if fixed_goal is not None else \
                sample_position(rng, cfg, goal_room)
            field = DistanceField(cfg, goal)
            for _ in range(10):  # several starts against one goal's distance field
                start = self._check_position(fixed_start, "start") if fixed_start is not None else \
                    sample_position(rng, cfg, start_room)
                length = field(start)
                if fixed_start is not None and fixed_goal is not None:
                    return start, goal, length  # as asked, whatever its length
                if lo <= length / cfg.max_action_norm <= hi:
                    return start, goal, length
        raise ValueError(f"no task with a shortest path of {lo}-{hi} steps found in {TASK_TRIES} tries: "
                         "change path_steps or max_action_norm")

    def _draw_keep_out(self, rng: np.random.Generator, length: float) -> tuple[Rect, float] | None:
        """With probability ``keep_out_tasks``, a square of side ``keep_out_side`` centred on the task's
        shortest open route (start, door centres, goal) at 20-80 % of its length, inside one room, at
        least KEEP_OUT_AWAY from the start and the goal (clear of any planner's safety margin), and such
        that the shortest path round the square widened by KEEP_OUT_MARGIN is at most KEEP_OUT_DETOUR
        times the task's (no door is blocked to a planner that keeps that margin); with the length of
        the shortest path round the square itself. None when no such square is drawn."""
        cfg = self.config
        if rng.random() >= cfg.keep_out_tasks:
            return None
        L, half = cfg.arena_size, cfg.keep_out_side * cfg.arena_size / 2
        points = [self.state, *self.waypoints(), self.goal]
        lengths = np.array([np.linalg.norm(b - a) for a, b in zip(points, points[1:])])
        for _ in range(KEEP_OUT_TRIES):
            at = rng.uniform(0.2, 0.8) * lengths.sum()
            i = min(int(np.searchsorted(np.cumsum(lengths), at)), len(lengths) - 1)
            frac = (at - lengths[:i].sum()) / max(lengths[i], 1e-9)
            c = points[i] + frac * (points[i + 1] - points[i])
            box = (float(c[0] - half), float(c[1] - half), float(c[0] + half), float(c[1] + half))
            inside = any(x0 <= box[0] and y0 <= box[1] and box[2] <= x1 and box[3] <= y1
                         for x0, y0, x1, y1 in cfg.rooms)
            if not inside or min(_distance_to_box(p, box) for p in (self.state, self.goal)) < KEEP_OUT_AWAY * L:
                continue
            m = KEEP_OUT_MARGIN * L
            widened = (box[0] - m, box[1] - m, box[2] + m, box[3] + m)
            # Worlds for the distance fields alone: no clearance check (a planner's wide margin round
            # the widened square could cover a room; the task's own config is checked below).
            if DistanceField(dataclasses.replace(cfg, keep_out=widened, keep_out_clearance=0.0),
                             self.goal)(self.state) <= KEEP_OUT_DETOUR * length:
                return box, DistanceField(dataclasses.replace(cfg, keep_out=box, keep_out_clearance=0.0),
                                          self.goal)(self.state)
        return None

    def door_centre(self, door: int) -> np.ndarray:
        """The middle of a door's gap, (x, y) in world units."""
        L = self.config.arena_size
        along = L * DOORS[door][1]
        return np.array([L / 2, along] if DOORS[door][0] == "vertical" else [along, L / 2], dtype=np.float32)

    def _door_point(self, door: int, margin: float) -> np.ndarray | None:
        """The door's centre or, where the task's keep-out square widened by ``margin`` covers it, the
        point along the door's gap nearest the centre that is clear of it and still lets the agent
        through; None when no such point is left (the door is blocked to a planner keeping ``margin``)."""
        centre = self.door_centre(door)
        box = self.config.keep_out
        if box is None:
            return centre
        lo, hi = np.array(box[:2]) - margin, np.array(box[2:]) + margin
        if not ((lo <= centre) & (centre <= hi)).all():
            return centre
        axis = 1 if DOORS[door][0] == "vertical" else 0  # the coordinate along the door's wall
        g0, g1 = self.config.gap(door)
        r, eps = self.config.agent_radius, 1e-3
        fits = [v for v in (lo[axis] - eps, hi[axis] + eps) if g0 + r <= v <= g1 - r]
        if not fits:
            return None
        point = centre.copy()
        point[axis] = min(fits, key=lambda v: abs(v - centre[axis]))
        return point

    def _door_routes(self) -> list[list[int]]:
        """Every simple route over open doors from the agent's room to the goal's (four rooms: at most two)."""
        here, there = (int(r) for r in room_of(torch.from_numpy(np.stack([self.state, self.goal])), self.config))
        routes: list[list[int]] = []
        stack: list[tuple[int, list[int], set[int]]] = [(here, [], {here})]
        while stack:
            room, doors, seen = stack.pop()
            if room == there:
                routes.append(doors)
                continue
            for d, (_, _, joined) in enumerate(DOORS):
                if d != self.config.closed_door and room in joined:
                    nxt = joined[1] if joined[0] == room else joined[0]
                    if nxt not in seen:
                        stack.append((nxt, [*doors, d], seen | {nxt}))
        return routes

    def waypoints(self) -> list[np.ndarray]:
        """The oracle's subgoals for the current task: the shortest route of straight segments from the
        agent to the goal through the centres of open doors and, where the task has a keep-out square,
        round it at KEEP_OUT_MARGIN (``paths.round_keep_out``: the corners of the widened square it goes
        round, door points moved along their gap out of the margin; a route it blocks is not taken);
        the points between the agent and the goal."""
        cfg = self.config
        margin = KEEP_OUT_MARGIN * cfg.arena_size  # the margin the task's route was drawn to leave
        cleared, plain = [], []
        for doors in self._door_routes():
            points = [self._door_point(d, margin) for d in doors]
            route = round_keep_out([self.state, *points, self.goal], cfg, margin) \
                if all(p is not None for p in points) else None
            if route is not None:
                cleared.append(route)
            plain.append([self.state, *(self.door_centre(d) for d in doors), self.goal])
        # No route clear of the margin (a world whose keep-out was not drawn by reset): the door centres.
        routes = cleared or plain
        if not routes:
            return []
        return list(min(routes, key=lambda r: sum(float(np.linalg.norm(b - a)) for a, b in zip(r, r[1:])))[1:-1])

    def explore_config(self, rng: np.random.Generator) -> FourRoomsConfig:
        """An exploration episode's world: as in the tasks, a door closed with probability 0.5 (which
        one uniform), so that the world models see closed doors block the way."""
        closed = int(rng.integers(4)) if rng.random() < 0.5 else None
        return dataclasses.replace(self.world, closed_door=closed)

    def with_config(self, config: FourRoomsConfig) -> FourRoomsEnv:
        return FourRoomsEnv(config=config, render_mode=self.render_mode)

    def explore_start(self, rng: np.random.Generator, config: FourRoomsConfig, start: np.ndarray) -> np.ndarray:
        """Where an exploration episode in ``config`` starts: with a door closed, in ``DOOR_START_SHARE``
        of the episodes a free point within ``DOOR_START_RADIUS`` of that door (either side), else
        ``start``. Why: from uniform starts, 5 of 2,828 ten-step chunks with a door closed moved toward
        it from nearby, so the slow model never saw a closed door stop the agent and planned through
        it; the hierarchical arm went 68% -> 76% with these starts (docs/planning.md)."""
        if config.closed_door is None or rng.random() >= DOOR_START_SHARE:
            return start
        reach = DOOR_START_RADIUS * config.arena_size
        centre = self.door_centre(config.closed_door)
        for _ in range(TASK_TRIES):
            p = (centre + rng.uniform(-reach, reach, 2)).astype(np.float32)
            if bool(is_free(torch.as_tensor(p), config)):
                return p
        return start

    def sample_start(self, rng: np.random.Generator) -> np.ndarray:
        """An exploration start, uniform over the four rooms (same size)."""
        return sample_position(rng, self.config, int(rng.integers(4)))


__all__ = ["DOORS", "ENV_ID", "FourRoomsConfig", "FourRoomsEnv", "Task", "room_bounds", "room_of"]
