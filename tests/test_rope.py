"""3-D rotary position embeddings: convention, relative positions, timm compatibility, shapes, dtypes."""

from __future__ import annotations

import functools

import pytest
import torch
from timm.models.vision_transformer import Block
from torch import nn

from jepa.models.rope import RopeBlock, apply_rope, rope_angles, rope_axis_dim, token_coords
from jepa.models.vit import run_blocks

LayerNorm6 = functools.partial(nn.LayerNorm, eps=1e-6)


def make_block(head_dim: int, heads: int = 2, seed: int = 0) -> RopeBlock:
    torch.manual_seed(seed)
    block = RopeBlock(head_dim * heads, heads, qkv_bias=True, norm_layer=LayerNorm6).eval()
    # timm's default init leaves biases at zero and LayerNorms at identity; randomise them so that
    # weight loading and dropped terms would show in the comparisons.
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return block


def random_coords(b: int, n: int, high: int = 8) -> torch.Tensor:
    return torch.randint(0, high, (b, n, 3)).float()


@pytest.mark.parametrize(("head_dim", "part"), [(16, 4), (32, 10), (64, 20), (72, 24)])
def test_head_dim_split_leaves_remainder_unrotated(head_dim: int, part: int) -> None:
    assert rope_axis_dim(head_dim) == part
    cos, sin = rope_angles(random_coords(2, 5) + 1, head_dim)
    assert cos.shape == sin.shape == (2, 1, 5, head_dim)
    assert torch.all(cos[..., 3 * part :] == 1) and torch.all(sin[..., 3 * part :] == 0)
    assert not torch.allclose(sin[..., : 3 * part], torch.zeros(()))


@pytest.mark.parametrize("head_dim", [4, 15])
def test_unusable_head_dims_are_refused(head_dim: int) -> None:
    with pytest.raises(ValueError, match="even head dimension"):
        rope_angles(torch.zeros(3, 3), head_dim)


def test_rotation_matches_complex_reference() -> None:
    """Pins the convention: pair j of axis a turns by coord_a * 10000 ** (-j / (part / 2))."""
    head_dim, part = 32, 10
    coords = random_coords(1, 6)
    x = torch.randn(1, 2, 6, head_dim)
    out = apply_rope(x, *rope_angles(coords, head_dim))
    freqs = 10000.0 ** (-torch.arange(part // 2) / (part // 2))
    angles = (coords[0].unsqueeze(-1) * freqs).flatten(-2)  # [N, 3 * part / 2]: t, h, w
    pairs = torch.view_as_complex(x[..., : 3 * part].reshape(1, 2, 6, -1, 2).contiguous())
    expected = torch.view_as_real(pairs * torch.polar(torch.ones_like(angles), angles)).flatten(-2)
    torch.testing.assert_close(out[..., : 3 * part], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[..., 3 * part :], x[..., 3 * part :])


def test_rotation_preserves_norms() -> None:
    x = torch.randn(2, 3, 7, 64)
    out = apply_rope(x, *rope_angles(torch.rand(2, 7, 3) * 20, 64))
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))


@pytest.mark.parametrize("head_dim", [16, 32, 64])
def test_logits_and_block_depend_only_on_coordinate_differences(head_dim: int) -> None:
    coords = random_coords(2, 9)
    shifted = coords + torch.tensor([3.0, -5.0, 11.0])
    q, k = torch.randn(2, 2, 9, head_dim), torch.randn(2, 2, 9, head_dim)

    def logits(c: torch.Tensor) -> torch.Tensor:
        cos, sin = rope_angles(c, head_dim)
        return apply_rope(q, cos, sin) @ apply_rope(k, cos, sin).transpose(-2, -1)

    torch.testing.assert_close(logits(shifted), logits(coords), atol=1e-4, rtol=1e-4)
    block, x = make_block(head_dim), torch.randn(2, 9, 2 * head_dim)
    with torch.no_grad():
        out = block(x, rope_angles(coords, head_dim))
        torch.testing.assert_close(block(x, rope_angles(shifted, head_dim)), out, atol=1e-4, rtol=1e-4)
        # Not vacuous: a change that is not a shift does change the output.
        assert not torch.allclose(block(x, rope_angles(coords * 2, head_dim)), out, atol=1e-3)


