"""Clip transforms: decode the frames a clip needs, then one random-resized crop and flip shared
by every frame (V-JEPA), normalised to a float clip [3, T, H, W].

Randomness comes from an explicit ``random.Random`` seeded from (seed, step, index), as for images,
so the clip's start, crop and flip are the same in a resumed run and in any worker.
"""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import torch
import torchvision.transforms.functional as TF

from ..seeding import mix_seed
from .transforms import IMAGENET_MEAN, IMAGENET_STD, eval_view, random_resized_crop_box
from .video.clips import ClipSampling, clip_indices, decode_clips
from .video.sources import VideoRef

# What a clip transform takes: a reference to an encoded video, or frames already made [T, H, W, 3].
ClipInput = VideoRef | np.ndarray


def normalize_clip(frames: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 or float frames [T, 3, H, W] with values in [0, 255] -> normalised float clip [3, T, H, W]."""
    x = frames.float().div_(255.0)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return x.sub_(m).div_(s).permute(1, 0, 2, 3).contiguous()


class ClipFrames:
    """Picks the frames of one clip from a ``ClipInput``: decodes a ``VideoRef`` (only the frames
    used; decord, then PyAV), or samples frames already made with the same rule.

    Args:
        sampling: frames per clip, frame step or fps, what short videos do.
        backend: ``auto`` (decord, PyAV fallback), ``decord`` or ``pyav``.
        timeout: seconds a video may take to decode before it is skipped.
        min_frames: fewest frames a usable video has (the tubelet size): shorter ones are skipped.
    """

    def __init__(self, sampling: ClipSampling, backend: str = "auto", timeout: float = 30.0,
                 min_frames: int = 1) -> None:
        self.sampling = replace(sampling, clips_per_video=1)
        self.backend = backend
        self.timeout = timeout
        self.min_frames = min_frames

    def __call__(self, item: ClipInput, rng: random.Random) -> tuple[np.ndarray, bool]:
        """(frames [T, H, W, 3] uint8, whether the video was shorter than the clip)."""
        if isinstance(item, VideoRef):
            clips, short = decode_clips(item.src, self.sampling, rng, self.backend, self.timeout, name=item.name,
                                        min_frames=self.min_frames)
            return clips[0], short
        frames = np.asarray(item)
        (indices,), short = clip_indices(len(frames), 0.0, self.sampling, rng)
        return frames[indices], short


class ClipTrainTransform:
    """Random-resized crop (same box for every frame) and horizontal flip of a clip.

    Args:
        image_size: output (height, width).
        frames: how the clip's frames are picked and decoded.
        scale: crop area range as a fraction of the frame (V-JEPA: 0.3-1.0).
        ratio: crop aspect (width / height) range.
        hflip: flip half of the clips left-right.
    """

    def __init__(self, image_size: tuple[int, int], frames: ClipFrames, scale: tuple[float, float] = (0.3, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), hflip: bool = True) -> None:
        self.image_size = tuple(image_size)
        self.frames = frames
        self.scale = scale
        self.ratio = ratio
        self.hflip = hflip
        self.last_short = False

    def __call__(self, item: ClipInput, rng: random.Random) -> torch.Tensor:
        frames, self.last_short = self.frames(item, rng)
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # [T, 3, H, W]
        top, left, h, w = random_resized_crop_box(x.shape[-1], x.shape[-2], self.scale, self.ratio, rng)
        x = TF.resized_crop(x.float(), top, left, h, w, list(self.image_size), antialias=True)
        if self.hflip and rng.random() < 0.5:
            x = x.flip(-1)
        return normalize_clip(x)


class ClipEvalTransform:
    """Deterministic evaluation clip: a start fixed by the sample's index, short side resized
    (x 8/7 when larger than the target, as for images), centre crop, normalised.

    Args:
        image_size: output (height, width).
        frames: how the clip's frames are picked and decoded.
    """

    def __init__(self, image_size: tuple[int, int], frames: ClipFrames, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
        self.image_size = tuple(image_size)
        self.frames = frames
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, item: ClipInput, index: int = 0) -> torch.Tensor:
        frames, _ = self.frames(item, random.Random(mix_seed(0xE7A1, index)))
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        if tuple(x.shape[-2:]) != self.image_size:
            x = eval_view(x, tuple(x.shape[-2:]), self.image_size)
        return normalize_clip(x, self.mean, self.std)
