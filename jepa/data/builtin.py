"""Procedural labelled images generated in code: the package's embedded default data.

``builtin:shapes`` draws one of ten shape classes at a random position, size, rotation and colour
on a random background. Every image is a pure function of (split, index), so the dataset needs no
files and is identical everywhere. A linear probe on random-weight features is far from perfect on
it (about 20% for 10 classes), while a few CPU minutes of I-JEPA pretraining raise it clearly; the
first, harder version (random-hue shapes on random-hue backgrounds) stayed at chance after 1,500
steps, since what pretraining learns first is light/dark structure, not hue.
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw

from ..seeding import mix_seed

SHAPE_CLASSES = (
    "circle", "square", "triangle", "star", "cross", "ring", "crescent", "arrow", "ell", "semicircle",
)
_SPLIT_SALT = {"train": 0x5EED_0001, "val": 0x5EED_0002}
_SUPERSAMPLE = 4


def _polygon(points: list[tuple[float, float]], cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in points]


def _regular(n: int, phase: float = -math.pi / 2) -> list[tuple[float, float]]:
    return [(math.cos(phase + 2 * math.pi * k / n), math.sin(phase + 2 * math.pi * k / n)) for k in range(n)]


_STAR = [
    (math.cos(-math.pi / 2 + math.pi * k / 5) * (1.0 if k % 2 == 0 else 0.42),
     math.sin(-math.pi / 2 + math.pi * k / 5) * (1.0 if k % 2 == 0 else 0.42))
    for k in range(10)
]
_CROSS = [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1), (-0.3, 1),
          (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)]
_ARROW = [(-1, -0.25), (0.2, -0.25), (0.2, -0.7), (1, 0), (0.2, 0.7), (0.2, 0.25), (-1, 0.25)]
_ELL = [(-0.8, -1), (-0.2, -1), (-0.2, 0.4), (0.8, 0.4), (0.8, 1), (-0.8, 1)]
_SQUARE = [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]


def _draw_shape(draw: ImageDraw.ImageDraw, label: int, cx: float, cy: float, r: float, angle: float) -> None:
    """Draws class ``label`` in white on an 'L' mask."""
    name = SHAPE_CLASSES[label]
    box = (cx - r, cy - r, cx + r, cy + r)
    if name == "circle":
        draw.ellipse(box, fill=255)
    elif name == "ring":
        draw.ellipse(box, fill=255)
        inner = 0.55 * r
        draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=0)
    elif name == "crescent":
        draw.ellipse(box, fill=255)
        dx, dy = 0.55 * r * math.cos(angle), 0.55 * r * math.sin(angle)
        draw.ellipse((cx - r + dx, cy - r + dy, cx + r + dx, cy + r + dy), fill=0)
    elif name == "semicircle":
        start = math.degrees(angle)
        draw.pieslice(box, start, start + 180, fill=255)
    else:
        shape = {"square": _SQUARE, "triangle": _regular(3), "star": _STAR, "cross": _CROSS,
                 "arrow": _ARROW, "ell": _ELL}[name]
        draw.polygon(_polygon(shape, cx, cy, r, angle), fill=255)


def _dark(rng: random.Random) -> np.ndarray:
    return np.array([rng.uniform(0, 90) for _ in range(3)], dtype=np.float32)


def _bright(rng: random.Random) -> np.ndarray:
    return np.array([rng.uniform(150, 255) for _ in range(3)], dtype=np.float32)


def render_shape(label: int, size: int, rng: random.Random) -> Image.Image:
    """One RGB image of a shape of class ``label``, every nuisance drawn from ``rng``.

    A bright shape of random hue, size (radius 25-40% of the image), position and rotation on a
    dark background of random hue with a gentle gradient and pixel noise.
    """
    big = size * _SUPERSAMPLE
    c0 = _dark(rng)
    c1 = np.clip(c0 + np.array([rng.uniform(-40, 40) for _ in range(3)], dtype=np.float32), 0, 255)
    theta = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    t = np.clip((np.cos(theta) * (xs - 0.5) + np.sin(theta) * (ys - 0.5)) + 0.5, 0, 1)[..., None]
    image = c0 * (1 - t) + c1 * t
    image += np.random.default_rng(rng.getrandbits(63)).normal(0, rng.uniform(2, 10), size=image.shape)
    mask = Image.new("L", (big, big), 0)
    r = rng.uniform(0.25, 0.4) * big
    cx, cy = rng.uniform(r, big - r), rng.uniform(r, big - r)
    _draw_shape(ImageDraw.Draw(mask), label, cx, cy, r, rng.uniform(0, 2 * math.pi))
    alpha = np.asarray(mask.resize((size, size), Image.Resampling.BOX), dtype=np.float32)[..., None] / 255.0
    image = image * (1 - alpha) + _bright(rng) * alpha
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")


class ShapesDataset:
    """``builtin:shapes``: ``length`` procedural images of ``len(SHAPE_CLASSES)`` classes.

    Args:
        split: ``train`` or ``val``; the two draw from disjoint random streams.
        length: nominal number of images (any index gives a new image).
        resolution: side of the generated images in pixels.
    """

    classes = SHAPE_CLASSES

    def __init__(self, split: str = "train", length: int = 50_000, resolution: int = 64) -> None:
        if split not in _SPLIT_SALT:
            raise ValueError(f"builtin:shapes has splits train and val, not {split!r}")
        self.split = split
        self.length = length
        self.resolution = resolution

    def __len__(self) -> int:
        return self.length

    def label(self, index: int) -> int:
        return mix_seed(_SPLIT_SALT[self.split], index, 7) % len(SHAPE_CLASSES)

    def load(self, index: int) -> tuple[Image.Image, int]:
        label = self.label(index)
        rng = random.Random(mix_seed(_SPLIT_SALT[self.split], index))
        return render_shape(label, self.resolution, rng), label

    def describe(self, index: int) -> str:
        return f"builtin:shapes/{self.split}/{index}"
