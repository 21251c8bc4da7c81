"""``builtin:voe``: violation-of-expectation twins of ``builtin:physics`` scenes.

Each pair is two clips identical pixel for pixel up to an event frame (the other discs, the bar, the
walls, the background and the per-frame noise stay identical after it too); then one clip continues
possibly and the other does not. The events (IntPhys, GRASP):

| event | property | what the impossible clip does | its mirror |
|---|---|---|---|
| teleport | continuity | the main disc jumps to another place (at the top of its arc, nearly still) | it jumps back the other way |
| vanish | permanence | a disc lying on the floor vanishes in the open | a disc appears there |
| vanish_occluded | permanence | a disc goes behind the bar and never comes out | a disc comes out that never went in |
| colour | constancy | a disc changes colour | the colours swapped |
| size | constancy | a disc grows | a disc shrinks |
| solidity | solidity | a disc goes behind the bar above a solid wall and comes out below it | the other way up |
| reversal | inertia | the main disc turns back in mid-air | mirrored left-right |
| gravity | gravity | the main disc hovers (gravity off) | it rises (gravity reversed) |

Balanced as IntPhys is: for the first five, two possible worlds A and B (a disc here or there,
present or absent, of one colour or size or the other) give the pairs (A, A-then-B) and
(B, B-then-A), so over the set the possible and the impossible clips hold the same frames and only
their order breaks physics. Every frame of an impossible clip shows what the training scenes show
(the same counts, colours, sizes, walls): only the sequence is impossible.

Everything is a pure function of (split, index): no files.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..seeding import mix_seed
from .bouncing import (
    DISTRACTOR_COLOUR,
    PHYSICS,
    SPEED_RANGE,
    BouncingScene,
    Wall,
    make_scene,
    render_clip,
    simulate,
)

EVENTS = ("teleport", "vanish", "vanish_occluded", "colour", "size", "solidity", "reversal", "gravity")
PROPERTIES = {"teleport": "continuity", "vanish": "permanence", "vanish_occluded": "permanence",
              "colour": "constancy", "size": "constancy", "solidity": "solidity", "reversal": "inertia",
              "gravity": "gravity"}
_SALTS = {"train": 0x70E5_0001, "val": 0x70E5_0002}
PIXEL = 1 / 64  # scene units per pixel at the default resolution


@dataclass
class Twin:
    """A possible and an impossible clip, identical before ``event_frame``.

    Attributes:
        key: a stable name, ``builtin:voe/<split>/<index>``.
        event: one of EVENTS.
        variant: which side of the event's mirror (``vanish`` or ``appear``, ``grow`` or ``shrink``, ...).
        event_frame: the first frame where the two clips differ.
        possible: uint8 [T, H, W, 3].
        impossible: uint8 [T, H, W, 3].
    """

    key: str
    event: str
    variant: str
    event_frame: int
    possible: np.ndarray
    impossible: np.ndarray


def _per_frame(scene: BouncingScene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radii [T, N], colours [T, N, 3] and visibility [T, N] of a scene, per frame."""
    t, n = scene.positions.shape[:2]
    radii = np.broadcast_to(scene.radii, (t, n)) if np.ndim(scene.radii) == 1 else scene.radii
    colours = np.broadcast_to(scene.colours, (t, n, 3)) if np.ndim(scene.colours) == 2 else scene.colours
    visible = np.ones((t, n), dtype=bool) if scene.visible is None else scene.visible
    return np.array(radii), np.array(colours), np.array(visible)


def splice(first: BouncingScene, then: BouncingScene, frame: int) -> BouncingScene:
    """``first`` up to ``frame`` (excluded), ``then`` from it on; the static parts are ``first``'s."""
    (r1, c1, v1), (r2, c2, v2) = _per_frame(first), _per_frame(then)
    cut = lambda a, b: np.concatenate([a[:frame], b[frame:]])  # noqa: E731
    return dataclasses.replace(first, positions=cut(first.positions, then.positions),
                               velocities=cut(first.velocities, then.velocities), radii=cut(r1, r2),
                               colours=cut(c1, c2), visible=cut(v1, v2))


def _bar_distance(points: np.ndarray, bar: tuple[float, float, float, float, float]) -> np.ndarray:
    """Distance from points [..., 2] to the bar's centre segment."""
    bx, by, angle, half_length, _ = bar
    u = np.array([math.cos(angle), math.sin(angle)])
    rel = points - np.array([bx, by])
    along = np.clip(rel @ u, -half_length, half_length)
    return np.linalg.norm(rel - along[..., None] * u, axis=-1)


