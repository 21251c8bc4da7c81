"""Video loader throughput: clips per second through a DataLoader, per backend and worker count.

``python -m jepa.data.video.bench --backend decord pyav --workers 0 1 2`` prints one JSON line per
(backend, workers). Each clip is ``--frames`` frames 4 apart from a random place in one of the videos
(taken in turn), decoded, resized (short side) and centre-cropped to ``--size`` square. The clock starts
when the first clip arrives, so worker start-up is left out; files that fail to decode are counted as
skipped. With ``--backend decord``, files decord cannot read still come through PyAV (decord's default
path); ``pyav`` uses PyAV only.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ...errors import JEPAError
from .clips import ClipSampling, decode_clips
from .decode import VideoDecodeError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")
# The shared clips sit next to the repository: <repo>/../shared/data/videos.
DEFAULT_VIDEOS = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "videos"
BENCH_BACKENDS = {"decord": "auto", "pyav": "pyav"}


def resize_clip(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 [T, H, W, 3] frames so the short side is ``size``, centre-crop to a square.

    Args:
        frames: uint8 frames, channels last.
        size: side of the square output.

    Returns:
        uint8 [T, 3, size, size].
    """
    x = frames.permute(0, 3, 1, 2).float()
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top:top + size, left:left + size].round().clamp(0, 255).to(torch.uint8)


class _ClipDataset(Dataset):
    """Endless clips: item i is a random clip of video i mod len(paths), seeded by i."""

    def __init__(self, paths: list[str], backend: str, frames: int, size: int) -> None:
        self.paths, self.backend, self.size = paths, backend, size
        self.cfg = ClipSampling(frames_per_clip=frames, frame_step=4)

    def __len__(self) -> int:
        return 1 << 30

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        path = self.paths[i % len(self.paths)]
        try:
            clips, short = decode_clips(path, self.cfg, random.Random(i), backend=self.backend)
        except VideoDecodeError as err:
            warnings.warn(f"skipping video: {err}", stacklevel=1)
            return torch.zeros(0, dtype=torch.uint8), 1, 0
        return resize_clip(torch.from_numpy(clips[0]), self.size), 0, int(short)


def bench_decoding(paths: list[str], backend: str, workers: int, frames: int = 16, size: int = 224,
                   seconds: float = 20.0) -> dict[str, Any]:
    """Decode clips from ``paths`` through a DataLoader for about ``seconds`` and report the rate.

    Args:
        paths: video files, used in turn.
        backend: ``"decord"`` (decord, PyAV for files decord cannot read) or ``"pyav"``.
        workers: DataLoader worker processes (0: decode in this process).
        frames: frames per clip (4 apart).
        size: side of the square frames after resize and centre crop.
        seconds: how long to measure, after the first clip.

    Returns:
        {"backend", "workers", "clips", "seconds", "clips_per_s", "skipped", "short"}: clips decoded in
        the measured time, failed files among the items read, and clips from videos shorter than a clip.
    """
    if backend not in BENCH_BACKENDS:
        raise JEPAError(f"bench backend must be one of {', '.join(BENCH_BACKENDS)}, got {backend!r}")
    if not paths:
        raise JEPAError("bench_decoding: no video files given")
    loader = DataLoader(_ClipDataset(paths, BENCH_BACKENDS[backend], frames, size), batch_size=None,
                        num_workers=workers, persistent_workers=False)
    clips = skipped = short = 0
    start = None
    it = iter(loader)
    try:
        while True:
            clip, failed, was_short = next(it)
            now = time.perf_counter()
            if start is None:
                start = now  # worker start-up and first-file latency left out
                continue
            skipped += failed
            short += was_short
            clips += 1 - failed
            if now - start >= seconds:
                break
    finally:
        del it
    elapsed = time.perf_counter() - start
    return {"backend": backend, "workers": workers, "clips": clips, "seconds": round(elapsed, 2),
            "clips_per_s": round(clips / elapsed, 2), "skipped": skipped, "short": short}


def video_files(folder: Path) -> list[str]:
    """The video files directly in ``folder``, sorted.

    Args:
        folder: a folder of videos.
    """
    if not folder.is_dir():
        raise JEPAError(f"{folder}: no such folder of videos")
    files = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise JEPAError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    return files


def main(argv: list[str] | None = None) -> int:
    """Command line: one JSON line per (backend, workers).

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="python -m jepa.data.video.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", nargs="+", default=["decord", "pyav"], choices=list(BENCH_BACKENDS))
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    try:
        paths = video_files(args.videos)
        for backend in args.backend:
            for workers in args.workers:
                result = bench_decoding(paths, backend, workers, args.frames, args.size, args.seconds)
                print(json.dumps(result), flush=True)
    except JEPAError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
