"""Which frames make a V-JEPA clip, and decoding just those frames of a video."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from ...errors import JEPAError
from .decode import Source, VideoDecodeError, decode_planned, source_name

SHORT_POLICIES = ("loop", "pad")


@dataclass(frozen=True)
class ClipSampling:
    """How clips are cut from a video.

    Attributes:
        frames_per_clip: frames in a clip.
        frame_step: distance between the frames of a clip, in source frames.
        fps: when set, the step is derived from each video's frame rate instead: round(video_fps / fps),
            at least 1 (``frame_step`` is used when a video does not state its rate).
        clips_per_video: clips cut from each video, each at its own random start.
        short: what a video shorter than a clip's span gives: ``"loop"`` plays it again from the start
            (random start within the loop), ``"pad"`` starts at frame 0 and repeats the last frame.
    """

    frames_per_clip: int = 16
    frame_step: int = 4
    fps: float | None = None
    clips_per_video: int = 1
    short: str = "loop"

    def __post_init__(self) -> None:
        for field in ("frames_per_clip", "frame_step", "clips_per_video"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise JEPAError(f"ClipSampling: {field} must be a whole number >= 1, got {value!r}")
        if self.fps is not None and (isinstance(self.fps, bool) or not isinstance(self.fps, int | float)
                                     or not self.fps > 0):
            raise JEPAError(f"ClipSampling: fps must be a number > 0 or None, got {self.fps!r}")
        if self.short not in SHORT_POLICIES:
            raise JEPAError(f"ClipSampling: short must be one of {', '.join(SHORT_POLICIES)}, got {self.short!r}")

    @property
    def span(self) -> int:
        """Source frames one clip spans at ``frame_step`` (what procedural video renders)."""
        return (self.frames_per_clip - 1) * self.frame_step + 1

    def step_for(self, video_fps: float) -> int:
        """The frame step for a video of ``video_fps`` frames per second.

        Args:
            video_fps: the video's average frame rate (0 or less when unknown).
        """
        if self.fps is None or not video_fps > 0:
            return self.frame_step
        return max(1, round(video_fps / self.fps))


def clip_indices(num_frames: int, video_fps: float, cfg: ClipSampling,
                 rng: random.Random) -> tuple[list[list[int]], bool]:
    """Frame indices of ``cfg.clips_per_video`` clips of a video, and whether it was short.

    A clip spans (frames_per_clip - 1) * step + 1 frames. Each clip starts uniformly at random among the
    starts that keep it inside the video. A shorter video is looped or padded as ``cfg.short`` says.
    The result depends only on the arguments and the state of ``rng``.

    Args:
        num_frames: frames in the video (at least 1).
        video_fps: its average frame rate, used when ``cfg.fps`` is set.
        cfg: the sampling settings.
        rng: the random generator; one draw per clip, none when padding.

    Returns:
        One list of ``frames_per_clip`` indices per clip, and True when the video was shorter than a clip.
    """
    if num_frames < 1:
        raise ValueError(f"clip_indices needs a video with frames, got num_frames={num_frames}")
    step = cfg.step_for(video_fps)
    offsets = [i * step for i in range(cfg.frames_per_clip)]
    span = offsets[-1] + 1
    if num_frames >= span:
        starts = [rng.randint(0, num_frames - span) for _ in range(cfg.clips_per_video)]
        return [[s + o for o in offsets] for s in starts], False
    if cfg.short == "pad":
        return [[min(o, num_frames - 1) for o in offsets] for _ in range(cfg.clips_per_video)], True
    starts = [rng.randrange(num_frames) for _ in range(cfg.clips_per_video)]
    return [[(s + o) % num_frames for o in offsets] for s in starts], True


def decode_clips(src: Source, cfg: ClipSampling, rng: random.Random, backend: str = "auto",
                 timeout: float | None = 30.0, *, name: str | None = None,
                 min_frames: int = 1) -> tuple[np.ndarray, bool]:
    """Cut ``cfg.clips_per_video`` random clips from a video, decoding each needed frame once.

    Args:
        src: a path, or the encoded bytes (a webdataset sample).
        cfg: the sampling settings.
        rng: the random generator for clip starts.
        backend: ``"auto"`` (decord, then PyAV on any failure), ``"decord"`` or ``"pyav"``.
        timeout: seconds allowed to each backend attempt; None: unbounded.
        name: what error messages call the video (default: the path, or the byte count).
        min_frames: fewest frames a usable video has (a video encoder's tubelet size): a shorter one
            is refused rather than looped.

    Returns:
        uint8 clips [clips_per_video, frames_per_clip, H, W, 3], upright, and True when the video was
        shorter than a clip (looped or padded).

    Raises:
        VideoDecodeError: no backend could decode it, it has no video stream, or no frame decodes.
    """
    state = rng.getstate()

    def pick(num_frames: int, fps: float) -> tuple[list[list[int]], bool, random.Random]:
        # A copy of the caller's generator, from the same state on every call (the PyAV retry, a re-plan
        # after a stream that ended early, an abandoned decoder thread that returns late), so the
        # frames decoded are the frames picked and a late thread never touches the caller's generator.
        local = random.Random()
        local.setstate(state)
        clips, short = clip_indices(num_frames, fps, cfg, local)
        return clips, short, local

    def plan(num_frames: int, fps: float) -> list[int]:
        return sorted({i for clip in pick(num_frames, fps)[0] for i in clip})

    decoded = decode_planned(src, plan, backend, timeout, name=name)
    if decoded.num_frames < min_frames:
        raise VideoDecodeError(f"{source_name(src, name)}: {decoded.num_frames} frame(s), fewer than one tubelet "
                               f"({min_frames} frames)")
    clips, short, local = pick(decoded.num_frames, decoded.fps)
    rng.setstate(local.getstate())
    try:
        out = np.stack([np.stack([decoded.frames[i] for i in clip]) for clip in clips])
    except KeyError as err:
        raise VideoDecodeError(f"{source_name(src, name)}: frame {err.args[0]} did not decode "
                               f"({decoded.backend}, {decoded.num_frames} frames)") from None
    return out, short
