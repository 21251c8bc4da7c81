"""Mask samplers (I-JEPA 2-D multi-block, V-JEPA 3-D multi-block, tubes, causal) and the collator that
runs them in data workers."""

from .causal import CausalMaskConfig, CausalMasker
from .collator import MaskCollator, mask_groups
from .groups import GroupMasker, MaskGroups
from .multiblock import MultiBlockConfig, MultiBlockMasker, block_shape
from .multiblock3d import BlockGroup, MultiBlock3DMasker, VideoMaskConfig
from .registry import VIDEO_MASKINGS, VideoMasking, video_masker
from .tube import TubeMaskConfig, TubeMasker

__all__ = ["VIDEO_MASKINGS", "BlockGroup", "CausalMaskConfig", "CausalMasker", "GroupMasker", "MaskCollator", "MaskGroups", "MultiBlock3DMasker", "MultiBlockConfig",
           "MultiBlockMasker", "TubeMaskConfig", "TubeMasker", "VideoMaskConfig", "VideoMasking", "block_shape", "mask_groups",
           "video_masker"]
