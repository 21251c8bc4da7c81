"""Mask samplers and the collator that runs them in data workers."""

from .collator import MaskCollator
from .multiblock import MultiBlockConfig, MultiBlockMasker, block_shape, mix_seed

__all__ = ["MaskCollator", "MultiBlockConfig", "MultiBlockMasker", "block_shape", "mix_seed"]
