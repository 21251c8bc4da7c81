import pytest
import torch

from jepa.models import VIT_SIZES, EncoderConfig, Predictor, PredictorConfig, VisionTransformer, sincos_2d


def tiny_encoder(img=32, patch=8, **kw):
    return VisionTransformer(img, patch, embed_dim=kw.pop("dim", 32), depth=kw.pop("depth", 2), num_heads=2, **kw)


def test_standard_sizes():
    assert VIT_SIZES["tiny"][:3] == (192, 12, 3)
    assert VIT_SIZES["small"][:3] == (384, 12, 6)
    assert VIT_SIZES["base"][:3] == (768, 12, 12)
    assert VIT_SIZES["large"][:3] == (1024, 24, 16)
    assert VIT_SIZES["huge"][:3] == (1280, 32, 16)
    assert VIT_SIZES["giant"][:3] == (1408, 40, 16)
    enc = VisionTransformer.from_config(EncoderConfig("small", 16, depth=1), 32)
    assert enc.embed_dim == 384 and enc.num_heads == 6 and len(enc.blocks) == 1


def test_encoder_returns_patch_tokens_and_keeps_indices():
    enc = tiny_encoder()
    x = torch.randn(2, 3, 32, 32)
    assert enc(x).shape == (2, 16, 32)
    keep = torch.tensor([[0, 5, 15], [1, 2, 3]])
    kept = enc(x, keep=keep)
    assert kept.shape == (2, 3, 32)
    # Dropping patches changes attention context, so only the shape (and not the values) match the full pass.
    assert not torch.allclose(kept, enc(x)[:, :3])


def test_rectangular_and_other_image_sizes():
    enc = tiny_encoder(img=(16, 40), patch=8)
    assert enc.grid_size == (2, 5)
    assert enc(torch.randn(1, 3, 16, 40)).shape == (1, 10, 32)
    assert enc(torch.randn(1, 3, 24, 8)).shape == (1, 3, 32)  # positions computed for the new grid


def test_indivisible_image_size_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="not divisible by patch size 16"):
        VisionTransformer(100, 16, embed_dim=32, depth=1, num_heads=2)
    enc = tiny_encoder()
    with pytest.raises(ValueError, match="multiple of 8"):
        enc(torch.randn(1, 3, 30, 32))


def test_no_class_token_fixed_positions_and_sdpa():
    enc = tiny_encoder()
    names = [n for n, _ in enc.named_parameters()]
    assert not any("cls" in n or "pos_embed" in n for n in names)  # positions are a fixed buffer
    assert enc.blocks[0].attn.fused_attn  # timm block with F.scaled_dot_product_attention
    assert "pos_embed" not in enc.state_dict()
    pos = sincos_2d(4, 4, 32)
    assert torch.equal(enc.pos_embed[0], pos)
    # Rows differ only in the first half of the channels, columns only in the second half.
    assert torch.equal(pos[0, 16:], pos[4, 16:]) and not torch.equal(pos[0, :16], pos[4, :16])
    assert torch.equal(pos[0, :16], pos[1, :16]) and not torch.equal(pos[0, 16:], pos[1, 16:])


def test_predictor_shapes_and_mask_token_dependence():
    torch.manual_seed(0)
    pred = Predictor.from_config(PredictorConfig(width=16, depth=2), embed_dim=32, grid_size=(4, 4), encoder_heads=2)
    ctx = torch.randn(3, 5, 32)
    ctx_idx = torch.randint(0, 16, (3, 5))
    tgt_idx = torch.randint(0, 16, (3, 4, 6))
    out = pred(ctx, ctx_idx, tgt_idx)
    assert out.shape == (3, 4, 6, 32)
    # Predictions depend on where the targets are.
    moved = pred(ctx, ctx_idx, (tgt_idx + 1) % 16)
    assert not torch.allclose(out, moved)
    # Each target block is its own sequence: changing block 1 leaves block 0's predictions alone.
    other = tgt_idx.clone()
    other[:, 1] = (other[:, 1] + 3) % 16
    assert torch.allclose(pred(ctx, ctx_idx, other)[:, 0], out[:, 0], atol=1e-6)
