"""Image transforms whose randomness comes from an explicit generator.

Training augmentations take a ``random.Random`` seeded from (seed, step, index), so an image's crop
and flip are the same in a resumed run and do not depend on the worker that loads it.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_normalized_tensor(img: Image.Image, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """PIL RGB image -> float tensor [3, H, W], normalised per channel."""
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    return x.sub_(m).div_(s)


def random_resized_crop_box(
    width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float], rng: random.Random
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a crop with area fraction in ``scale`` and aspect w/h in ``ratio``.

    Same algorithm as torchvision's RandomResizedCrop (10 tries, then a centre crop), but drawing
    from ``rng`` instead of the global generator.
    """
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class TrainTransform:
    """RandomResizedCrop (scale 0.3-1 by default, I-JEPA's) and horizontal flip, then normalisation.

    Args:
        image_size: output (height, width).
        scale: crop area range as a fraction of the image.
        ratio: crop aspect (width / height) range.
        hflip: flip half of the images left-right.
    """

    def __init__(
        self,
        image_size: tuple[int, int],
        scale: tuple[float, float] = (0.3, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: bool = True,
    ) -> None:
        self.image_size = image_size
        self.scale = scale
        self.ratio = ratio
        self.hflip = hflip

    def __call__(self, img: Image.Image, rng: random.Random) -> torch.Tensor:
        top, left, h, w = random_resized_crop_box(img.width, img.height, self.scale, self.ratio, rng)
        img = TF.resized_crop(img, top, left, h, w, list(self.image_size), antialias=True)
        if self.hflip and rng.random() < 0.5:
            img = TF.hflip(img)
        return to_normalized_tensor(img)


def eval_view(x: Image.Image | torch.Tensor, size: tuple[int, int], image_size: tuple[int, int]):
    """The evaluation view of an image (or of frames [T, C, H, W]) of ``size`` (height, width): the
    short side resized to ``image_size``'s (x 8/7 when larger, the usual 224/256 ratio), centre crop."""
    h, w = image_size
    short = min(h, w)
    side = int(round(short * 8 / 7)) if min(size) > short * 8 / 7 else short
    return TF.center_crop(TF.resize(x, side, antialias=True), [h, w])


class EvalTransform:
    """Deterministic evaluation view: resize the short side (x 8/7 for images larger than the target,
    the usual 224/256 ratio), centre crop to ``image_size``, normalise."""

    def __init__(self, image_size: tuple[int, int], mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
        self.image_size = image_size
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, img: Image.Image, index: int = 0) -> torch.Tensor:
        """The view of ``img`` (``index``, the sample's position, is for clips; images ignore it)."""
        if (img.height, img.width) != tuple(self.image_size):
            img = eval_view(img, (img.height, img.width), self.image_size)
        return to_normalized_tensor(img, self.mean, self.std)
