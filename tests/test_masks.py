import itertools

import pytest
import torch

from jepa.masks import MaskCollator, MultiBlockConfig, MultiBlockMasker, block_shape


def test_block_shapes_within_scale_and_aspect_bounds():
    cfg = MultiBlockConfig()
    grid = (64, 64)  # fine grid: rounding moves a block's area by a few percent at most
    masker = MultiBlockMasker(grid, cfg)
    for step in range(300):
        (th, tw), (ch, cw) = masker.block_shapes(step)
        n = grid[0] * grid[1]
        assert cfg.target_scale[0] * 0.95 <= th * tw / n <= cfg.target_scale[1] * 1.05
        assert cfg.target_aspect[0] * 0.93 <= th / tw <= cfg.target_aspect[1] * 1.07
        assert cfg.context_scale[0] * 0.95 <= ch * cw / n <= 1.0
        assert 0.95 <= ch / cw <= 1.05


def test_block_shape_is_clamped_to_grid():
    assert block_shape((4, 4), 1.0, 1.0) == (4, 4)
    # A tall block on a short grid is cut to the grid's height, never beyond it.
    h, w = block_shape((3, 10), 0.9, 4.0)
    assert h == 3 and 1 <= w <= 10


@pytest.mark.parametrize("grid", [(8, 8), (14, 14), (6, 10), (3, 5)])
def test_targets_disjoint_from_context_and_static_shapes(grid):
    masker = MultiBlockMasker(grid, MultiBlockConfig(min_context=2), seed=3)
    n = grid[0] * grid[1]
    for step in range(20):
        ctx, tgt = masker.batch(step, list(range(16)))
        assert ctx.shape[0] == 16 and tgt.shape[:2] == (16, 4)
        assert ctx.max() < n and tgt.max() < n and ctx.min() >= 0
        for b in range(16):
            assert not set(ctx[b].tolist()) & set(tgt[b].flatten().tolist())
            assert len(set(ctx[b].tolist())) == ctx.shape[1]  # no repeated context patch


def test_min_context_kept_on_paper_grid():
    masker = MultiBlockMasker((14, 14), MultiBlockConfig(min_context=10))
    for step, index in itertools.product(range(30), range(8)):
        ctx, _ = masker.sample(step, index)
        assert ctx.numel() >= 10


def test_every_cell_reachable_including_last_row_and_column():
    grid = (14, 14)
    masker = MultiBlockMasker(grid)
    covered = torch.zeros(grid[0] * grid[1], dtype=torch.bool)
    for step in range(40):
        _, tgt = masker.batch(step, list(range(32)))
        covered[tgt.flatten()] = True
    assert covered.all(), f"unreached cells: {(~covered).nonzero().flatten().tolist()}"
    # The context block may also reach the bottom-right corner.
    corner = grid[0] * grid[1] - 1
    assert any(corner in masker.sample(s, i)[0].tolist() for s in range(40) for i in range(8))


def test_masks_are_a_pure_function_of_seed_step_index():
    a, b = MultiBlockMasker((14, 14), seed=7), MultiBlockMasker((14, 14), seed=7)
    ctx_a, tgt_a = a.sample(5, 11)
    ctx_b, tgt_b = b.sample(5, 11)
    assert torch.equal(ctx_a, ctx_b) and all(torch.equal(x, y) for x, y in zip(tgt_a, tgt_b))
    # Targets of a sample do not depend on which other samples share its batch, nor their order.
    _, t1 = a.batch(5, [11, 12, 13])
    _, t2 = a.batch(5, [13, 11])
    assert torch.equal(t1[0], t2[1])
    # Another step, index or seed gives other masks.
    assert not torch.equal(a.batch(6, [11])[1], t1[:1])
    assert not torch.equal(a.batch(5, [12])[1], t1[:1])
    assert not torch.equal(MultiBlockMasker((14, 14), seed=8).batch(5, [11])[1], t1[:1])


def test_collator_stacks_and_rejects_mixed_steps():
    masker = MultiBlockMasker((4, 4), MultiBlockConfig(min_context=1))
    collate = MaskCollator(masker)
    samples = [{"input": torch.zeros(3, 16, 16), "label": i, "index": i, "step": 2, "skipped": ["x"] if i == 0 else []}
               for i in range(3)]
    batch = collate(samples)
    assert batch["inputs"].shape == (3, 3, 16, 16)
    assert batch["labels"].tolist() == [0, 1, 2] and batch["step"] == 2 and batch["skipped"] == ["x"]
    assert batch["masks"][0][0].shape[0] == 3 and batch["masks"][0][1].shape[:2] == (3, 4)
    samples[1]["step"] = 3
    with pytest.raises(ValueError, match="one step"):
        collate(samples)


def test_bad_mask_config_is_refused():
    with pytest.raises(ValueError, match="target_scale"):
        MultiBlockConfig(target_scale=(0.3, 0.1))
    with pytest.raises(ValueError, match="min_context"):
        MultiBlockMasker((2, 2), MultiBlockConfig(min_context=10))
