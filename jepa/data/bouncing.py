"""``builtin:bouncing``: procedural video clips of discs under gravity, the embedded default VIDEO data.

Each clip shows a few discs flying in a closed box under a mild constant gravity, bouncing elastically
off the walls, floor and ceiling, and passing behind a static occluding bar. The main object is the
largest and brightest disc, drawn in front of the others. The label is the 8-way sector of its
INITIAL velocity direction (E, NE, N, ... counter-clockwise, N = up on screen).

Why one frame carries no information about the label: the label only sets the main object's direction;
its position (uniform in the box), speed, size, colour, the distractors, the bar and the background are
all drawn independently of it, so frame 0 is independent of the label by construction. Later frames
leak a little, which walls make unavoidable once frame 0 is label-free: a disc moving east leaves the
band along the west wall empty until it comes back from the east wall.
Knowing the main object's exact position, the best possible guess of the class is right 13% of the
time at frame 0 (chance), 19% at frame 4, 26% at frame 8 and 37% at frame 15, against 84% for a
logistic regression on its displacement between frames 0 and 2 (3,000 training clips; see
tests/test_bouncing.py for the smaller check that runs with the suite).

``builtin:physics`` is the same scene family with stronger gravity (the arcs bend by several
pixels within 8 frames) and, in half the scenes, a solid inner wall that every disc bounces off: the
training scenes of the intuitive-physics twins (``jepa.data.voe``), whose frames must all look like
frames of these scenes. The physics is in ``scene_physics``, the drawing in ``scene_render``.

Everything is a pure function of (split, index) and is generated with numpy alone: no files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..seeding import mix_seed
from .scene_physics import SUBSTEPS, Wall, simulate
from .scene_render import render_clip

__all__ = ["BOUNCING", "PHYSICS", "BouncingDataset", "BouncingScene", "DIRECTION_CLASSES", "GRAVITY", "PhysicsDataset",
           "SUBSTEPS", "SceneFamily", "Wall", "direction_sector", "make_scene", "render_clip", "simulate"]

DIRECTION_CLASSES = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")

# Scene units: the box is [0, 1]^2 with y pointing DOWN (image rows), time is in frames.
GRAVITY = 0.001  # Adds 0.015 to vy over 16 frames: arcs are visible, but speeds are 0.02-0.04.
SPEED_RANGE = (0.02, 0.04)  # 1.3-2.6 px/frame at 64 px: a clear shift between frames 0 and 2.
MAIN_RADIUS = (0.08, 0.10)
DISTRACTOR_RADIUS = (0.035, 0.06)
DISTRACTOR_COLOUR = (80, 170)
# Directions fill the central 80% of each 45-degree sector, so no clip sits on a class boundary.
SECTOR_FILL = 0.8


@dataclass(frozen=True)
class SceneFamily:
    """What distinguishes one family of disc scenes from another.

    Attributes:
        name: the builtin data name.
        salts: random-stream salts of the train and val splits.
        gravity: downward acceleration (box units per frame squared).
        distractors: fewest and most distractor discs beside the main one.
        wall_probability: share of scenes with a solid inner wall.
    """

    name: str = "bouncing"
    salts: tuple[int, int] = (0xB0B5_0001, 0xB0B5_0002)
    gravity: float = GRAVITY
    distractors: tuple[int, int] = (2, 3)
    wall_probability: float = 0.0


BOUNCING = SceneFamily()
# Gravity 0.003: a disc falls 6 px more than a hovering one within 8 frames at 64 px.
PHYSICS = SceneFamily("physics", (0x9A75_0001, 0x9A75_0002), gravity=0.003, wall_probability=0.5)
WALL_COLOUR = (205.0, 205.0, 215.0)  # a pale grey-blue rectangle: unlike any disc, bar or background


@dataclass
class BouncingScene:
    """Everything a clip shows, in scene units (box [0, 1]^2, y down); object 0 is the main object.

    Attributes:
        label: sector of the main object's initial velocity direction (index into DIRECTION_CLASSES).
        positions: [T, N, 2] object centres (x, y) per frame.
        velocities: [T, N, 2] object velocities per frame (scene units per frame).
        radii: [N] disc radii, or [T, N] when they change over time.
        colours: [N, 3] disc colours (0-255), or [T, N, 3].
        bar: (centre x, centre y, angle, half length, half width) of the static occluding bar.
        bar_colour: [3] bar colour.
        background: [2, 3] gradient end colours.
        gradient_angle: direction of the background gradient.
        noise_sigma: standard deviation of the per-frame pixel noise (grey levels).
        noise_seed: seed of the pixel noise.
        walls: solid inner walls (drawn in front of the discs, behind the bar).
        wall_colour: [3] the walls' colour.
        visible: [T, N] whether each disc is drawn in each frame (None: all of them, always).
        gravity: the family's gravity, that the scene was simulated with.
    """

    label: int
    positions: np.ndarray
    velocities: np.ndarray
    radii: np.ndarray
    colours: np.ndarray
    bar: tuple[float, float, float, float, float]
    bar_colour: np.ndarray
    background: np.ndarray
    gradient_angle: float
    noise_sigma: float
    noise_seed: int
    walls: tuple[Wall, ...] = ()
    wall_colour: tuple[float, float, float] = WALL_COLOUR
    visible: np.ndarray | None = None
    gravity: float = GRAVITY


def direction_sector(velocity: np.ndarray) -> np.ndarray:
    """The 8-way sector of velocity vectors (y down), 0 = E, 2 = N (up), counter-clockwise.

    Args:
        velocity: [..., 2] array of (vx, vy) in image orientation.

    Returns:
        Integer array [...] of sector indices into DIRECTION_CLASSES.
    """
    angle = np.arctan2(-velocity[..., 1], velocity[..., 0])  # minus: y points down on screen
    return np.round(angle / (math.pi / 4)).astype(np.int64) % 8


def random_wall(rng: np.random.Generator) -> Wall:
    """A vertical or horizontal wall, 0.35-0.6 long and about 2.5 px thick at 64 px, away from the sides."""
    length, thickness = rng.uniform(0.35, 0.6), rng.uniform(0.035, 0.045)
    cx, cy = rng.uniform(0.3, 0.7, 2)
    w, h = (thickness, length) if rng.uniform() < 0.5 else (length, thickness)
    return Wall(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def make_scene(label: int, rng: np.random.Generator, num_frames: int, family: SceneFamily = BOUNCING) -> BouncingScene:
    """Draws a clip's scene; only the main object's direction depends on ``label``.

    Args:
        label: direction sector of the main object's initial velocity (0-7).
        rng: source of every other random choice.
        num_frames: clip length T.
        family: the scene family (gravity, number of distractors, walls).

    Returns:
        The scene with simulated trajectories.
    """
    low, high = family.distractors
    n = 1 + int(rng.integers(low, high + 1))  # the main object and its distractors
    radii = np.concatenate([rng.uniform(*MAIN_RADIUS, 1), rng.uniform(*DISTRACTOR_RADIUS, n - 1)])
    position = rng.uniform(radii[:, None], 1 - radii[:, None], (n, 2))
    speed = rng.uniform(*SPEED_RANGE, n)
    angle = rng.uniform(0, 2 * math.pi, n)
    angle[0] = label * math.pi / 4 + rng.uniform(-1, 1) * SECTOR_FILL * math.pi / 8
    velocity = np.stack([speed * np.cos(angle), -speed * np.sin(angle)], axis=1)
    # The main object is told apart by size (radius 0.08-0.10 vs 0.035-0.06) and brightness: every channel
    # 190-255 (a pale tint), distractors 80-170, bar 40-150, background 0-70.
    colours = np.concatenate([rng.uniform(190, 255, (1, 3)), rng.uniform(*DISTRACTOR_COLOUR, (n - 1, 3))])
    # The bar is static within a clip but placed anew per clip, so it is an occluder to see through, not a
    # fixed mask; up to 0.18 wide, it hides a distractor entirely and sometimes the main disc too.
    bar = (float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8)), float(rng.uniform(0, math.pi)),
           float(rng.uniform(0.25, 0.45)), float(rng.uniform(0.03, 0.09)))
    c0 = rng.uniform(0, 70, 3)
    background = np.stack([c0, np.clip(c0 + rng.uniform(-35, 35, 3), 0, 255)])
    bar_colour, gradient_angle = rng.uniform(40, 150, 3), float(rng.uniform(0, 2 * math.pi))
    noise_sigma, noise_seed = float(rng.uniform(2, 8)), int(rng.integers(0, 2**63))
    walls: tuple[Wall, ...] = ()
    # Families without walls draw nothing more, so builtin:bouncing's scenes are as they always were.
    if family.wall_probability > 0 and rng.uniform() < family.wall_probability:
        walls = (random_wall(rng),)
        for k in range(n):  # no disc starts inside or against the wall
            while walls[0].distance(position[k]) < radii[k] + 0.01:
                position[k] = rng.uniform(radii[k], 1 - radii[k], 2)
    positions, velocities = simulate(position, velocity, radii, num_frames, gravity=family.gravity, walls=walls)
    return BouncingScene(
        label=label, positions=positions, velocities=velocities, radii=radii, colours=colours,
        bar=bar, bar_colour=bar_colour, background=background, gradient_angle=gradient_angle,
        noise_sigma=noise_sigma, noise_seed=noise_seed, walls=walls, gravity=family.gravity,
    )


class BouncingDataset:
    """``builtin:bouncing``: ``length`` procedural clips labelled by the main object's initial direction.

    Args:
        split: ``train`` or ``val``; the two draw from disjoint random streams.
        length: nominal number of clips (any index gives a new clip).
        resolution: side of the generated frames in pixels.
        num_frames: frames per clip.
    """

    classes = DIRECTION_CLASSES
    family = BOUNCING

    def __init__(self, split: str = "train", length: int = 50_000, resolution: int = 64, num_frames: int = 16) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"builtin:{self.family.name} has splits train and val, not {split!r}")
        self.split = split
        self.salt = self.family.salts[0 if split == "train" else 1]
        self.length = length
        self.resolution = resolution
        self.num_frames = num_frames

    def __len__(self) -> int:
        return self.length

    def label(self, index: int) -> int:
        """The direction class of clip ``index``, without rendering it.

        Args:
            index: clip index.
        """
        return mix_seed(self.salt, index, 7) % len(DIRECTION_CLASSES)

    def scene(self, index: int) -> BouncingScene:
        """The scene (trajectories, sizes, colours) behind clip ``index``.

        Args:
            index: clip index.
        """
        rng = np.random.default_rng(mix_seed(self.salt, index))
        return make_scene(self.label(index), rng, self.num_frames, self.family)

    def load(self, index: int) -> tuple[np.ndarray, int]:
        """Clip ``index`` as uint8 [T, H, W, 3] and its label.

        Args:
            index: clip index.
        """
        scene = self.scene(index)
        return render_clip(scene, self.resolution), scene.label

    def describe(self, index: int) -> str:
        """A stable name for clip ``index``, such as ``builtin:bouncing/train/5``.

        Args:
            index: clip index.
        """
        return f"builtin:{self.family.name}/{self.split}/{index}"


class PhysicsDataset(BouncingDataset):
    """``builtin:physics``: the bouncing scenes with stronger gravity and, in half of them, a solid
    inner wall; labelled like ``builtin:bouncing``. The intuitive-physics twins are drawn from it."""

    family = PHYSICS
