"""Causal masks: the first frames of a clip are the context, every token of the later frames a target.

This is the question the surprise probe asks of a trained JEPA (V-JEPA's intuitive-physics evaluation:
the first C frames of a window are context, the predictor predicts all the rest), asked during
training: predict the future of the whole frame, not a hidden block of the present. The context
length is drawn per batch, so every sample of a batch has the same token counts; draws are a pure
function of (seed, step), so a resumed run draws the same masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..seeding import mix_seed
from .groups import MaskGroups
from .multiblock3d import check_video_grid

# Keeps causal draws apart from the data pipeline's streams that share the run seed.
_STREAM = 0xCA05


@dataclass
class CausalMaskConfig:
    """Causal mask settings.

    Args:
        context: (lowest, highest) share of the clip's frames that are context; each batch draws a
            whole number of tubelets in that range, at least one, leaving at least one as target.
    """

    context: tuple[float, float] = (0.25, 0.75)

    def __post_init__(self) -> None:
        lo, hi = self.context
        if not 0 < lo <= hi < 1:
            raise ValueError(f"masks.context must be (lowest, highest) shares with 0 < lowest <= highest < 1, "
                             f"got {tuple(self.context)}")


class CausalMasker:
    """Draws causal masks on a (T', H', W') token grid; indices are flattened (t, h, w) row-major.

    Args:
        grid: (frames after tubelets, rows, columns) of tokens; at least two frames of tokens.
        cfg: the range of context lengths.
        seed: run seed; masks depend on it and the step only.
    """

    num_groups = 1

    def __init__(self, grid: tuple[int, int, int], cfg: CausalMaskConfig | None = None, seed: int = 0) -> None:
        self.grid = check_video_grid(grid)
        self.cfg = cfg or CausalMaskConfig()
        self.seed = int(seed)
        t = self.grid[0]
        if t < 2:
            raise ValueError(f"causal masks need at least 2 frames of tokens (tubelets) to split into context and "
                             f"future, got grid {self.grid}")
        lo, hi = self.cfg.context
        low, high = max(1, round(lo * t)), min(t - 1, round(hi * t))
        self.context_choices = list(range(low, max(low, high) + 1))

    def context_slices(self, step: int) -> int:
        """Frames of tokens (tubelets) that are context in batch ``step``."""
        gen = torch.Generator().manual_seed(mix_seed(self.seed, step, _STREAM) >> 1)
        return self.context_choices[int(torch.randint(len(self.context_choices), (1,), generator=gen))]

    def batch(self, step: int, indices: list[int]) -> MaskGroups:
        """Masks of a batch: ``[(context [B, K], target [B, 1, M])]``, the same for every sample.

        Args:
            step: global step of the batch.
            indices: dataset indices of the batch's samples.
        """
        if not indices:
            raise ValueError("a mask batch needs at least one sample index")
        per_frame = self.grid[1] * self.grid[2]
        cut = self.context_slices(step) * per_frame
        total = self.grid[0] * per_frame
        ctx, tgt = torch.arange(cut), torch.arange(cut, total)
        b = len(indices)
        return [(ctx.expand(b, -1).clone(), tgt.expand(b, 1, -1).clone())]
