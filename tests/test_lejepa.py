"""The lejepa objective: its loss acts on the views' projections, its quadrature, its errors."""

import pytest
import torch

from jepa.errors import JEPAError
from jepa.models import EncoderConfig, PredictorConfig
from jepa.objectives import epps_pulley
from jepa.train.module import PretrainModule

from conftest import write_tiny_config
from test_pretrain import run_cli


def lejepa_module(**settings) -> PretrainModule:
    return PretrainModule(EncoderConfig("tiny", 4, width=32, depth=2, heads=2), PredictorConfig(16, 1, 2),
                          image_size=16, num_classes=None,
                          objective={"name": "lejepa", "projector": [64, 16], **settings})


def batch(views: int = 2, local: int = 2):
    torch.manual_seed(0)
    images = torch.randn(8, 3, 16, 16)
    ctx = torch.tensor([[0, 1, 2, 3, 4]] * 8)
    tgt = torch.tensor([[[10, 11], [12, 13]]] * 8)
    return images, [(ctx, tgt)], {"global": [torch.randn(8, 3, 16, 16) for _ in range(views)],
                                 "local": [torch.randn(8, 3, 8, 8) for _ in range(local)]}


def test_the_loss_is_invariance_plus_sigreg_of_the_same_projections_and_skips_the_predictor():
    m = lejepa_module(weight=0.5)
    images, masks, views = batch()
    out = m.jepa_loss(images, masks, step=3, views=views)
    inv, reg = out.logs["train/invariance"], out.logs["train/sigreg"]
    torch.testing.assert_close(out.loss.detach(), 0.5 * inv + 0.5 * reg)
    # The invariance term by hand: every view's projection against the global views' mean.
    with torch.no_grad():
        pooled = [m.encoder(v).mean(1) for v in views["global"]] + [m.encoder(v).mean(1) for v in views["local"]]
        z = m.projector(torch.cat(pooled)).view(4, 8, 16)
        torch.testing.assert_close(inv, (z[:2].mean(0) - z).square().mean())
    out.loss.backward()
    assert m.encoder.blocks[0].attn.qkv.weight.grad is not None and m.projector[0].weight.grad is not None
    # Without the masked-prediction term the predictor is frozen: DDP would stop on an unused parameter.
    assert all(not p.requires_grad and p.grad is None for p in m.predictor.parameters())
    assert out.features.shape == (8, 32) and not out.features.requires_grad


def test_the_masked_prediction_is_an_optional_extra_term():
    m = lejepa_module(prediction=1.0)
    images, masks, views = batch()
    out = m.jepa_loss(images, masks, views=views)
    s = m.objective.settings
    expected = (1 - s.weight) * out.logs["train/invariance"] + s.weight * out.logs["train/sigreg"] + \
        out.logs["train/prediction"]
    torch.testing.assert_close(out.loss.detach(), expected)
    out.loss.backward()
    assert m.predictor.mask_token.grad is not None


def test_the_projector_has_batchnorm_and_refuses_an_empty_one():
    m = lejepa_module()
    assert any(isinstance(layer, torch.nn.BatchNorm1d) for layer in m.projector)
    with pytest.raises(JEPAError, match="projector needs at least one layer"):
        lejepa_module(projector=[])


def test_the_quadrature_is_fine_enough_for_samples_near_and_far_from_a_gaussian():
    # The references' integral ([0, 3], 17 knots, doubled: 33 on [-3, 3]) against a 2,001-knot one.
    gen = torch.Generator().manual_seed(0)
    x = torch.stack([torch.randn(512, generator=gen), 1.5 * torch.randn(512, generator=gen) + 0.5,
                     torch.rand(512, generator=gen)], dim=1)
    coarse = epps_pulley(x, knots=33, t_max=3.0)
    fine = epps_pulley(x, knots=2001, t_max=3.0)
    torch.testing.assert_close(coarse, fine, rtol=0.02, atol=0.0)


def test_lejepa_without_views_is_one_line(tmp_path):
    cfg = write_tiny_config(tmp_path, steps=2)
    result = run_cli("pretrain", "--config", str(cfg), "--model.objective", "lejepa", "--probe.enabled", "false")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: model.objective lejepa trains on views: set data.views.global_views (2 in the references) and "
        "data.views.local_views")
