"""Pairs of clips for the surprise probe: ``builtin:voe`` twins, or twins cut from real footage.

A PAIRS spec is ``builtin:voe`` (``jepa.data.voe``) or ``KIND:DATA`` with KIND one of

- ``jumpcut``: frames cut out at the cut point (the footage jumps ahead),
- ``freeze``: the frame before the cut point held (the world stops),
- ``reverse``: the footage played backwards from the cut point,

and DATA any video folder, list or shards. Each clip (sampled every ``frame_step`` frames, resized
and centre-cropped to the encoder's input) gives several pairs, one per cut point: the original
stretch of ``length`` frames against the same stretch with the cut. Clips too short for one pair
are skipped and counted; clips that cannot be decoded too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import JEPAError
from .shards import SkipLog, decode_image, raw_samples
from .spec import open_data
from .transforms import eval_view
from .video.decode import VideoDecodeError, decode_planned
from .video.sources import VideoRef
from .voe import Twin, VoETwins

CUTS = ("jumpcut", "freeze", "reverse")


@dataclass(frozen=True)
class CutSettings:
    """How pairs are cut from a clip (counts in sampled frames).

    Attributes:
        length: frames of each clip of a pair.
        cut: the first frame that differs (the cut point, from the pair's start).
        skip: frames a jump cut leaves out.
        every: frames between two pairs' starts in one clip.
        frame_step: source frames between sampled frames.
    """

    length: int
    cut: int
    skip: int = 8
    every: int = 4
    frame_step: int = 4

    def span(self, kind: str) -> int:
        """Sampled frames a pair of ``kind`` reads from its clip."""
        return self.length + (self.skip if kind == "jumpcut" else 0)


def cut_twin(frames: np.ndarray, start: int, kind: str, settings: CutSettings) -> tuple[np.ndarray, np.ndarray]:
    """(original, cut) stretches of ``settings.length`` frames from ``start``; identical before the cut."""
    n, c = settings.length, settings.cut
    original = frames[start:start + n]
    if kind == "jumpcut":
        after = frames[start + c + settings.skip:start + n + settings.skip]
    elif kind == "freeze":
        after = np.repeat(frames[start + c - 1:start + c], n - c, axis=0)
    else:  # reverse: from the cut on, the frames before it backwards (the last one is not shown twice)
        after = frames[start + c - 2 - np.arange(n - c)]
    return original, np.concatenate([original[:c], after])


@dataclass
class CutPairs:
    """Pairs of ``kind`` cut from every clip of a video DATA spec, as uint8 clips of ``image_size``.

    The clips are decoded once, when the source is opened (real footage for an evaluation is small).
    """

    kind: str
    spec: str
    settings: CutSettings
    image_size: tuple[int, int]
    max_pairs: int | None = None
    skipped: list[str] = field(default_factory=list)
    pairs: list[tuple[str, int, np.ndarray]] = field(default_factory=list)  # (clip, start, frames)

    def __post_init__(self) -> None:
        if self.kind == "reverse" and 2 * self.settings.cut < self.settings.length + 1:
            raise JEPAError(f"reverse pairs need the cut ({self.settings.cut}) past half the pair "
                            f"({self.settings.length} frames)")
        span = self.settings.span(self.kind)
        for name, frames in self._clips():
            starts = list(range(0, len(frames) - span + 1, self.settings.every))
            if not starts:
                self.skipped.append(f"{name}: {len(frames)} frames at step {self.settings.frame_step}, "
                                    f"fewer than the {span} a pair needs")
            self.pairs += [(name, s, frames) for s in starts]
            if self.max_pairs is not None and len(self.pairs) >= self.max_pairs:
                self.pairs = self.pairs[: self.max_pairs]
                break
        if not self.pairs:
            raise JEPAError(f"{self.kind}:{self.spec} gives no pairs: every clip is too short or unreadable "
                            f"({len(self.skipped)} skipped; pairs need {span} frames at step {self.settings.frame_step})")

    def _refs(self) -> Iterator[VideoRef]:
        data = open_data(self.spec, "val")
        if data.modality != "video":
            raise JEPAError(f"{self.kind}:{self.spec} holds images: cut pairs are made of videos")
        if data.is_stream:
            for url in data.urls:
                for sample in raw_samples(url, SkipLog()):
                    ref, _ = decode_image(sample)
                    yield ref
        else:
            for i in range(len(data.source)):
                yield data.source.load(i)[0]

    def _clips(self) -> Iterator[tuple[str, np.ndarray]]:
        step = self.settings.frame_step
        for ref in self._refs():
            try:
                decoded = decode_planned(ref.src, lambda n, fps: list(range(0, n, step)), name=ref.name)
            except VideoDecodeError as exn:
                self.skipped.append(str(exn))
                continue
            frames = [decoded.frames[i] for i in sorted(decoded.frames)]
            x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
            view = eval_view(x, tuple(x.shape[-2:]), self.image_size)
            yield ref.name, view.permute(0, 2, 3, 1).contiguous().numpy()

    def __len__(self) -> int:
        return len(self.pairs)

    def pair(self, index: int) -> Twin:
        name, start, frames = self.pairs[index]
        original, cut = cut_twin(frames, start, self.kind, self.settings)
        return Twin(f"{self.kind}:{name}@{start * self.settings.frame_step}", self.kind, self.kind,
                    self.settings.cut, original, cut)


def open_pairs(spec: str, image_size: tuple[int, int], num_frames: int, split: str = "val",
               pairs_per_event: int = 200, cut: CutSettings | None = None,
               max_pairs: int | None = None) -> VoETwins | CutPairs:
    """Resolves a PAIRS spec (``builtin:voe`` or ``KIND:DATA``); bad specs end in one line.

    Args:
        spec: the PAIRS spec.
        image_size: the encoder's input (height, width).
        num_frames: frames of each clip of a ``builtin:voe`` pair.
        split: which ``builtin:voe`` twins (``val`` to score, ``train`` to choose settings on).
        pairs_per_event: ``builtin:voe`` pairs of each event.
        cut: how cut pairs are made (needed for ``KIND:DATA``).
        max_pairs: at most this many cut pairs.
    """
    if spec == "builtin:voe":
        if image_size[0] != image_size[1]:
            raise JEPAError(f"builtin:voe draws square frames; the encoder takes {image_size[1]}x{image_size[0]}")
        try:
            return VoETwins(split, pairs_per_event, resolution=image_size[0], num_frames=num_frames)
        except ValueError as exn:
            raise JEPAError(f"--pairs builtin:voe: {exn}") from None
    kind, sep, data = spec.partition(":")
    if not sep or kind not in CUTS or not data:
        raise JEPAError(f"--pairs {spec!r}: expected builtin:voe or one of {', '.join(k + ':DATA' for k in CUTS)}")
    if cut is None:
        raise JEPAError(f"--pairs {spec}: cut pairs need their settings")
    return CutPairs(kind, data, cut, tuple(image_size), max_pairs=max_pairs)
