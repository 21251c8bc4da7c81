"""I-JEPA multi-block masks: several target blocks and one context block with the targets cut out.

Every draw is a pure function of (seed, step, sample index): a resumed run, another worker count or
another rank layout sees exactly the same masks. Block *sizes* depend on (seed, step) only, so every
sample of a batch has target blocks of the same shape and the batch has static token counts.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from ..seeding import mix_seed


@dataclass
class MultiBlockConfig:
    """Multi-block mask settings; defaults are the I-JEPA paper's.

    Args:
        num_targets: target blocks per image.
        target_scale: range of each target block's area, as a fraction of the image.
        target_aspect: range of each target block's height / width.
        context_scale: range of the context block's area.
        context_aspect: range of the context block's height / width.
        min_context: fewest context patches to keep; blocks are re-drawn until this holds.
    """

    num_targets: int = 4
    target_scale: tuple[float, float] = (0.15, 0.2)
    target_aspect: tuple[float, float] = (0.75, 1.5)
    context_scale: tuple[float, float] = (0.85, 1.0)
    context_aspect: tuple[float, float] = (1.0, 1.0)
    min_context: int = 10

    def __post_init__(self) -> None:
        for name in ("target_scale", "target_aspect", "context_scale", "context_aspect"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"masks.{name} must be an increasing pair of positive numbers, got {(lo, hi)}")
        if self.target_scale[1] > 1 or self.context_scale[1] > 1:
            raise ValueError("mask scales are fractions of the image and must be at most 1")
        if self.num_targets < 1:
            raise ValueError(f"masks.num_targets must be at least 1, got {self.num_targets}")


def block_shape(
    grid: tuple[int, int], scale: float, aspect: float
) -> tuple[int, int]:
    """Height and width (in patches) of a block covering ``scale`` of the grid with height/width ``aspect``."""
    gh, gw = grid
    area = scale * gh * gw
    h = int(round(math.sqrt(area * aspect)))
    w = int(round(math.sqrt(area / aspect)))
    return min(max(h, 1), gh), min(max(w, 1), gw)


def _place(grid: tuple[int, int], shape: tuple[int, int], rng: random.Random) -> torch.Tensor:
    # randrange over H - h + 1 positions: the last row and column are reachable too.
    gh, gw = grid
    h, w = shape
    top, left = rng.randrange(gh - h + 1), rng.randrange(gw - w + 1)
    mask = torch.zeros(gh, gw, dtype=torch.bool)
    mask[top : top + h, left : left + w] = True
    return mask


class MultiBlockMasker:
    """Draws I-JEPA masks on a ``grid`` of patches.

    Args:
        grid: (rows, columns) of patches.
        cfg: block settings.
        seed: run seed; masks depend on it, the step and the sample index only.
    """

    def __init__(self, grid: tuple[int, int], cfg: MultiBlockConfig | None = None, seed: int = 0) -> None:
        self.grid = (int(grid[0]), int(grid[1]))
        self.cfg = cfg or MultiBlockConfig()
        self.seed = int(seed)
        n = self.grid[0] * self.grid[1]
        smallest_context = block_shape(self.grid, self.cfg.context_scale[0], self.cfg.context_aspect[0])
        if self.cfg.min_context > n or smallest_context[0] * smallest_context[1] < 1:
            raise ValueError(f"masks.min_context={self.cfg.min_context} does not fit a {self.grid} patch grid")

    def block_shapes(self, step: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """(target shape, context shape) shared by every sample of batch ``step``."""
        rng = random.Random(mix_seed(self.seed, step, -1))
        c = self.cfg
        target = block_shape(self.grid, rng.uniform(*c.target_scale), rng.uniform(*c.target_aspect))
        context = block_shape(self.grid, rng.uniform(*c.context_scale), rng.uniform(*c.context_aspect))
        return target, context

    def sample(self, step: int, index: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Masks of one sample: (context patch indices, list of target patch indices), row-major.

        Target blocks are placed freely (they may overlap each other); the context block is placed
        and every target patch removed from it. If fewer than ``min_context`` patches remain, the
        context block (and every fifth try the targets too) is re-drawn; after 20 tries the draw
        with the largest context is kept. Context and targets are always disjoint.
        """
        tgt_shape, ctx_shape = self.block_shapes(step)
        rng = random.Random(mix_seed(self.seed, step, index))
        best: tuple[torch.Tensor, list[torch.Tensor]] | None = None
        best_count = -1
        targets = [_place(self.grid, tgt_shape, rng) for _ in range(self.cfg.num_targets)]
        for attempt in range(20):
            if attempt and attempt % 5 == 0:
                targets = [_place(self.grid, tgt_shape, rng) for _ in range(self.cfg.num_targets)]
            covered = torch.stack(targets).any(0)
            context = _place(self.grid, ctx_shape, rng) & ~covered
            count = int(context.sum())
            if count > best_count:
                best, best_count = (context, targets), count
            if count >= self.cfg.min_context:
                break
        assert best is not None
        context, targets = best
        ctx_idx = context.flatten().nonzero().squeeze(1)
        tgt_idx = [t.flatten().nonzero().squeeze(1) for t in targets]
        # The sample's own stream also decides which context patches survive batch equalisation.
        order = torch.randperm(ctx_idx.numel(), generator=torch.Generator().manual_seed(rng.getrandbits(63)))
        return ctx_idx[order], tgt_idx

    def batch(self, step: int, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks for a batch: context [B, K] and targets [B, M, T] (sorted patch indices).

        Every sample keeps the same number K of context patches (the batch minimum) so shapes are
        static; the kept subset is random per sample rather than the first K in raster order,
        which would drop the bottom of the image more often.
        """
        samples = [self.sample(step, i) for i in indices]
        k = min(ctx.numel() for ctx, _ in samples)
        ctx = torch.stack([c[:k].sort().values for c, _ in samples])
        tgt = torch.stack([torch.stack(t) for _, t in samples])
        return ctx, tgt
