"""Tube masks (VideoMAE style): random spatial positions hidden through every frame.

A fixed number round(ratio * H' * W') of spatial positions is masked in all T' frames, so a batch
has static token counts without any trimming. Draws are a pure function of (seed, step, index).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..seeding import mix_seed
from .groups import MaskGroups
from .multiblock3d import check_video_grid

# Keeps tube draws apart from the data pipeline's streams that share the run seed.
_STREAM = 0x70BE


@dataclass
class TubeMaskConfig:
    """Tube mask settings.

    Args:
        ratio: fraction of spatial positions masked (through all frames); VideoMAE uses 0.9.
    """

    ratio: float = 0.9

    def __post_init__(self) -> None:
        if not 0 < self.ratio < 1:
            raise ValueError(f"masks.ratio must be strictly between 0 and 1, got {self.ratio}")


class TubeMasker:
    """Draws tube masks on a (T', H', W') token grid; indices are flattened (t, h, w) row-major.

    Args:
        grid: (frames after tubelets, rows, columns) of tokens.
        cfg: masking ratio.
        seed: run seed; masks depend on it, the step and the sample index only.
    """

    num_groups = 1

    def __init__(self, grid: tuple[int, int, int], cfg: TubeMaskConfig | None = None, seed: int = 0) -> None:
        self.grid = check_video_grid(grid)
        self.cfg = cfg or TubeMaskConfig()
        self.seed = int(seed)
        positions = self.grid[1] * self.grid[2]
        self.num_masked = round(self.cfg.ratio * positions)
        if not 1 <= self.num_masked < positions:
            raise ValueError(f"masks.ratio={self.cfg.ratio} masks {self.num_masked} of the {positions} spatial "
                             f"positions of grid {self.grid}; it must leave some masked and some visible")

    def sample(self, step: int, index: int, group: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks of one sample, as sorted flat (t, h, w) token indices.

        Args:
            step: global step of the batch.
            index: dataset index of the sample.
            group: must be 0 (one group); present for the same interface as the block maskers.

        Returns:
            (context indices, target indices): the target is every frame of the masked positions.
        """
        if group != 0:
            raise ValueError(f"tube masks have one group, got group {group}")
        positions = self.grid[1] * self.grid[2]
        # >> 1: a 63-bit seed, which every torch version accepts.
        gen = torch.Generator().manual_seed(mix_seed(self.seed, step, index, _STREAM) >> 1)
        masked = torch.zeros(positions, dtype=torch.bool)
        masked[torch.randperm(positions, generator=gen)[: self.num_masked]] = True
        tube = masked.expand(self.grid[0], positions).flatten()
        return (~tube).nonzero().squeeze(1), tube.nonzero().squeeze(1)

    def batch(self, step: int, indices: list[int]) -> MaskGroups:
        """Masks of a batch: ``[(context [B, K], target [B, 1, M])]`` with the same K, M for every sample.

        Args:
            step: global step of the batch.
            indices: dataset indices of the batch's samples.
        """
        if not indices:
            raise ValueError("a mask batch needs at least one sample index")
        pairs = [self.sample(step, i) for i in indices]
        return [(torch.stack([c for c, _ in pairs]), torch.stack([t for _, t in pairs]).unsqueeze(1))]
