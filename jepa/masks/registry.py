"""Video mask families by name: what ``data.video_masking`` chooses, and the setting that configures it.

A new family is a masker (``GroupMasker``) with a settings dataclass, added here: the data module
builds maskers through this table only, and refuses the settings of a family the run does not use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .causal import CausalMaskConfig, CausalMasker
from .groups import GroupMasker
from .multiblock3d import MultiBlock3DMasker, VideoMaskConfig
from .tube import TubeMaskConfig, TubeMasker


@dataclass(frozen=True)
class VideoMasking:
    """One mask family: its settings' type, the ``data.*`` key that holds them, and its masker."""

    settings: type
    key: str
    build: Callable[[tuple[int, int, int], Any, int], GroupMasker]
    summary: str


VIDEO_MASKINGS: dict[str, VideoMasking] = {
    "multiblock": VideoMasking(VideoMaskConfig, "video_masks", MultiBlock3DMasker,
                               "V-JEPA's 3-D multi-block masks: hidden blocks through all frames"),
    "tube": VideoMasking(TubeMaskConfig, "tube_masks", TubeMasker,
                         "VideoMAE's tubes: random spatial positions hidden through all frames"),
    "causal": VideoMasking(CausalMaskConfig, "causal_masks", CausalMasker,
                           "the first frames are context, every token of the later frames a target"),
}


def video_masker(name: str, grid: tuple[int, int, int], settings: Any, seed: int) -> GroupMasker:
    """The masker of family ``name`` on ``grid`` (settings None: the family's defaults)."""
    family = VIDEO_MASKINGS[name]
    return family.build(grid, settings if settings is not None else family.settings(), seed)
