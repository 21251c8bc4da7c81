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

Everything is a pure function of (split, index) and is generated with numpy alone: no files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..seeding import mix_seed

DIRECTION_CLASSES = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")
_SPLIT_SALT = {"train": 0xB0B5_0001, "val": 0xB0B5_0002}

# Scene units: the box is [0, 1]^2 with y pointing DOWN (image rows), time is in frames.
GRAVITY = 0.001  # Adds 0.015 to vy over 16 frames: arcs are visible, but speeds are 0.02-0.04.
SPEED_RANGE = (0.02, 0.04)  # 1.3-2.6 px/frame at 64 px: a clear shift between frames 0 and 2.
MAIN_RADIUS = (0.08, 0.10)
DISTRACTOR_RADIUS = (0.035, 0.06)
# Directions fill the central 80% of each 45-degree sector, so no clip sits on a class boundary.
SECTOR_FILL = 0.8
SUBSTEPS = 4


@dataclass
class BouncingScene:
    """Everything a clip shows, in scene units (box [0, 1]^2, y down); object 0 is the main object.

    Attributes:
        label: sector of the main object's initial velocity direction (index into DIRECTION_CLASSES).
        positions: [T, N, 2] object centres (x, y) per frame.
        velocities: [T, N, 2] object velocities per frame (scene units per frame).
        radii: [N] disc radii.
        colours: [N, 3] disc colours (0-255).
        bar: (centre x, centre y, angle, half length, half width) of the static occluding bar.
        bar_colour: [3] bar colour.
        background: [2, 3] gradient end colours.
        gradient_angle: direction of the background gradient.
        noise_sigma: standard deviation of the per-frame pixel noise (grey levels).
        noise_seed: seed of the pixel noise.
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


def direction_sector(velocity: np.ndarray) -> np.ndarray:
    """The 8-way sector of velocity vectors (y down), 0 = E, 2 = N (up), counter-clockwise.

    Args:
        velocity: [..., 2] array of (vx, vy) in image orientation.

    Returns:
        Integer array [...] of sector indices into DIRECTION_CLASSES.
    """
    angle = np.arctan2(-velocity[..., 1], velocity[..., 0])  # minus: y points down on screen
    return np.round(angle / (math.pi / 4)).astype(np.int64) % 8


def simulate(
    position: np.ndarray,
    velocity: np.ndarray,
    radius: np.ndarray,
    num_frames: int,
    gravity: float = GRAVITY,
    substeps: int = SUBSTEPS,
) -> tuple[np.ndarray, np.ndarray]:
    """Integrates discs in the unit box under gravity (+y) with elastic bounces on all four sides.

    Free flight is integrated exactly (constant acceleration); a disc that crosses a side in a sub-step
    is mirrored back into the box and its speed along y is re-set from energy conservation, so the
    energy ``|v|^2 / 2 - gravity * y`` of every disc is constant up to rounding. Discs do not collide
    with each other (they pass in front of / behind one another).

    Args:
        position: [N, 2] initial centres (x, y), each inside [radius, 1 - radius].
        velocity: [N, 2] initial velocities in box units per frame.
        radius: [N] disc radii.
        num_frames: number of frames T to return (frame 0 is the initial state).
        gravity: downward acceleration in box units per frame squared.
        substeps: integration sub-steps per frame (bounces are resolved at this granularity).

    Returns:
        (positions, velocities), each [T, N, 2] float64.
    """
    pos = np.array(position, dtype=np.float64).reshape(-1, 2)
    vel = np.array(velocity, dtype=np.float64).reshape(-1, 2)
    r = np.asarray(radius, dtype=np.float64).reshape(-1, 1)
    lo, hi = r, 1.0 - r
    h = 1.0 / substeps
    acc = np.array([0.0, gravity])
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
                vy2 = np.maximum(vel[:, 1] ** 2 + 2 * gravity * (new[:, 1] - crossed[:, 1]), 0.0)
                vy = np.where(below[:, 1] | above[:, 1], np.sqrt(vy2), vel[:, 1])
                vel = np.stack([vel[:, 0], vy], axis=1)
                vel = np.where(below, np.abs(vel), np.where(above, -np.abs(vel), vel))
            pos = new
        positions[t], velocities[t] = pos, vel
    return positions, velocities


def make_scene(label: int, rng: np.random.Generator, num_frames: int) -> BouncingScene:
    """Draws a clip's scene; only the main object's direction depends on ``label``.

    Args:
        label: direction sector of the main object's initial velocity (0-7).
        rng: source of every other random choice.
        num_frames: clip length T.

    Returns:
        The scene with simulated trajectories.
    """
    n = 1 + int(rng.integers(2, 4))  # the main object and 2-3 distractors
    radii = np.concatenate([rng.uniform(*MAIN_RADIUS, 1), rng.uniform(*DISTRACTOR_RADIUS, n - 1)])
    position = rng.uniform(radii[:, None], 1 - radii[:, None], (n, 2))
    speed = rng.uniform(*SPEED_RANGE, n)
    angle = rng.uniform(0, 2 * math.pi, n)
    angle[0] = label * math.pi / 4 + rng.uniform(-1, 1) * SECTOR_FILL * math.pi / 8
    velocity = np.stack([speed * np.cos(angle), -speed * np.sin(angle)], axis=1)
    positions, velocities = simulate(position, velocity, radii, num_frames)
    # The main object is told apart by size (radius 0.08-0.10 vs 0.035-0.06) and brightness: every channel
    # 190-255 (a pale tint), distractors 80-170, bar 40-150, background 0-70.
    colours = np.concatenate([rng.uniform(190, 255, (1, 3)), rng.uniform(80, 170, (n - 1, 3))])
    # The bar is static within a clip but placed anew per clip, so it is an occluder to see through, not a
    # fixed mask; up to 0.18 wide, it hides a distractor entirely and sometimes the main disc too.
    bar = (float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8)), float(rng.uniform(0, math.pi)),
           float(rng.uniform(0.25, 0.45)), float(rng.uniform(0.03, 0.09)))
    c0 = rng.uniform(0, 70, 3)
    background = np.stack([c0, np.clip(c0 + rng.uniform(-35, 35, 3), 0, 255)])
    return BouncingScene(
        label=label, positions=positions, velocities=velocities, radii=radii, colours=colours,
        bar=bar, bar_colour=rng.uniform(40, 150, 3), background=background,
        gradient_angle=float(rng.uniform(0, 2 * math.pi)), noise_sigma=float(rng.uniform(2, 8)),
        noise_seed=int(rng.integers(0, 2**63)),
    )


def render_clip(scene: BouncingScene, resolution: int) -> np.ndarray:
    """Renders a scene as a uint8 clip [T, H, W, 3] with anti-aliased edges.

    Discs and the bar are coverage masks from distance fields with a one-pixel ramp, so sub-pixel
    motion changes the edge pixels. Draw order: background, distractors, main object, bar, noise.

    Args:
        scene: the scene to draw.
        resolution: side H = W of the frames in pixels.

    Returns:
        The clip as uint8 [T, H, W, 3].
    """
    num_frames = scene.positions.shape[0]
    grid = (np.arange(resolution, dtype=np.float32) + 0.5) / resolution  # pixel centres in box units
    xs, ys = grid[None, None, :], grid[None, :, None]
    # Coverage of every layer in draw order: distractors, then the main object in front, then the bar.
    # float() on scene scalars below: a numpy float64 scalar would turn these float32 arrays into float64.
    layers = []
    for k in [*range(1, len(scene.radii)), 0]:
        cx = scene.positions[:, k, 0].astype(np.float32)[:, None, None]
        cy = scene.positions[:, k, 1].astype(np.float32)[:, None, None]
        dist = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
        layers.append(np.clip((float(scene.radii[k]) - dist) * resolution + 0.5, 0, 1))
    bx, by, ba, half_length, half_width = scene.bar
    ux, uy = math.cos(ba), math.sin(ba)
    px, py = xs[0] - bx, ys[0] - by
    along = np.clip(px * ux + py * uy, -half_length, half_length)
    dist = np.sqrt((px - along * ux) ** 2 + (py - along * uy) ** 2)
    layers.append(np.broadcast_to(np.clip((half_width - dist) * resolution + 0.5, 0, 1), layers[0].shape))
    colours = np.concatenate([scene.colours[1:], scene.colours[:1], scene.bar_colour[None]]).astype(np.float32)
    # "Over" compositing in closed form: layer k shows with weight alpha_k times the transmittance of the
    # layers above it. Weights are one channel, so this costs a third of blending RGB layer by layer.
    weights = []
    transmittance = np.ones_like(layers[0])
    for layer in reversed(layers):
        weights.append(layer * transmittance)
        transmittance *= 1 - layer
    weights.reverse()
    theta = scene.gradient_angle
    ramp = np.clip(math.cos(theta) * (xs[0] - 0.5) + math.sin(theta) * (ys[0] - 0.5) + 0.5, 0, 1)
    c0, c1 = scene.background.astype(np.float32)
    background = c0 + (c1 - c0) * ramp[..., None]
    # Elementwise sums rather than a BLAS matmul: as fast single-threaded, bit-identical on every CPU, and
    # not slowed 4x by OpenBLAS threads fighting data-loader workers for cores.
    clip = np.empty((*transmittance.shape, 3), dtype=np.float32)
    for c in range(3):
        channel = transmittance * background[..., c]
        for weight, colour in zip(weights, colours[:, c]):
            channel += weight * colour
        clip[..., c] = channel
    # Grey sensor noise, fresh in every frame, so that a plain frame difference is not yet the answer.
    noise = np.random.default_rng(scene.noise_seed).standard_normal(
        (num_frames, resolution, resolution, 1), dtype=np.float32)
    clip += float(scene.noise_sigma) * noise + 0.5  # + 0.5: the uint8 cast below truncates, this rounds
    return np.clip(clip, 0, 255, out=clip).astype(np.uint8)


class BouncingDataset:
    """``builtin:bouncing``: ``length`` procedural clips labelled by the main object's initial direction.

    Args:
        split: ``train`` or ``val``; the two draw from disjoint random streams.
        length: nominal number of clips (any index gives a new clip).
        resolution: side of the generated frames in pixels.
        num_frames: frames per clip.
    """

    classes = DIRECTION_CLASSES

    def __init__(self, split: str = "train", length: int = 50_000, resolution: int = 64, num_frames: int = 16) -> None:
        if split not in _SPLIT_SALT:
            raise ValueError(f"builtin:bouncing has splits train and val, not {split!r}")
        self.split = split
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
        return mix_seed(_SPLIT_SALT[self.split], index, 7) % len(DIRECTION_CLASSES)

    def scene(self, index: int) -> BouncingScene:
        """The scene (trajectories, sizes, colours) behind clip ``index``.

        Args:
            index: clip index.
        """
        rng = np.random.default_rng(mix_seed(_SPLIT_SALT[self.split], index))
        return make_scene(self.label(index), rng, self.num_frames)

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
        return f"builtin:bouncing/{self.split}/{index}"