def test_zero_coordinates_equal_timm_block_and_state_dicts_swap() -> None:
    rope_block = make_block(32)
    timm_block = Block(64, 2, qkv_bias=True, norm_layer=LayerNorm6).eval()
    assert list(rope_block.state_dict()) == list(timm_block.state_dict())
    timm_block.load_state_dict(rope_block.state_dict())
    x = torch.randn(2, 10, 64)
    with torch.no_grad():
        expected = timm_block(x)
        torch.testing.assert_close(rope_block(x, rope_angles(torch.zeros(1, 10, 3), 32)), expected)
        torch.testing.assert_close(rope_block(x, None), expected)
        fresh = RopeBlock(64, 2, qkv_bias=True, norm_layer=LayerNorm6).eval()
        fresh.load_state_dict(timm_block.state_dict())
        torch.testing.assert_close(fresh(x), expected)


def test_token_coords_unravel_row_major_indices() -> None:
    grid = (2, 3, 4)
    every = token_coords(grid, None, "cpu")
    t, h, w = torch.meshgrid(*(torch.arange(n) for n in grid), indexing="ij")
    assert torch.equal(every, torch.stack((t, h, w), dim=-1).reshape(1, -1, 3).float())
    idx = torch.tensor([[0, 5, 23], [12, 13, 16]])
    assert torch.equal(token_coords(grid, idx), every[0, idx])


def test_kept_tokens_use_their_own_coordinates() -> None:
    grid, head_dim = (2, 4, 4), 32
    blocks = nn.ModuleList(make_block(head_dim, seed=s) for s in range(2))
    keep = torch.stack([torch.randperm(32)[:12] for _ in range(3)])  # per-sample subsets, any order
    x = torch.randn(3, 12, 64)
    with torch.no_grad():
        out = run_blocks(blocks, x, False, rope_angles(token_coords(grid, keep), head_dim))
        assert out.shape == (3, 12, 64)
        # Sample 1 alone gives the same tokens: each row of the batch uses its own coordinates.
        alone = run_blocks(blocks, x[1:2], False, rope_angles(token_coords(grid, keep[1:2]), head_dim))
        torch.testing.assert_close(alone, out[1:2], atol=1e-5, rtol=1e-5)
        # Positions come from the coordinates, not the order: permuting tokens permutes the output.
        perm = torch.randperm(12)
        permuted = run_blocks(
            blocks, x[:, perm], False, rope_angles(token_coords(grid, keep[:, perm]), head_dim)
        )
        torch.testing.assert_close(permuted, out[:, perm], atol=1e-5, rtol=1e-5)


def test_gradients_flow_and_checkpointing_matches() -> None:
    blocks = nn.ModuleList(make_block(16, seed=s) for s in range(2)).train()
    x = torch.randn(2, 8, 32, requires_grad=True)
    rope = rope_angles(token_coords((1, 4, 4), torch.stack([torch.randperm(16)[:8] for _ in range(2)])), 16)
    grads = []
    for use_checkpoint in (False, True):
        blocks.zero_grad()
        x.grad = None
        run_blocks(blocks, x, use_checkpoint, rope).square().mean().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in blocks.parameters())
        grads.append([x.grad.clone()] + [p.grad.clone() for p in blocks.parameters()])
    for plain, checkpointed in zip(*grads):
        torch.testing.assert_close(checkpointed, plain)


def test_bfloat16_autocast_on_cpu() -> None:
    block, x = make_block(64), torch.randn(2, 16, 128)
    rope = rope_angles(token_coords((1, 4, 4), None), 64)
    with torch.no_grad():
        expected = block(x, rope)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = block(x, rope)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), expected, atol=0.1, rtol=0.05)
