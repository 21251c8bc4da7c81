"""Shortest paths of the point agent in an arena world, on a fine grid: how long a task really is.

The free space (agent centres whose disc is off every wall, ``arena.is_free``, and outside the
keep-out rectangle: a path that obeys the guardrail) is sampled on a grid
of ``cell`` world units (0.01 by default: 10,000 points, about 0.06 s); Dijkstra over the
16-neighbourhood (the 8 neighbours and the 8 knight's moves, whose segments are checked free at
their midpoints) gives path lengths at most about 3% above the Euclidean shortest path (8 neighbours
alone overestimate by up to 8%), plus the snapping of both ends onto the grid (at most a cell's
half-diagonal each).
"""

from __future__ import annotations

import functools
import heapq
import math

import numpy as np
import torch

from .arena import in_keep_out, is_free

_MOVES = [(dx, dy) for dx in (-2, -1, 0, 1, 2) for dy in (-2, -1, 0, 1, 2)
          if (dx, dy) != (0, 0) and math.gcd(abs(dx), abs(dy)) == 1]


def free_grid(cfg, cell: float) -> np.ndarray:
    """bool [n, n]: whether the agent may stand at each grid point ``((i + 0.5) * cell, (j + 0.5) * cell)``
    (index [i, j] is x, y): off the walls and, where the world has one, outside the keep-out region."""
    n = int(round(cfg.arena_size / cell))
    axis = (torch.arange(n, dtype=torch.float32) + 0.5) * cell
    xs, ys = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([xs, ys], dim=-1)
    return (is_free(points, cfg) & ~in_keep_out(points, cfg)).numpy()


class DistanceField:
    """Shortest-path lengths to one goal from anywhere in the arena (world units; inf when cut off)."""

    def __init__(self, cfg, goal: np.ndarray, cell: float = 0.01) -> None:
        self.cell = cell
        self.goal = np.asarray(goal, np.float64)
        self.free, neighbours = _graph(cfg, cell)
        self.snapped_goal = _nearest_free(self.free, self.goal, cell)
        self.grid = _dijkstra(neighbours, self.free.shape[0], self.snapped_goal)

    def __call__(self, start: np.ndarray) -> float:
        """The length from ``start``: the grid's, plus the snapping of both ends onto grid points."""
        i, j = _nearest_free(self.free, start, self.cell)
        gi, gj = self.snapped_goal
        c = self.cell
        snap = math.hypot(start[0] - (i + 0.5) * c, start[1] - (j + 0.5) * c) + \
            math.hypot(self.goal[0] - (gi + 0.5) * c, self.goal[1] - (gj + 0.5) * c)
        return float(self.grid[i, j] + snap)


