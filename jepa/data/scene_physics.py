"""The physics of the procedural disc scenes (``builtin:bouncing``, ``builtin:physics``, ``builtin:voe``).

Discs fly in the unit box (y pointing down, time in frames) under a constant downward gravity,
bounce elastically off the box's sides and off solid inner walls, and pass in front of or behind
one another (no disc-disc collisions). Everything is numpy and elementwise per disc, so a disc's
trajectory does not depend on the others: twins that change one disc leave the rest bit-identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SUBSTEPS = 4


@dataclass(frozen=True)
class Wall:
    """A solid axis-aligned rectangle inside the box, ``x0 <= x <= x1``, ``y0 <= y <= y1`` (scene units)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Distance from points [..., 2] to the rectangle (0 inside it)."""
        dx = np.maximum(np.maximum(self.x0 - points[..., 0], points[..., 0] - self.x1), 0.0)
        dy = np.maximum(np.maximum(self.y0 - points[..., 1], points[..., 1] - self.y1), 0.0)
        return np.sqrt(dx * dx + dy * dy)


def _bounce_off_walls(pos: np.ndarray, vel: np.ndarray, r: np.ndarray, walls: Sequence[Wall],
                      solid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reflects solid discs that overlap a wall: the position is mirrored out along the contact
    normal (from the nearest point of the rectangle to the centre) and the velocity's normal part
    flips when it points into the wall. Walls are thicker than a sub-step's travel, so a disc
    never reaches a wall's inside."""
    for wall in walls:
        nearest = np.stack([np.clip(pos[:, 0], wall.x0, wall.x1), np.clip(pos[:, 1], wall.y0, wall.y1)], axis=1)
        offset = pos - nearest
        dist = np.sqrt((offset**2).sum(axis=1, keepdims=True))
        hit = solid[:, None] & (dist < r) & (dist > 0)
        if not hit.any():
            continue
        normal = offset / np.where(dist > 0, dist, 1.0)
        pos = np.where(hit, pos + 2 * (r - dist) * normal, pos)
        into = (vel * normal).sum(axis=1, keepdims=True)
        vel = np.where(hit & (into < 0), vel - 2 * into * normal, vel)
    return pos, vel


def simulate(
    position: np.ndarray,
    velocity: np.ndarray,
    radius: np.ndarray,
    num_frames: int,
    gravity: float | np.ndarray = 0.001,
    substeps: int = SUBSTEPS,
    walls: Sequence[Wall] = (),
    solid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Integrates discs in the unit box under gravity (+y) with elastic bounces on all four sides
    and off solid inner walls.

    Free flight is integrated exactly (constant acceleration); a disc that crosses a side in a sub-step
    is mirrored back into the box and its speed along y is re-set from energy conservation, so the
    energy ``|v|^2 / 2 - gravity * y`` of every disc is constant up to rounding.

    Args:
        position: [N, 2] initial centres (x, y), each inside [radius, 1 - radius].
        velocity: [N, 2] initial velocities in box units per frame.
        radius: [N] disc radii.
        num_frames: number of frames T to return (frame 0 is the initial state).
        gravity: downward acceleration in box units per frame squared, one for all or [N] per disc.
        substeps: integration sub-steps per frame (bounces are resolved at this granularity).
        walls: solid inner walls.
        solid: [N] which discs bounce off the walls (default: all).

    Returns:
        (positions, velocities), each [T, N, 2] float64.
    """
    pos = np.array(position, dtype=np.float64).reshape(-1, 2)
    vel = np.array(velocity, dtype=np.float64).reshape(-1, 2)
    r = np.asarray(radius, dtype=np.float64).reshape(-1, 1)
    g = np.broadcast_to(np.asarray(gravity, dtype=np.float64), (len(pos),))
    solid = np.ones(len(pos), dtype=bool) if solid is None else np.asarray(solid, dtype=bool)
    lo, hi = r, 1.0 - r
    h = 1.0 / substeps
    acc = np.stack([np.zeros_like(g), g], axis=1)
    positions = np.empty((num_frames, len(pos), 2))
    velocities = np.empty_like(positions)
    positions[0], velocities[0] = pos, vel
    for t in range(1, num_frames):
        for _ in range(substeps):
            new = pos + vel * h + 0.5 * acc * h * h
            vel = vel + acc * h
            below, above = new < lo, new > hi
            if below.any() or above.any():
                crossed = new
                new = np.where(below, 2 * lo - new, np.where(above, 2 * hi - new, new))
                # Mirroring the position moves a disc along y, so re-set |vy| from energy conservation
                # (|v|^2/2 - g*y constant); without this every floor bounce gains or loses a little energy.
                vy2 = np.maximum(vel[:, 1] ** 2 + 2 * g * (new[:, 1] - crossed[:, 1]), 0.0)
                vy = np.where(below[:, 1] | above[:, 1], np.sqrt(vy2), vel[:, 1])
                vel = np.stack([vel[:, 0], vy], axis=1)
                vel = np.where(below, np.abs(vel), np.where(above, -np.abs(vel), vel))
            if walls:
                new, vel = _bounce_off_walls(new, vel, r, walls, solid)
            pos = new
        positions[t], velocities[t] = pos, vel
    return positions, velocities