def _in_the_open(scene: BouncingScene, disc: int, frames: Sequence[int]) -> bool:
    """Whether ``disc`` is wholly visible in ``frames``: clear of the bar, the walls and the discs
    drawn over it (the distractors after it and the main disc, which is drawn last)."""
    radii = np.max(_per_frame(scene)[0], axis=0)
    over = [k for k in range(len(radii)) if k != disc and (k == 0 or k > disc)] if disc else []
    for t in frames:
        p = scene.positions[t, disc]
        if _bar_distance(p, scene.bar) < scene.bar[4] + radii[disc] + PIXEL:
            return False
        if any(w.distance(p) < radii[disc] + PIXEL for w in scene.walls):
            return False
        if any(np.linalg.norm(scene.positions[t, k] - p) < radii[k] + radii[disc] + PIXEL for k in over):
            return False
    return True


def _resimulate(scene: BouncingScene, start: int, velocity: np.ndarray | None = None,
                gravity: np.ndarray | None = None, solid: np.ndarray | None = None) -> BouncingScene:
    """The scene with every disc simulated again from frame ``start`` (optionally with other
    velocities, per-disc gravity or solidity): discs left unchanged keep their trajectories bit for bit."""
    t = scene.positions.shape[0]
    pos, vel = simulate(scene.positions[start], scene.velocities[start] if velocity is None else velocity,
                        np.max(_per_frame(scene)[0], axis=0), t - start,
                        gravity=scene.gravity if gravity is None else gravity, walls=scene.walls, solid=solid)
    return dataclasses.replace(scene, positions=np.concatenate([scene.positions[:start], pos]),
                               velocities=np.concatenate([scene.velocities[:start], vel]))


def _first_difference(a: BouncingScene, b: BouncingScene) -> int | None:
    (ra, ca, va), (rb, cb, vb) = _per_frame(a), _per_frame(b)
    differs = (np.abs(a.positions - b.positions).max(axis=(1, 2)) > 1e-9) | (ra != rb).any(1) \
        | (ca != cb).any((1, 2)) | (va != vb).any(1)
    return int(np.argmax(differs)) if differs.any() else None


