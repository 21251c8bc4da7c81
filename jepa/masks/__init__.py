"""Mask samplers (I-JEPA 2-D multi-block, V-JEPA 3-D multi-block, tubes) and the collator that
runs them in data workers."""

from .collator import MaskCollator, mask_groups
from .groups import GroupMasker, MaskGroups
from .multiblock import MultiBlockConfig, MultiBlockMasker, block_shape
from .multiblock3d import BlockGroup, MultiBlock3DMasker, VideoMaskConfig
from .tube import TubeMaskConfig, TubeMasker

__all__ = ["BlockGroup", "GroupMasker", "MaskCollator", "MaskGroups", "MultiBlock3DMasker", "MultiBlockConfig",
           "MultiBlockMasker", "TubeMaskConfig", "TubeMasker", "VideoMaskConfig", "block_shape", "mask_groups"]