@functools.lru_cache(maxsize=16)
def _graph(cfg, cell: float) -> tuple[np.ndarray, list[list[tuple[int, float]]]]:
    """The free grid of a world and, per free point (flat index i * n + j), its neighbours and the
    lengths to them; once per world (configs are frozen, so they key the cache)."""
    free = free_grid(cfg, cell)
    n = free.shape[0]
    pad = np.zeros((n + 4, n + 4), bool)
    pad[2:-2, 2:-2] = free

    def shifted(dx: int, dy: int) -> np.ndarray:
        return pad[2 + dx: 2 + dx + n, 2 + dy: 2 + dy + n]

    neighbours: list[list[tuple[int, float]]] = [[] for _ in range(n * n)]
    for dx, dy in _MOVES:
        ok = free & shifted(dx, dy)
        if abs(dx) == 1 and abs(dy) == 1:
            ok &= shifted(dx, 0) & shifted(0, dy)  # no cutting a wall's corner diagonally
        elif abs(dx) + abs(dy) == 3:
            ok &= shifted(dx // 2 if abs(dx) == 2 else 0, dy // 2 if abs(dy) == 2 else 0)  # its midpoint
        length = cell * math.hypot(dx, dy)
        step = dx * n + dy
        for u in np.flatnonzero(ok):
            neighbours[u].append((int(u + step), length))
    return free, neighbours


def _dijkstra(neighbours: list[list[tuple[int, float]]], n: int, start: tuple[int, int]) -> np.ndarray:
    dist = [math.inf] * (n * n)
    origin = start[0] * n + start[1]
    dist[origin] = 0.0
    heap = [(0.0, origin)]
    while heap:
        d, u = heapq.heappop(heap)
        if d > dist[u]:
            continue
        for v, w in neighbours[u]:
            nd = d + w
            if nd < dist[v]:
                dist[v] = nd
                heapq.heappush(heap, (nd, v))
    return np.array(dist).reshape(n, n)


def shortest_path_length(cfg, start: np.ndarray, goal: np.ndarray, cell: float = 0.01) -> float:
    """The length of the shortest free path from ``start`` to ``goal`` (world units; inf if none)."""
    return DistanceField(cfg, goal, cell)(np.asarray(start, np.float64))


def round_keep_out(points: list[np.ndarray], cfg, clearance: float, samples: int = 64) -> list[np.ndarray] | None:
    """A route of straight segments (``points``: start, waypoints, goal) bent round the world's keep-out
    rectangle: every segment that passes within ``clearance`` of it is replaced by the shortest detour
    through one or two corners of the rectangle widened by ``clearance``, among those whose segments
    stay on free ground (walls checked at ``samples`` points a segment); without a keep-out the route
    comes back unchanged.

    Returns:
        The route with the detour corners inserted (start and goal included, as given), or None when
        a segment crosses the widened rectangle and no such detour clears it."""
    if cfg.keep_out is None:
        return list(points)
    x0, y0, x1, y1 = cfg.keep_out
    c = float(clearance)
    corners = [np.array(v, np.float64) for v in ((x0 - c, y0 - c), (x1 + c, y0 - c), (x1 + c, y1 + c), (x0 - c, y1 + c))]
    shrunk = (x0 - 0.99 * c, y0 - 0.99 * c, x1 + 0.99 * c, y1 + 0.99 * c)  # a segment along the widened edge is clear

    def line(a: np.ndarray, b: np.ndarray) -> torch.Tensor:
        t = torch.linspace(0, 1, samples, dtype=torch.float64)[:, None]
        return torch.as_tensor(a, dtype=torch.float64) + t * torch.as_tensor(b - a, dtype=torch.float64)

    def crosses(a: np.ndarray, b: np.ndarray) -> bool:
        x, y = line(a, b).unbind(-1)
        return bool(((x > shrunk[0]) & (x < shrunk[2]) & (y > shrunk[1]) & (y < shrunk[3])).any())

    def clear(a: np.ndarray, b: np.ndarray) -> bool:
        return not crosses(a, b) and bool(is_free(line(a, b).float(), cfg).all())

    # one corner, or two neighbouring corners (round one side)
    detours = [[k] for k in range(4)] + [[k, (k + s) % 4] for k in range(4) for s in (1, 3)]
    route = [np.asarray(points[0], np.float64)]
    for b in points[1:]:
        a, b = route[-1], np.asarray(b, np.float64)
        if crosses(a, b):
            best: tuple[float, list[np.ndarray]] | None = None
            for ks in detours:
                via = [a, *(corners[k] for k in ks), b]
                if all(clear(u, v) for u, v in zip(via, via[1:])):
                    length = float(sum(np.linalg.norm(v - u) for u, v in zip(via, via[1:])))
                    if best is None or length < best[0]:
                        best = (length, via[1:-1])
            if best is None:
                return None
            route += best[1]
        route.append(b)
    return route


def _nearest_free(free: np.ndarray, xy: np.ndarray, cell: float) -> tuple[int, int]:
    n = free.shape[0]
    i = min(max(int(xy[0] / cell), 0), n - 1)
    j = min(max(int(xy[1] / cell), 0), n - 1)
    if free[i, j]:
        return i, j
    cand = np.argwhere(free)
    k = int(np.argmin((cand[:, 0] - i) ** 2 + (cand[:, 1] - j) ** 2))
    return int(cand[k, 0]), int(cand[k, 1])
