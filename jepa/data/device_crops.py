"""Random resized crops and flips of a whole batch of uint8 images, on the images' device.

The crop boxes are drawn per (seed, step, index) with the same algorithm and seeds as the PIL
transforms (``jepa.data.transforms``), so the memory path and the streaming path draw the same
crops; the resampling is one batched ``grid_sample`` instead of one PIL resize per image.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from ..seeding import mix_seed
from .color import device_constant, distort_colors
from .transforms import IMAGENET_MEAN, IMAGENET_STD, random_resized_crop_box


def crop_boxes(n_h: int, n_w: int, seed: int, step: int, indices: list[int], scale: tuple[float, float],
               ratio: tuple[float, float], hflip: bool, salt: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (top, left, h, w) crops and flips drawn from (seed, step, index) as the streaming
    path draws them: boxes [B, 4] float, flips [B] bool."""
    boxes, flips = [], []
    for index in indices:
        rng = random.Random(mix_seed(seed, step, index, salt))
        boxes.append(random_resized_crop_box(n_w, n_h, scale, ratio, rng))
        flips.append(hflip and rng.random() < 0.5)
    return torch.tensor(boxes, dtype=torch.float32), torch.tensor(flips)


def resized_crops(images: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor, out: tuple[int, int],
                  mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                  colors: torch.Tensor | None = None) -> torch.Tensor:
    """Crops ``boxes`` (top, left, h, w) of uint8 ``images`` [B, 3, H, W], flips, resizes to ``out``
    (bilinear), distorts the colours by ``colors`` (``jepa.data.color``) and normalises, all batched
    on the images' device."""
    b, _, h, w = images.shape
    boxes = boxes.to(images.device)
    top, left, bh, bw = boxes.unbind(1)
    # affine_grid maps output coordinates in [-1, 1] to input coordinates in [-1, 1].
    sx, sy = bw / w, bh / h
    cx = (left + bw / 2) / w * 2 - 1
    cy = (top + bh / 2) / h * 2 - 1
    sign = torch.where(flips.to(images.device), -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=images.device)
    theta[:, 0, 0] = sx * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = sy
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [b, 3, *out], align_corners=False)
    x = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    if colors is not None:
        x = distort_colors(x / 255, colors) * 255
    m = device_constant(tuple(v * 255 for v in mean), x.device, x.dtype)
    s = device_constant(tuple(v * 255 for v in std), x.device, x.dtype)
    return (x - m) / s
