"""V-JEPA 3-D multi-block masks: groups of spatio-temporal target blocks, context = everything else.

Each group (V-JEPA: 8 short-range blocks of spatial scale 0.15, 2 long-range blocks of scale 0.7)
is drawn independently; its target is the union of its blocks and its context the complement.
The same rules as the 2-D masker hold: every draw is a pure function of (seed, step, sample index,
group), block *shapes* depend on (seed, step, group) only, every cell is reachable (placement by
``randrange``) and each batch has static token counts.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import torch

from ..seeding import mix_seed
from .groups import MaskGroups
from .multiblock import block_shape

# Extra value mixed into every seed: keeps these draws apart from the data pipeline's
# mix_seed(seed, step, index, salt) streams (crops, colours) that share the run seed.
_STREAM = 0x3D_B10C
# V-JEPA redraws until the context is non-empty; a bound keeps a worker from spinning forever.
_MAX_TRIES = 20


def _pair(name: str, value: Any, upper: float | None) -> tuple[float, float]:
    # YAML gives lists, Python callers tuples: normalise to a tuple of floats before checking.
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"block group {name} must be a pair of numbers, got {value!r}") from None
    if not 0 < lo <= hi or (upper is not None and hi > upper):
        bound = f" at most {upper:g}" if upper is not None else ""
        raise ValueError(f"block group {name} must be an increasing pair of positive numbers{bound}, "
                         f"got {(lo, hi)}")
    return lo, hi


@dataclass
class BlockGroup:
    """One group of target blocks; its blocks share one shape per (step, group).

    Args:
        num_blocks: blocks per sample; the group's target is their union.
        spatial_scale: range of each block's area, as a fraction of the H' x W' token grid.
        aspect: range of each block's height / width.
        temporal_scale: range of each block's duration, as a fraction of the T' token frames;
            1.0 makes every block span all frames.
    """

    num_blocks: int
    spatial_scale: tuple[float, float]
    aspect: tuple[float, float]
    temporal_scale: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        if isinstance(self.num_blocks, bool) or not isinstance(self.num_blocks, int) or self.num_blocks < 1:
            raise ValueError(f"block group num_blocks must be an integer of at least 1, got {self.num_blocks!r}")
        self.spatial_scale = _pair("spatial_scale", self.spatial_scale, 1.0)
        self.aspect = _pair("aspect", self.aspect, None)
        self.temporal_scale = _pair("temporal_scale", self.temporal_scale, 1.0)


def _vjepa_groups() -> list[BlockGroup]:
    return [BlockGroup(8, (0.15, 0.15), (0.75, 1.5)), BlockGroup(2, (0.7, 0.7), (0.75, 1.5))]


@dataclass
class VideoMaskConfig:
    """3-D multi-block settings; defaults are V-JEPA's short-range and long-range groups.

    Args:
        groups: block groups, each giving one (context, target) pair per batch.
        min_context: fewest context tokens a sample keeps; a sample's blocks are re-drawn (up to 20
            times, then the last blocks dropped) until this holds.
    """

    groups: list[BlockGroup] = field(default_factory=_vjepa_groups)
    min_context: int = 1

    def __post_init__(self) -> None:
        if not self.groups:
            raise ValueError("masks.groups must name at least one block group")
        # Accept plain mappings too (a dict per group, as YAML writes it).
        self.groups = [g if isinstance(g, BlockGroup) else BlockGroup(**g) for g in self.groups]
        if isinstance(self.min_context, bool) or not isinstance(self.min_context, int) or self.min_context < 1:
            raise ValueError(f"masks.min_context must be an integer of at least 1, got {self.min_context!r}")


def check_video_grid(grid: tuple[int, ...]) -> tuple[int, int, int]:
    """Validates a (T', H', W') token grid.

    Args:
        grid: frames (after tubelets), rows and columns of tokens.

    Returns:
        The grid as a tuple of three ints.
    """
    if len(grid) != 3 or any(int(g) != g or g < 1 for g in grid):
        raise ValueError(f"a video mask grid is (frames, rows, columns) of positive ints, got {tuple(grid)}")
    return int(grid[0]), int(grid[1]), int(grid[2])


def block_shape_3d(
    grid: tuple[int, int, int], spatial_scale: float, aspect: float, temporal_scale: float
) -> tuple[int, int, int]:
    """Frames, height and width (in tokens) of one block, each clamped to the grid.

    Args:
        grid: (T', H', W') token grid.
        spatial_scale: the block's area as a fraction of H' x W'.
        aspect: the block's height / width.
        temporal_scale: the block's duration as a fraction of T'.

    Returns:
        (frames, rows, columns) of the block.
    """
    frames = min(max(int(round(temporal_scale * grid[0])), 1), grid[0])
    return (frames, *block_shape((grid[1], grid[2]), spatial_scale, aspect))


def _largest_block(grid: tuple[int, int, int], group: BlockGroup) -> int:
    # Sizes grow with both scales, so the largest block has the top scales. Over the aspect range,
    # height only grows and width only shrinks, so on each run of equal height the widest block
    # sits at the run's start: the lowest aspect, or where round(sqrt(area * aspect)) steps up.
    _, gh, gw = grid
    area = group.spatial_scale[1] * gh * gw
    lo, hi = group.aspect
    steps = [(k + 0.5) ** 2 / area for k in range(gh + 1)]
    candidates = [lo, hi, *steps, *(a * (1 + 1e-9) for a in steps)]
    return max(math.prod(block_shape_3d(grid, group.spatial_scale[1], a, group.temporal_scale[1]))
               for a in candidates if lo <= a <= hi)


class MultiBlock3DMasker:
    """Draws V-JEPA masks on a (T', H', W') token grid; indices are flattened (t, h, w) row-major.

    Args:
        grid: (frames after tubelets, rows, columns) of tokens.
        cfg: block groups; V-JEPA's two groups by default.
        seed: run seed; masks depend on it, the step, the sample index and the group only.
    """

    def __init__(self, grid: tuple[int, int, int], cfg: VideoMaskConfig | None = None, seed: int = 0) -> None:
        self.grid = check_video_grid(grid)
        self.cfg = cfg or VideoMaskConfig()
        self.seed = int(seed)
        self.num_tokens = math.prod(self.grid)
        room = self.num_tokens - self.cfg.min_context
        if room < 1:
            raise ValueError(f"masks.min_context={self.cfg.min_context} leaves no target token "
                             f"in a {self.grid} token grid")
        # One block must leave min_context tokens: then dropping blocks always ends a bad draw.
        for g, group in enumerate(self.cfg.groups):
            largest = _largest_block(self.grid, group)
            if largest > room:
                raise ValueError(f"masks.groups[{g}]: one block can cover {largest} of the {self.num_tokens} "
                                 f"tokens of grid {self.grid}, leaving fewer than "
                                 f"min_context={self.cfg.min_context}; lower its scales")

    @property
    def num_groups(self) -> int:
        """Number of (context, target) pairs per batch."""
        return len(self.cfg.groups)

    def block_shapes(self, step: int) -> list[tuple[int, int, int]]:
        """(frames, rows, columns) of the blocks of each group, shared by every sample of batch ``step``.

        Args:
            step: global step of the batch.
        """
        shapes = []
        for g, group in enumerate(self.cfg.groups):
            rng = random.Random(mix_seed(self.seed, step, -1, _STREAM, g))
            shape = block_shape_3d(self.grid, rng.uniform(*group.spatial_scale), rng.uniform(*group.aspect),
                                   rng.uniform(*group.temporal_scale))
            shapes.append(self._fit(shape))
        return shapes

    def _fit(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        # Guard for float edge cases the constructor's check could miss: shrink the longer spatial
        # side until one block leaves min_context tokens (a 1x1x1 block always does).
        t, h, w = shape
        while t * h * w > self.num_tokens - self.cfg.min_context:
            if h >= w and h > 1:
                h -= 1
            elif w > 1:
                w -= 1
            else:
                t -= 1
        return t, h, w

    def _cover(self, blocks: list[tuple[int, int, int]], shape: tuple[int, int, int]) -> torch.Tensor:
        t, h, w = shape
        covered = torch.zeros(self.grid, dtype=torch.bool)
        for t0, top, left in blocks:
            covered[t0 : t0 + t, top : top + h, left : left + w] = True
        return covered

    def _draw(
        self, step: int, index: int, group: int, shape: tuple[int, int, int]
    ) -> tuple[torch.Tensor, int]:
        # Returns the flat target mask and a seed from the same per-sample stream, for picking
        # the sample's random subsets when the batch is equalised.
        gt, gh, gw = self.grid
        t, h, w = shape
        rng = random.Random(mix_seed(self.seed, step, index, _STREAM, group))
        need = self.cfg.min_context
        best: tuple[list[tuple[int, int, int]], torch.Tensor] | None = None
        best_free = -1
        for _ in range(_MAX_TRIES):
            # randrange over T - t + 1 (H - h + 1, ...) starts: the last frame, row and column are reachable.
            blocks = [(rng.randrange(gt - t + 1), rng.randrange(gh - h + 1), rng.randrange(gw - w + 1))
                      for _ in range(self.cfg.groups[group].num_blocks)]
            covered = self._cover(blocks, shape)
            free = self.num_tokens - int(covered.sum())
            if free > best_free:
                best, best_free = (blocks, covered), free
            if free >= need:
                break
        assert best is not None
        blocks, covered = best
        # Still too little context after the tries: drop blocks; one block alone leaves enough.
        while best_free < need and len(blocks) > 1:
            blocks = blocks[:-1]
            covered = self._cover(blocks, shape)
            best_free = self.num_tokens - int(covered.sum())
        return covered.flatten(), rng.getrandbits(63)

    def sample(self, step: int, index: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks of one sample for one group, as sorted flat (t, h, w) token indices.

        Args:
            step: global step of the batch.
            index: dataset index of the sample.
            group: which block group of the config.

        Returns:
            (context indices, target indices): the target is the union of the group's blocks and
            the context its complement, with at least ``min_context`` tokens. When the blocks
            leave less (e.g. two long-range blocks covering the whole frame), all blocks are
            re-drawn as in V-JEPA; after 20 tries the best draw is kept with its last blocks
            dropped until enough context remains.
        """
        if not 0 <= group < self.num_groups:
            raise ValueError(f"group must be in [0, {self.num_groups}), got {group}")
        covered, _ = self._draw(step, index, group, self.block_shapes(step)[group])
        return (~covered).nonzero().squeeze(1), covered.nonzero().squeeze(1)

    def batch(self, step: int, indices: list[int]) -> MaskGroups:
        """Masks of a batch: one (context [B, K], target [B, 1, M]) pair per group, sorted indices.

        K and M are the batch minima so shapes are static; each sample keeps a random subset of
        that size drawn from its own stream (the first K in raster order would drop the last
        frames and rows more often). The singleton target dimension is the predictor's
        [B, num_target_sets, tokens] layout: V-JEPA predicts a group's union as one set.

        Args:
            step: global step of the batch.
            indices: dataset indices of the batch's samples.
        """
        if not indices:
            raise ValueError("a mask batch needs at least one sample index")
        groups: MaskGroups = []
        for g, shape in enumerate(self.block_shapes(step)):
            draws = [self._draw(step, i, g, shape) for i in indices]
            covered = torch.stack([c for c, _ in draws])
            # Each sample lists the tokens in a random order from its own stream and keeps the
            # first ones of its set: a uniform subset whose order is its own, so neighbours only
            # change how many it keeps (the kept sets nest), never which ones come first.
            order = torch.stack([torch.randperm(self.num_tokens, generator=torch.Generator().manual_seed(seed))
                                 for _, seed in draws])
            in_target = covered.sum(1)
            k, m = int((self.num_tokens - in_target).min()), int(in_target.min())
            ctx = _first_in_order(order, ~covered, k)
            tgt = _first_in_order(order, covered, m)
            groups.append((ctx, tgt.unsqueeze(1)))
        return groups


def _first_in_order(order: torch.Tensor, member: torch.Tensor, size: int) -> torch.Tensor:
    # Walk each row's order, count the members met so far and keep the first `size` of them;
    # scattering back to token positions and nonzero gives them sorted.
    met = member.gather(1, order)
    take = met & (met.cumsum(1) <= size)
    keep = torch.zeros_like(member).scatter_(1, order, take)
    return keep.nonzero()[:, 1].view(order.shape[0], size)
