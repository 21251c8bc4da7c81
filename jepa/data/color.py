"""Photometric distortion of a batch of views: brightness, contrast, saturation jitter, grayscale,
Gaussian blur and solarization (the augmentations of SimCLR, BYOL and LeJEPA).

SimCLR's ablations show that crops alone let invariance objectives match views by their colour
histograms; jitter and grayscale take that shortcut away. The parameters of every view are drawn
from (seed, step, index, salt) like its crop, so a resumed run sees the same colours, and the
distortion itself is a few batched tensor operations, applied the same way on the streaming path
(one image) and the memory path (a batch on the device).
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

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
        blur: probability that a view is blurred by a Gaussian (after the colours).
        blur_sigma: range of the blur's standard deviation, in pixels of the view (BYOL: 0.1-2.0 at
            224 pixels; a 32-pixel view wants less).
        solarize: probability that a view is solarized: values above one half are inverted (last).
    """

    jitter: float = 0.0
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    grayscale: float = 0.0
    blur: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.jitter > 0 or self.grayscale > 0 or self.blur > 0 or self.solarize > 0


def color_params(cfg: ColorConfig, seed: int, step: int, indices: list[int], salt: int) -> torch.Tensor:
    """Per-sample (brightness, contrast, saturation, gray, blur sigma, solarize) [B, 6]; factors 1,
    gray 0, sigma 0 and solarize 0 leave a view as it is."""
    rows = []
    for index in indices:
        rng = random.Random(mix_seed(seed, step, index, salt))
        b = c = s = 1.0
        if rng.random() < cfg.jitter:
            b = rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
            c = rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)
            s = rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)
        gray = float(rng.random() < cfg.grayscale)
        # Drawn after the colours, so that the colours of a run without blur or solarize stay as they were.
        sigma = rng.uniform(*cfg.blur_sigma) if rng.random() < cfg.blur else 0.0
        solarize = float(rng.random() < cfg.solarize)
        rows.append((b, c, s, gray, sigma, solarize))
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
    """Applies ``params`` [B, 6] (from ``color_params``; [B, 4]: colours only) to ``x`` [B, 3, H, W]
    with values in [0, 1]."""
    p = params.to(x.device, x.dtype)
    b, c, s, gray = p[:, :4].view(-1, 4, 1, 1, 1).unbind(1)
    # Whether to blur or solarize, and how wide a kernel, are read from ``params`` where they were
    # drawn (the CPU): reading them from a GPU copy would make the host wait for the GPU every step.
    x = (x * b).clamp(0, 1)
    mean = _gray(x).mean(dim=(2, 3), keepdim=True)
    x = ((x - mean) * c + mean).clamp(0, 1)
    g = _gray(x)
    x = ((x - g) * s + g).clamp(0, 1)
    x = torch.where(gray > 0, _gray(x).expand_as(x), x)
    if params.shape[1] > 4 and bool((params[:, 4] > 0).any()):
        x = gaussian_blur(x, params[:, 4])
    if params.shape[1] > 4 and bool((params[:, 5] > 0).any()):
        x = torch.where(p[:, 5].view(-1, 1, 1, 1) > 0, torch.where(x >= 0.5, 1 - x, x), x)
    return x


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blurs each image of ``x`` [B, C, H, W] by a Gaussian of its own ``sigma`` [B] (pixels; 0: left
    as it is), separably, with reflected borders: one grouped convolution per direction for the
    whole batch. Each kernel reaches 3 sigma, within the image."""
    bsz, ch, h, w = x.shape
    radius = max(1, min(int(math.ceil(3 * float(sigma.max()))), (min(h, w) - 1) // 2))
    sigma = sigma.to(x.device)
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    s = sigma.to(x.dtype).clamp_min(1e-6)[:, None]
    # Each image's kernel stops at its own 3 sigma: the same blur whatever else is in the batch.
    kernel = torch.exp(-0.5 * (offsets / s) ** 2) * (offsets.abs() <= torch.ceil(3 * s)).to(x.dtype)
    kernel = torch.where(sigma[:, None] > 0, kernel, (offsets == 0).to(x.dtype))  # sigma 0: the identity
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(ch, 0)  # [B * C, K]
    y = F.pad(x.reshape(1, bsz * ch, h, w), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, kernel[:, None, None, :], groups=bsz * ch)
    y = F.conv2d(y, kernel[:, None, :, None], groups=bsz * ch)
    return y.reshape(bsz, ch, h, w)
