import itertools

import pytest
import torch

from jepa.masks.causal import CausalMaskConfig, CausalMasker
from jepa.masks.collator import mask_groups
from jepa.masks.groups import GroupMasker
from jepa.masks.multiblock import MultiBlockConfig, MultiBlockMasker
from jepa.masks.multiblock3d import BlockGroup, MultiBlock3DMasker, VideoMaskConfig
from jepa.masks.registry import VIDEO_MASKINGS, video_masker
from jepa.masks.tube import TubeMaskConfig, TubeMasker

VIDEO = (8, 14, 14)  # 16 frames, tubelet 2, 224 px at patch 16
SMALL = (2, 4, 4)


def _cells(idx: torch.Tensor, grid: tuple[int, int, int]) -> set[tuple[int, int, int]]:
    _, h, w = grid
    return {(i // (h * w), i // w % h, i % w) for i in idx.tolist()}


def test_default_config_is_vjepa_two_groups():
    cfg = VideoMaskConfig()
    assert [(g.num_blocks, g.spatial_scale, g.aspect, g.temporal_scale) for g in cfg.groups] == [
        (8, (0.15, 0.15), (0.75, 1.5), (1.0, 1.0)),
        (2, (0.7, 0.7), (0.75, 1.5), (1.0, 1.0)),
    ]
    masker = MultiBlock3DMasker(VIDEO, cfg)
    assert masker.num_groups == 2 and len(masker.batch(0, [0, 1])) == 2
    # YAML hands over lists and mappings; they become the same typed groups.
    yaml_like = VideoMaskConfig(groups=[{"num_blocks": 8, "spatial_scale": [0.15, 0.15], "aspect": [0.75, 1.5]}])
    assert yaml_like.groups == cfg.groups[:1]


@pytest.mark.parametrize("grid", [VIDEO, SMALL, (1, 14, 14)])
def test_bounds_disjoint_and_static_batch_shapes(grid):
    masker = MultiBlock3DMasker(grid, seed=1)
    n = grid[0] * grid[1] * grid[2]
    for step in range(4):
        groups = masker.batch(step, list(range(12)))
        for ctx, tgt in groups:
            assert ctx.dtype == tgt.dtype == torch.long
            assert ctx.shape[0] == 12 and tgt.shape[:2] == (12, 1) and ctx.shape[1] >= 1 and tgt.shape[2] >= 1
            assert ctx.min() >= 0 and tgt.min() >= 0 and ctx.max() < n and tgt.max() < n
            for b in range(12):
                c, t = ctx[b].tolist(), tgt[b, 0].tolist()
                assert c == sorted(set(c)) and t == sorted(set(t))  # sorted, no repeats
                assert not set(c) & set(t)


def test_full_time_blocks_give_full_time_columns_and_complement():
    masker = MultiBlock3DMasker(VIDEO, seed=2)
    n = VIDEO[0] * VIDEO[1] * VIDEO[2]
    for step, index, group in itertools.product(range(3), range(4), range(2)):
        ctx, tgt = masker.sample(step, index, group)
        assert ctx.numel() + tgt.numel() == n and not set(ctx.tolist()) & set(tgt.tolist())
        cells = _cells(tgt, VIDEO)
        columns = {(h, w) for _, h, w in cells}
        assert cells == {(t, h, w) for t in range(VIDEO[0]) for h, w in columns}


def test_block_sizes_follow_the_config():
    # A fine grid: rounding moves a block's area and aspect by a few percent at most.
    grid = (4, 64, 64)
    cfg = VideoMaskConfig(groups=[BlockGroup(1, (0.1, 0.2), (0.75, 1.5), (0.5, 0.5))])
    masker = MultiBlock3DMasker(grid, cfg)
    for step in range(100):
        [(t, h, w)] = masker.block_shapes(step)
        assert t == 2 and 0.1 * 0.95 <= h * w / 64**2 <= 0.2 * 1.05 and 0.75 * 0.93 <= h / w <= 1.5 * 1.07
        # One block per sample: its target is exactly that block, in consecutive frames.
        _, tgt = masker.sample(step, step, 0)
        cells = _cells(tgt, grid)
        assert tgt.numel() == t * h * w
        frames = sorted({c[0] for c in cells})
        assert frames == list(range(frames[0], frames[0] + t))
    # Default groups on the paper grid: each sample's target is between one block and all blocks.
    masker = MultiBlock3DMasker(VIDEO)
    for step in range(5):
        for (t, h, w), group in zip(masker.block_shapes(step), masker.cfg.groups):
            assert t == VIDEO[0]
            assert abs(h * w / (VIDEO[1] * VIDEO[2]) - group.spatial_scale[0]) < 0.06
            for index in range(4):
                _, tgt = masker.sample(step, index, masker.cfg.groups.index(group))
                assert t * h * w <= tgt.numel() <= group.num_blocks * t * h * w


def test_block_shapes_depend_on_step_and_group_only():
    masker = MultiBlock3DMasker(VIDEO, seed=5)
    assert masker.block_shapes(3) == MultiBlock3DMasker(VIDEO, seed=5).block_shapes(3)
    # Adding a group leaves the first group's shapes untouched.
    wider = VideoMaskConfig(groups=[*VideoMaskConfig().groups, BlockGroup(1, (0.3, 0.3), (1.0, 1.0))])
    assert MultiBlock3DMasker(VIDEO, wider, seed=5).block_shapes(3)[:2] == masker.block_shapes(3)


def test_masks_are_a_pure_function_of_seed_step_index():
    a, b = MultiBlock3DMasker(VIDEO, seed=7), MultiBlock3DMasker(VIDEO, seed=7)
    for group in range(2):
        assert all(torch.equal(x, y) for x, y in zip(a.sample(5, 11, group), b.sample(5, 11, group)))
        assert not torch.equal(a.sample(5, 11, group)[1], a.sample(5, 12, group)[1])
        assert not torch.equal(a.sample(5, 11, group)[1], a.sample(6, 11, group)[1])
        assert not torch.equal(a.sample(5, 11, group)[1], MultiBlock3DMasker(VIDEO, seed=8).sample(5, 11, group)[1])
    # A sample's masks do not depend on its batch neighbours' order.
    first, second = a.batch(5, [11, 12, 13]), a.batch(5, [13, 12, 11])
    for (c1, t1), (c2, t2) in zip(first, second):
        assert torch.equal(c1, c2.flip(0)) and torch.equal(t1, t2.flip(0))


def test_every_cell_reachable_as_target_and_as_context():
    for grid in (VIDEO, SMALL):
        masker = MultiBlock3DMasker(grid)
        n = grid[0] * grid[1] * grid[2]
        in_target = torch.zeros(n, dtype=torch.bool)
        in_context = torch.zeros(n, dtype=torch.bool)
        for step, index, group in itertools.product(range(12), range(12), range(2)):
            ctx, tgt = masker.sample(step, index, group)
            in_target[tgt] = True
            in_context[ctx] = True
        assert in_target.all() and in_context.all(), f"unreached cells on {grid}"


def test_batch_subsets_are_random_not_raster_prefixes():
    masker = MultiBlock3DMasker(VIDEO, seed=4)
    ctx, _ = masker.batch(0, list(range(16)))[1]
    last_frame = VIDEO[1] * VIDEO[2] * (VIDEO[0] - 1)
    # A raster prefix would cut the last frame of the samples with the larger contexts.
    assert (ctx >= last_frame).any(1).all()
    # Each kept set is a subset of the sample's own full context; alone in a batch it keeps all.
    for b in range(16):
        full, _ = masker.sample(0, b, 1)
        assert set(ctx[b].tolist()) <= set(full.tolist())
    for group in range(2):
        alone_ctx, alone_tgt = masker.batch(0, [3])[group]
        assert all(torch.equal(x, y) for x, y in zip((alone_ctx[0], alone_tgt[0, 0]), masker.sample(0, 3, group)))


def test_redraws_keep_min_context():
    # Two 3x4 blocks on a 4x4 image cover everything half of the time: redraws must avoid that.
    cfg = VideoMaskConfig(groups=[BlockGroup(2, (0.75, 0.75), (0.75, 0.75))], min_context=4)
    masker = MultiBlock3DMasker((1, 4, 4), cfg)
    assert masker.block_shapes(0) == [(1, 3, 4)]
    for step, index in itertools.product(range(10), range(10)):
        assert masker.sample(step, index, 0)[0].numel() >= 4
    # 40 blocks of 1x4 on a 1x8 strip almost always cover it all: the bounded tries run out and
    # blocks are dropped, still leaving context.
    crowded = MultiBlock3DMasker((1, 1, 8), VideoMaskConfig(groups=[BlockGroup(40, (0.5, 0.5), (0.25, 0.25))]))
    assert crowded.block_shapes(0) == [(1, 1, 4)]
    for index in range(20):
        ctx, tgt = crowded.sample(0, index, 0)
        assert ctx.numel() >= 1 and tgt.numel() >= 4


def test_image_shaped_grid():
    ctx, tgt = MultiBlock3DMasker((1, 14, 14)).batch(0, [0, 1, 2])[0]
    assert ctx.max() < 196 and tgt.max() < 196 and ctx.shape[0] == 3


def test_tube_ratio_columns_and_determinism():
    for grid in (VIDEO, SMALL, (1, 14, 14)):
        masker = TubeMasker(grid, TubeMaskConfig(0.9), seed=3)
        masked = round(0.9 * grid[1] * grid[2])
        [(ctx, tgt)] = masker.batch(2, list(range(6)))
        assert tgt.shape == (6, 1, masked * grid[0]) and ctx.shape == (6, (grid[1] * grid[2] - masked) * grid[0])
        for b in range(6):
            cells = _cells(tgt[b, 0], grid)
            columns = {(h, w) for _, h, w in cells}
            assert len(columns) == masked and len(cells) == masked * grid[0]
            assert not set(ctx[b].tolist()) & set(tgt[b, 0].tolist())
        assert torch.equal(masker.sample(2, 1)[1], TubeMasker(grid, seed=3).sample(2, 1)[1])
        assert not torch.equal(masker.sample(2, 1)[1], masker.sample(2, 2)[1])
    # Every spatial position is sometimes hidden and sometimes visible.
    masker = TubeMasker(SMALL)
    seen_t, seen_c = set(), set()
    for index in range(200):
        ctx, tgt = masker.sample(0, index)
        seen_t |= set(tgt.tolist())
        seen_c |= set(ctx.tolist())
    assert seen_t == seen_c == set(range(32))


def test_causal_masks_are_the_first_frames_against_all_later_tokens():
    """Context: every token of the first c frames of tokens; targets: every token after them; c drawn
    per batch (the same for all its samples) from a quarter to three quarters of the clip, a pure
    function of (seed, step)."""
    masker = CausalMasker(VIDEO, seed=5)  # 8 frames of tokens: c in 2..6
    per_frame = VIDEO[1] * VIDEO[2]
    seen = set()
    for step in range(60):
        [(ctx, tgt)] = masker.batch(step, [3, 9, 11])
        c = masker.context_slices(step)
        seen.add(c)
        assert ctx.shape == (3, c * per_frame) and tgt.shape == (3, 1, (VIDEO[0] - c) * per_frame)
        assert torch.equal(ctx[0], torch.arange(c * per_frame)) and (ctx == ctx[0]).all() and (tgt == tgt[0]).all()
        assert torch.equal(torch.cat([ctx[0], tgt[0, 0]]), torch.arange(VIDEO[0] * per_frame))
        assert torch.equal(tgt, CausalMasker(VIDEO, seed=5).batch(step, [3, 9, 11])[0][1])
    assert seen == {2, 3, 4, 5, 6}
    assert CausalMasker((2, 4, 4)).context_choices == [1]  # two frames of tokens: one of context, one to predict


def test_group_interface_covers_all_maskers():
    for masker in [video_masker(name, VIDEO, None, seed=0) for name in VIDEO_MASKINGS]:
        assert isinstance(masker, GroupMasker)
        groups = masker.batch(1, [0, 1])
        assert len(groups) == masker.num_groups and all(t.dim() == 3 and c.dim() == 2 for c, t in groups)
    # The 2-D masker returns one (context, targets) pair; the collator makes it a one-group list.
    ctx, tgt = MultiBlockMasker((14, 14), MultiBlockConfig()).batch(1, [0, 1])
    (c, t), = mask_groups((ctx, tgt))
    assert c is ctx and t is tgt


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: BlockGroup(0, (0.1, 0.1), (1.0, 1.0)), "num_blocks"),
        (lambda: BlockGroup(1, (0.3, 0.1), (1.0, 1.0)), "spatial_scale"),
        (lambda: BlockGroup(1, (0.3, 1.2), (1.0, 1.0)), "spatial_scale"),
        (lambda: BlockGroup(1, (0.3, 0.3), (0.0, 1.0)), "aspect"),
        (lambda: BlockGroup(1, (0.3, 0.3), (1.0, 1.0), (0.5, 1.5)), "temporal_scale"),
        (lambda: BlockGroup(1, (0.3,), (1.0, 1.0)), "spatial_scale"),
        (lambda: VideoMaskConfig(groups=[]), "groups"),
        (lambda: VideoMaskConfig(min_context=0), "min_context"),
        (lambda: MultiBlock3DMasker((14, 14)), "grid"),
        (lambda: MultiBlock3DMasker((1, 2, 2), VideoMaskConfig(min_context=4)), "min_context"),
        (lambda: MultiBlock3DMasker(SMALL, VideoMaskConfig([BlockGroup(1, (1.0, 1.0), (1.0, 1.0))])), "groups"),
        (lambda: TubeMaskConfig(ratio=1.0), "ratio"),
        (lambda: TubeMasker((1, 2, 2), TubeMaskConfig(0.9)), "ratio"),
        (lambda: CausalMaskConfig(context=(0.5, 1.0)), "context"),
        (lambda: CausalMasker((1, 4, 4)), "at least 2 frames"),
    ],
)
def test_bad_configs_raise_one_line_errors(make, match):
    with pytest.raises(ValueError, match=match) as err:
        make()
    assert "\n" not in str(err.value)
