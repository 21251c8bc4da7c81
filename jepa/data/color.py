"""Colour distortion of a batch of views: brightness, contrast, saturation jitter and grayscale.

SimCLR's ablations show that crops alone let invariance objectives match views by their colour
histograms; jitter and grayscale take that shortcut away. The parameters of every view are drawn
from (seed, step, index, salt) like its crop, so a resumed run sees the same colours, and the
distortion itself is a few batched tensor operations, applied the same way on the streaming path
(one image) and the memory path (a batch on the device).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import torch

from ..seeding import mix_seed

# ITU-R 601 luma, as torchvision's rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)


@dataclass
class ColorConfig:
    """Args:
        jitter: probability that a view's colours are jittered.
        brightness: brightness factor drawn from [1 - b, 1 + b].
        contrast: contrast factor drawn from [1 - c, 1 + c].
        saturation: saturation factor drawn from [1 - s, 1 + s].
        grayscale: probability that a view is turned to gray (after the jitter).
    """

    jitter: float = 0.0
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    grayscale: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.jitter > 0 or self.grayscale > 0


def color_params(cfg: ColorConfig, seed: int, step: int, indices: list[int], salt: int) -> torch.Tensor:
    """Per-sample (brightness, contrast, saturation, gray) [B, 4]; factors 1 and gray 0 leave a view as it is."""
    rows = []
    for index in indices:
        rng = random.Random(mix_seed(seed, step, index, salt))
        b = c = s = 1.0
        if rng.random() < cfg.jitter:
            b = rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
            c = rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)
            s = rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)
        gray = float(rng.random() < cfg.grayscale)
        rows.append((b, c, s, gray))
    return torch.tensor(rows, dtype=torch.float32)


@functools.lru_cache(maxsize=32)
def device_constant(values: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``values`` as a [1, C, 1, 1] tensor on ``device``, made once: a tensor built from Python
    numbers on a GPU is a host-to-device copy that makes the host wait for the GPU, every step."""
    return torch.tensor(values, dtype=dtype).view(1, -1, 1, 1).to(device)


def _gray(x: torch.Tensor) -> torch.Tensor:
    luma = device_constant(_LUMA, x.device, x.dtype)
    return (x * luma).sum(1, keepdim=True)


def distort_colors(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Applies ``params`` [B, 4] (from ``color_params``) to ``x`` [B, 3, H, W] with values in [0, 1]."""
    p = params.to(x.device, x.dtype).view(-1, 4, 1, 1, 1)
    b, c, s, gray = p.unbind(1)
    x = (x * b).clamp(0, 1)
    mean = _gray(x).mean(dim=(2, 3), keepdim=True)
    x = ((x - mean) * c + mean).clamp(0, 1)
    g = _gray(x)
    x = ((x - g) * s + g).clamp(0, 1)
    return torch.where(gray > 0, _gray(x).expand_as(x), x)
