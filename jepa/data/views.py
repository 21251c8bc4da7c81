"""Multi-view inputs: extra global and local crops of each image (LeJEPA, DINO).

The masked image is the first global view; ``global_views`` more crops are taken at the training
resolution and ``local_views`` small crops at ``local_size``. Every crop and flip is drawn from
(seed, step, index, view), like the masks, so a resumed run sees the same views.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from PIL import Image

from ..errors import JEPAError
from ..masks.multiblock import mix_seed
from .device_crops import crop_boxes, resized_crops
from .transforms import TrainTransform


@dataclass
class ViewsConfig:
    """Extra crops of every training image; none by default.

    Args:
        global_views: global crops besides the masked image, at ``data.image_size``.
        local_views: local crops, at ``local_size``.
        global_scale: area range of the global crops.
        local_scale: area range of the local crops.
        local_size: side of the local crops in pixels (a multiple of the patch size).
    """

    global_views: int = 0
    local_views: int = 0
    global_scale: tuple[float, float] = (0.3, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.3)
    local_size: int = 16

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
        for v, (kind, size, scale) in enumerate(self.plan):
            rng = random.Random(mix_seed(seed, step, index, 2 + v))
            out[kind].append(TrainTransform(size, scale=scale, hflip=self.hflip)(img, rng))
        return out

    def boxes(self, h: int, w: int, seed: int, step: int, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The crop boxes and flips of every view of a batch of ``h`` x ``w`` images (CPU)."""
        return [crop_boxes(h, w, seed, step, indices, scale, (3 / 4, 4 / 3), self.hflip, salt=2 + v)
                for v, (_, _, scale) in enumerate(self.plan)]

    def apply(self, images: torch.Tensor, boxes: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, list[torch.Tensor]]:
        """Views of uint8 ``images`` [B, 3, H, W] from ``boxes``, made on the images' device."""
        out: dict[str, list[torch.Tensor]] = {"global": [], "local": []}
        for (kind, size, _), (b, flips) in zip(self.plan, boxes):
            out[kind].append(resized_crops(images, b, flips, size))
        return out
