"""Multi-view inputs: extra global and local crops of each image (LeJEPA, DINO).

The masked image is the first global view; ``global_views`` more crops are taken at the training
resolution and ``local_views`` small crops at ``local_size``. Every crop and flip is drawn from
(seed, step, index, view), like the masks, so a resumed run sees the same views.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from ..errors import JEPAError
from ..seeding import mix_seed
from .color import ColorConfig, color_params, distort_colors
from .device_crops import crop_boxes, resized_crops
from .transforms import IMAGENET_MEAN, IMAGENET_STD, TrainTransform


@dataclass
class ViewsConfig:
    """Extra crops of every training image; none by default.

    Args:
        global_views: global crops besides the masked image, at ``data.image_size``.
        local_views: local crops, at ``local_size``.
        global_scale: area range of the global crops.
        local_scale: area range of the local crops.
        local_size: side of the local crops in pixels (a multiple of the patch size).
        color: colour jitter, grayscale, blur and solarize of the extra views (off by default); the masked image
            keeps its colours.
    """

    global_views: int = 0
    local_views: int = 0
    global_scale: tuple[float, float] = (0.3, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.3)
    local_size: int = 16
    color: ColorConfig = field(default_factory=ColorConfig)

    @property
    def enabled(self) -> bool:
        return self.global_views + self.local_views > 0


class ViewMaker:
    """Makes the extra views of one image (PIL path) or of a batch of uint8 images (memory path)."""

    def __init__(self, cfg: ViewsConfig, image_size: tuple[int, int], patch_size: int, hflip: bool) -> None:
        if cfg.global_views < 0 or cfg.local_views < 0:
            raise JEPAError("data.views.global_views and local_views must be 0 or more")
        if cfg.local_views and (cfg.local_size > min(image_size) or cfg.local_size < patch_size):
            raise JEPAError(f"data.views.local_size {cfg.local_size} must be between the patch size {patch_size} and "
                            f"the image size {min(image_size)}")
        if cfg.local_views and cfg.local_size % patch_size:
            raise JEPAError(f"data.views.local_size {cfg.local_size} is not a multiple of the patch size {patch_size}")
        c = cfg.color
        lo, hi = c.blur_sigma
        if not 0 < lo <= hi:
            raise JEPAError(f"data.views.color.blur_sigma must satisfy 0 < low <= high (pixels), got {c.blur_sigma}")
        for name in ("jitter", "grayscale", "blur", "solarize"):
            if not 0 <= getattr(c, name) <= 1:
                raise JEPAError(f"data.views.color.{name} is a probability, got {getattr(c, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(c, name) <= 1:
                raise JEPAError(f"data.views.color.{name} must be between 0 and 1, got {getattr(c, name)}")
        for name in ("global_scale", "local_scale"):
            lo, hi = getattr(cfg, name)
            if not 0 < lo <= hi <= 1:
                raise JEPAError(f"data.views.{name} must satisfy 0 < low <= high <= 1, got {getattr(cfg, name)}")
        self.cfg, self.image_size, self.hflip = cfg, image_size, hflip
        local = (cfg.local_size, cfg.local_size)
        # (kind, output size, scale) of each view, globals first; a view's salt is 2 + its position.
        self.plan = [("global", image_size, tuple(cfg.global_scale))] * cfg.global_views + [
            ("local", local, tuple(cfg.local_scale))] * cfg.local_views

    def pil(self, img: Image.Image, seed: int, step: int, index: int) -> dict[str, list[torch.Tensor]]:
        """Views of one image: {"global": [tensor, ...], "local": [...]}; the collator stacks them."""
        out: dict[str, list[torch.Tensor]] = {"global": [], "local": []}
        mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
        for v, (kind, size, scale) in enumerate(self.plan):
            rng = random.Random(mix_seed(seed, step, index, 2 + v))
            x = TrainTransform(size, scale=scale, hflip=self.hflip)(img, rng)
            colors = self._colors(seed, step, [index], v)
            if colors is not None:
                x = (distort_colors((x * std + mean).unsqueeze(0), colors)[0] - mean) / std
            out[kind].append(x)
        return out

    def _colors(self, seed: int, step: int, indices: list[int], v: int) -> torch.Tensor | None:
        # Salt 100 + view: independent of the view's crop (salt 2 + view) and of the masks.
        return color_params(self.cfg.color, seed, step, indices, 100 + v) if self.cfg.color.enabled else None

    def boxes(self, h: int, w: int, seed: int, step: int, indices: list[int]) -> list[tuple[Any, ...]]:
        """The crop boxes, flips and colours of every view of a batch of ``h`` x ``w`` images (CPU)."""
        return [(*crop_boxes(h, w, seed, step, indices, scale, (3 / 4, 4 / 3), self.hflip, salt=2 + v),
                 self._colors(seed, step, indices, v))
                for v, (_, _, scale) in enumerate(self.plan)]

    def apply(self, images: torch.Tensor, boxes: list[tuple[Any, ...]]) -> dict[str, list[torch.Tensor]]:
        """Views of uint8 ``images`` [B, 3, H, W] from ``boxes``, made on the images' device."""
        out: dict[str, list[torch.Tensor]] = {"global": [], "local": []}
        for (kind, size, _), (b, flips, colors) in zip(self.plan, boxes):
            out[kind].append(resized_crops(images, b, flips, size, colors=colors))
        return out