class VoETwins:
    """``builtin:voe``: ``pairs_per_event`` pairs for each event, mirrors interleaved.

    Args:
        split: ``train`` (for choosing settings such as the context length) or ``val`` (for scoring).
        pairs_per_event: pairs of each event (even: each comes with its mirror).
        resolution: side of the frames in pixels.
        num_frames: frames per clip; events happen between 40% and 60% of the clip.
        events: the events to draw, a subset of EVENTS.
    """

    def __init__(self, split: str = "val", pairs_per_event: int = 200, resolution: int = 64, num_frames: int = 20,
                 events: Sequence[str] = EVENTS) -> None:
        if split not in _SALTS:
            raise ValueError(f"builtin:voe has splits train and val, not {split!r}")
        unknown = [e for e in events if e not in EVENTS]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r}: the events are {', '.join(EVENTS)}")
        if num_frames < 12:
            raise ValueError(f"builtin:voe clips need at least 12 frames, not {num_frames}")
        self.split, self.pairs_per_event = split, pairs_per_event
        self.resolution, self.num_frames, self.events = resolution, num_frames, tuple(events)
        self.event_range = (round(0.4 * num_frames), round(0.6 * num_frames))

    def __len__(self) -> int:
        return len(self.events) * self.pairs_per_event

    def scenes(self, index: int) -> tuple[str, str, BouncingScene, BouncingScene, bool]:
        """(event, variant, possible scene, impossible scene, mirrored left-right) of pair ``index``."""
        event = self.events[index // self.pairs_per_event]
        base, mirror = divmod(index % self.pairs_per_event, 2)
        build = _BUILDERS[event]
        for attempt in range(1000):  # rejection sampling: each builder returns None for a draw it cannot use
            rng = np.random.default_rng(mix_seed(_SALTS[self.split], EVENTS.index(event), base, attempt))
            made = build(rng, self.num_frames, self.event_range, mirror)
            if made is not None:
                return (event, *made)
        raise RuntimeError(f"builtin:voe could not draw a {event} pair for index {index}")

    def pair(self, index: int) -> Twin:
        """Pair ``index``, rendered."""
        event, variant, possible, impossible, flip = self.scenes(index)
        frame = _first_difference(possible, impossible)
        clips = [render_clip(s, self.resolution) for s in (possible, impossible)]
        if flip:
            clips = [np.ascontiguousarray(c[:, :, ::-1]) for c in clips]
        return Twin(f"builtin:voe/{self.split}/{index}", event, variant, frame, *clips)

    def describe(self, index: int) -> str:
        return f"builtin:voe/{self.split}/{index}"


Built = tuple[str, BouncingScene, BouncingScene, bool] | None


def _base(rng: np.random.Generator, frames: int, distractors: tuple[int, int] = (2, 3), walls: float = 0.0) -> BouncingScene:
    family = dataclasses.replace(PHYSICS, distractors=distractors, wall_probability=walls)
    return make_scene(int(rng.integers(8)), rng, frames, family)


def _two_worlds(a: BouncingScene, b: BouncingScene, frame: int, mirror: int, names: tuple[str, str]) -> Built:
    """The pair (A, A then B) or its mirror (B, B then A)."""
    first, then = (a, b) if mirror == 0 else (b, a)
    return names[mirror], first, splice(first, then, frame), False


def _place(scene: BouncingScene, disc: int, frame: int, at: np.ndarray, velocity: np.ndarray,
           radius: float | None = None) -> BouncingScene | None:
    """The scene with ``disc`` (of ``radius``) passing ``at`` with ``velocity`` at ``frame``: its start is
    found by running time backwards (free flight under gravity is reversible), then every disc is
    simulated forwards again. None when the disc would have bounced on the way (not reversible)."""
    r = float(scene.radii[disc] if radius is None else radius)
    back, back_vel = simulate(at, -np.asarray(velocity), [r], frame + 1, gravity=scene.gravity, walls=scene.walls)
    start, start_vel = scene.positions[0].copy(), scene.velocities[0].copy()
    start[disc], start_vel[disc] = back[-1, 0], -back_vel[-1, 0]
    radii = np.array(scene.radii, dtype=np.float64)
    radii[disc] = r
    if any(w.distance(start[disc]) < r + 0.01 for w in scene.walls):
        return None
    pos, vel = simulate(start, start_vel, radii, len(scene.positions), gravity=scene.gravity, walls=scene.walls)
    if np.linalg.norm(pos[frame, disc] - at) > 0.25 * PIXEL:
        return None
    return dataclasses.replace(scene, positions=pos, velocities=vel, radii=radii)


def _apex(rng: np.random.Generator) -> np.ndarray:
    """A velocity at the top of an arc: a disc there moves about 1.5 px in the next 4 frames, so even a
    predictor that copies the last frame forward sees it jump (as every model must)."""
    return np.array([rng.uniform(-0.006, 0.006), rng.uniform(-0.003, 0.003)])


def _teleport(rng: np.random.Generator, frames: int, events: tuple[int, int], mirror: int) -> Built:
    base = _base(rng, frames)
    frame, velocity, r = int(rng.integers(events[0], events[1] + 1)), _apex(rng), float(base.radii[0])
    here, there = rng.uniform(r + 0.05, 1 - r - 0.05, (2, 2))
    if np.linalg.norm(here - there) < 0.3:
        return None  # a jump of at least 19 px at 64 px
    a, b = _place(base, 0, frame, here, velocity), _place(base, 0, frame, there, velocity)
    if a is None or b is None:
        return None
    return _two_worlds(a, b, frame, mirror, ("teleport", "teleport back"))


def _vanish(rng: np.random.Generator, frames: int, events: tuple[int, int], mirror: int) -> Built:
    """A small disc lies on the floor, still or rolling slowly (at most 0.2 px a frame), in the open, and
    vanishes. The disc must be nearly still: a moving disc changes as many pixels from frame to frame as
    a vanished one, so even copying the last frame forward could not tell them apart (measured: copy-last
    scored 10% on vanishings at the top of an arc, where a disc is still only for a frame or two)."""
    base = _base(rng, frames, distractors=(3, 3))  # 4 discs with it, 3 without: both counts are in training
    frame, r = int(rng.integers(events[0], events[1] + 1)), float(base.radii[1])
    start, velocity = base.positions[0].copy(), base.velocities[0].copy()
    start[1], velocity[1] = (rng.uniform(r + 0.05, 1 - r - 0.05), 1 - r), (rng.uniform(-0.003, 0.003), 0.0)
    pos, vel = simulate(start, velocity, base.radii, frames, gravity=base.gravity, walls=base.walls)
    a = dataclasses.replace(base, positions=pos, velocities=vel)
    if not _in_the_open(a, 1, range(frame - 2, frames)):
        return None
    visible = np.ones(a.positions.shape[:2], dtype=bool)
    visible[:, 1] = False
    return _two_worlds(a, dataclasses.replace(a, visible=visible), frame, mirror, ("vanish", "appear"))


def _behind_the_bar(scene: BouncingScene, disc: int) -> np.ndarray:
    """[T] whether ``disc`` is wholly hidden behind the bar in each frame."""
    r = float(np.max(_per_frame(scene)[0][:, disc]))
    return _bar_distance(scene.positions[:, disc], scene.bar) + r <= scene.bar[4] - 0.5 * PIXEL


def _vanish_occluded(rng: np.random.Generator, frames: int, events: tuple[int, int], mirror: int) -> Built:
    base = _base(rng, frames, distractors=(3, 3))
    bx, by, angle, half_length, _ = base.bar
    half_width = float(rng.uniform(0.06, 0.09))
    radius = float(rng.uniform(0.035, min(0.06, half_width - 0.015)))
    base = dataclasses.replace(base, bar=(bx, by, angle, half_length, half_width))
    frame = int(rng.integers(events[0], events[1] + 1))
    # Disc 1 behind the bar at the event frame.
    u, n = np.array([math.cos(angle), math.sin(angle)]), np.array([-math.sin(angle), math.cos(angle)])
    at = np.array([bx, by]) + rng.uniform(-0.6, 0.6) * half_length * u + rng.uniform(-1, 1) * (half_width - radius - 0.01) * n
    heading = rng.uniform(0, 2 * math.pi)
    a = _place(base, 1, frame, at, rng.uniform(*SPEED_RANGE) * np.array([math.cos(heading), math.sin(heading)]),
               radius)
    if a is None:
        return None
    hidden = _behind_the_bar(a, 1)
    if not hidden[frame] or hidden[: frame - 2].all() or hidden[frame + 3:].all():
        return None  # it must be seen going in (before) and coming out (after)
    visible = np.ones(a.positions.shape[:2], dtype=bool)
    visible[:, 1] = False
    return _two_worlds(a, dataclasses.replace(a, visible=visible), frame, mirror,
                       ("vanish behind the bar", "appear from behind the bar"))


def _colour(rng: np.random.Generator, frames: int, events: tuple[int, int], mirror: int) -> Built:
    a = _base(rng, frames)
    frame = int(rng.integers(events[0], events[1] + 1))
    colours = a.colours.copy()
    colours[1] = rng.uniform(*DISTRACTOR_COLOUR, 3)
    if np.abs(colours[1] - a.colours[1]).max() < 60 or not _in_the_open(a, 1, range(frame - 1, frame + 1)):
        return None
    return _two_worlds(a, dataclasses.replace(a, colours=colours), frame, mirror, ("colour A->B", "colour B->A"))


def _size(rng: np.random.Generator, frames: int, events: tuple[int, int], mirror: int) -> Built:
    a = _base(rng, frames)
    frame = int(rng.integers(events[0], events[1] + 1))
    small, large = a.radii.copy(), a.radii.copy()
    small[1], large[1] = rng.uniform(0.035, 0.04), rng.uniform(0.055, 0.06)
    pos, vel = simulate(a.positions[0], a.velocities[0], small, frames, gravity=a.gravity)
    pos_large, _ = simulate(a.positions[0], a.velocities[0], large, frames, gravity=a.gravity)
    if not np.array_equal(pos, pos_large):
        return None  # the disc touched a side: its path depends on its size
    a = dataclasses.replace(a, positions=pos, velocities=vel, radii=small)
    if not _in_the_open(dataclasses.replace(a, radii=large), 1, range(frame - 1, frame + 1)):
        return None
    return _two_worlds(a, dataclasses.replace(a, radii=large), frame, mirror, ("grow", "shrink"))


def _solidity(rng: np.random.Generator, frames: int, events: tuple[int, int], mirror: int) -> Built:
    """A horizontal wall crosses a steep bar. World A: a disc slips behind the bar above the wall, bounces
    off its top and comes back out above it. World B: a disc slips behind the bar below the wall, bounces
    off its bottom and comes back out below. Spliced while both are hidden, a disc goes in on one side and
    comes out on the other: through the wall. As in IntPhys, the violation happens out of sight (no frame
    shows a disc inside or against a wall) and the pairs (A, A then B), (B, B then A) hold the same frames."""
    base = _base(rng, frames)
    angle = math.pi / 2 + float(rng.uniform(-0.5, 0.5))  # a steep bar crossed by a horizontal wall
    half_width, half_length = float(rng.uniform(0.07, 0.09)), float(rng.uniform(0.25, 0.45))
    radius = float(rng.uniform(0.035, min(0.05, half_width - 0.02)))
    bx, by = rng.uniform(0.3, 0.7, 2)
    thickness, length = float(rng.uniform(0.035, 0.045)), float(rng.uniform(0.35, 0.6))
    x0, y0 = bx - length / 2 + float(rng.uniform(-0.1, 0.1)), by + float(rng.uniform(-0.1, 0.1))
    wall = Wall(x0, y0, x0 + length, y0 + thickness)
    base = dataclasses.replace(base, bar=(bx, by, angle, half_length, half_width), walls=(wall,))
    frame = int(rng.integers(events[0], events[1] + 1))
    axis = np.array([math.cos(angle), math.sin(angle)])
    worlds = []
    for down in (True, False):  # A: onto the wall's top; B: into its bottom
        # Where the bar's axis meets the wall's face, the disc is about to touch it, heading along the
        # axis within 25 degrees; it is placed a little before the contact, so it is hidden at the splice.
        face = wall.y0 - radius if down else wall.y1 + radius
        heading = math.atan2(abs(axis[1]), axis[0] * np.sign(axis[1])) + float(rng.uniform(-0.45, 0.45))
        velocity = rng.uniform(*SPEED_RANGE) * np.array([math.cos(heading), math.sin(heading) * (1 if down else -1)])
        at = np.array([bx + (face - by) * axis[0] / axis[1], face]) - velocity * float(rng.uniform(0.2, 1.0))
        world = _place(base, 1, frame, at, velocity, radius)
        if world is None:
            return None
        hidden = _behind_the_bar(world, 1)
        touching = wall.distance(world.positions[:, 1]) < radius + PIXEL
        if not hidden[frame] or (touching & ~hidden).any() or hidden[frame - 4:frame].all() or hidden[frame + 1:].all():
            return None  # hidden at the splice and at the wall, seen going in and coming out
        worlds.append(world)
    a, b = worlds
    for world in worlds:  # no other disc ever touches the wall either
        if any(wall.distance(world.positions[:, k]).min() < world.radii[k] for k in range(len(world.radii)) if k != 1):
            return None
    return _two_worlds(a, b, frame, mirror, ("down through the wall", "up through the wall"))


def _in_flight(scene: BouncingScene, disc: int, frames: range, margin: float = 0.05) -> bool:
    """Whether ``disc`` stays clear of the box's sides and the walls over ``frames`` (mid-air)."""
    r = float(scene.radii[disc])
    p = scene.positions[list(frames), disc]
    if (p < r + margin).any() or (p > 1 - r - margin).any():
        return False
    return all((w.distance(p) > r + margin).all() for w in scene.walls)


def _reversal(rng: np.random.Generator, frames: int, events: tuple[int, int], mirror: int) -> Built:
    a = _base(rng, frames)
    frame = int(rng.integers(events[0], events[1] + 1))
    if not _in_flight(a, 0, range(frame - 4, min(frames, frame + 4))):
        return None
    velocity = a.velocities[frame - 1].copy()
    velocity[0] = -velocity[0]
    return ("reversal", a, _resimulate(a, frame - 1, velocity=velocity), bool(mirror))


def _gravity(rng: np.random.Generator, frames: int, events: tuple[int, int], mirror: int) -> Built:
    a = _base(rng, frames)
    frame = int(rng.integers(events[0], events[1] + 1))
    if not _in_flight(a, 0, range(frame - 1, min(frames, frame + 8)), margin=0.02):
        return None
    gravity = np.full(len(a.radii), a.gravity)
    gravity[0] = 0.0 if mirror == 0 else -a.gravity
    return ("hover" if mirror == 0 else "rise", a, _resimulate(a, frame - 1, gravity=gravity), False)


_BUILDERS: dict[str, Callable[[np.random.Generator, int, tuple[int, int], int], Built]] = {
    "teleport": _teleport, "vanish": _vanish, "vanish_occluded": _vanish_occluded, "colour": _colour,
    "size": _size, "solidity": _solidity, "reversal": _reversal, "gravity": _gravity,
}
