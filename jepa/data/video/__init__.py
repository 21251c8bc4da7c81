"""Video decoding for V-JEPA: decord with a PyAV fallback, time-bounded, upright frames, clip sampling."""

from .clips import ClipSampling, clip_indices, decode_clips
from .decode import Decoded, VideoDecodeError, VideoInfo, decode_planned, probe_video, read_frames

__all__ = ["ClipSampling", "Decoded", "VideoDecodeError", "VideoInfo", "clip_indices", "decode_clips",
           "decode_planned", "probe_video", "read_frames"]
