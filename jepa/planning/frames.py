"""The frames of episode shards as image shards, so that ``jepa pretrain`` trains the planning
agent's encoder on what the agent will see (every ``every``-th frame of every episode)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image

from ..data.shard_writer import ShardReport, write_image_shards
from .trajectories import read_episodes


def frames_to_image_shards(episodes: str, out_pattern: str, every: int = 1, max_episodes: int | None = None,
                           overwrite: bool = False) -> ShardReport:
    """Writes every ``every``-th frame of the episode shards ``episodes`` as unlabelled PNG image
    shards ``out_pattern`` (e.g. ``out/frames-%06d.tar``), shuffled, verified by reading back."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    with tempfile.TemporaryDirectory(prefix="jepa-frames-") as tmp:
        for ep in read_episodes(episodes, max_episodes):
            for t in range(0, len(ep.frames), every):
                Image.fromarray(ep.frames[t]).save(Path(tmp) / f"{ep.key}_{t:05d}.png")
        return write_image_shards(tmp, out_pattern, overwrite=overwrite)
