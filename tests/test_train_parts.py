import math

import pytest
import torch
from torch import nn

from jepa.metrics import feature_std, rankme
from jepa.models import EncoderConfig, PredictorConfig
from jepa.objectives import jepa_regression_loss
from jepa.train.ema import ema_update_
from jepa.train.module import OptimConfig, PretrainModule
from jepa.train.optim import decay_groups
from jepa.train.schedules import cosine, linear, warmup_cosine


def tiny_module(**kw):
    return PretrainModule(EncoderConfig("tiny", 4, width=32, depth=2, heads=2), PredictorConfig(16, 1, 2),
                          image_size=16, num_classes=kw.pop("num_classes", 3), **kw)


def test_ema_matches_the_formula_and_stops_at_one():
    target = [torch.randn(5, 3), torch.randn(7)]
    online = [torch.randn(5, 3), torch.randn(7)]
    expected = [0.9 * t + 0.1 * o for t, o in zip(target, online)]
    ema_update_(target, online, 0.9)
    for t, e in zip(target, expected):
        torch.testing.assert_close(t, e)
    before = [t.clone() for t in target]
    ema_update_(target, online, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, target))


def test_schedules_hit_their_endpoints():
    assert warmup_cosine(0, 100, 10, 2e-4, 1e-3, 1e-6) == pytest.approx(2e-4)
    assert warmup_cosine(10, 100, 10, 2e-4, 1e-3, 1e-6) == pytest.approx(1e-3)
    assert warmup_cosine(5, 100, 10, 2e-4, 1e-3, 1e-6) == pytest.approx(6e-4)
    assert warmup_cosine(100, 100, 10, 2e-4, 1e-3, 1e-6) == pytest.approx(1e-6)
    assert cosine(0, 50, 0.04, 0.4) == pytest.approx(0.04) and cosine(50, 50, 0.04, 0.4) == pytest.approx(0.4)
    assert cosine(25, 50, 0.04, 0.4) == pytest.approx(0.22)
    assert linear(0, 10, 0.996, 1.0) == 0.996 and linear(10, 10, 0.996, 1.0) == 1.0
    assert linear(20, 10, 0.996, 1.0) == 1.0


def test_no_weight_decay_on_biases_norms_and_tokens():
    m = tiny_module()
    decay, no_decay = decay_groups({"encoder": m.encoder, "predictor": m.predictor})
    names = {id(p): n for n, p in m.named_parameters()}
    decayed = {names[id(p)] for p in decay}
    not_decayed = {names[id(p)] for p in no_decay}
    assert "predictor.mask_token" in not_decayed
    assert all(not n.endswith(".bias") and "norm" not in n for n in decayed)
    assert "encoder.blocks.0.attn.qkv.weight" in decayed and "encoder.blocks.0.norm1.weight" in not_decayed
    assert not any(n.startswith("target_encoder") for n in decayed | not_decayed)


def test_optimizer_groups_and_schedules_applied_per_step():
    m = tiny_module(optim=OptimConfig(lr=1e-3, start_lr=0.0, final_lr=0.0, warmup_steps=10,
                                      weight_decay=0.04, final_weight_decay=0.4), probe_lr=0.5)
    opt = m.configure_optimizers()
    total = 100
    for step in (0, 5, 10, 55, 100):
        lr = warmup_cosine(step, total, 10, 0.0, 1e-3, 0.0)
        wd = cosine(step, total, 0.04, 0.4)
        m.apply_schedules(opt, step, total)
        groups = opt.param_groups
        assert groups[0]["lr"] == pytest.approx(lr) and groups[0]["weight_decay"] == pytest.approx(wd)
        assert groups[1]["lr"] == pytest.approx(lr) and groups[1]["weight_decay"] == 0.0
        assert groups[2]["lr"] == 0.5 and groups[2]["weight_decay"] == 0.0  # the probe is not scheduled


def test_target_is_frozen_ema_copy():
    m = tiny_module(objective={"name": "ema", "start": 0.5, "end": 0.5})
    assert all(not p.requires_grad for p in m.target_encoder.parameters())
    for a, b in zip(m.encoder.parameters(), m.target_encoder.parameters()):
        assert torch.equal(a, b)
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(1.0)
    old = [p.clone() for p in m.target_encoder.parameters()]
    m.after_optimizer_step(0, total_steps=10)  # momentum 0.5 at every step
    for o, t, e in zip(old, m.target_encoder.parameters(), m.encoder.parameters()):
        torch.testing.assert_close(t, 0.5 * o + 0.5 * e)
    m.train()
    assert not m.target_encoder.training


def test_loss_kinds_and_shape_check():
    p, t = torch.zeros(2, 3), torch.full((2, 3), 2.0)
    assert jepa_regression_loss(p, t, "l1").item() == pytest.approx(2.0)
    assert jepa_regression_loss(p, t, "l2").item() == pytest.approx(4.0)
    assert jepa_regression_loss(p, t, "smooth_l1").item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match="shape"):
        jepa_regression_loss(p, torch.zeros(3, 2))


def test_jepa_loss_trains_context_encoder_and_predictor_only():
    torch.manual_seed(0)
    m = tiny_module()
    images = torch.randn(4, 3, 16, 16)
    ctx = torch.tensor([[0, 1, 2, 3, 4]] * 4)
    tgt = torch.tensor([[[10, 11], [12, 13], [14, 15], [8, 9]]] * 4)
    out = m.jepa_loss(images, [(ctx, tgt)])
    assert out.features.shape == (4, 32) and not out.features.requires_grad
    out.loss.backward()
    assert m.encoder.blocks[0].attn.qkv.weight.grad is not None
    assert m.predictor.mask_token.grad is not None
    assert all(p.grad is None for p in m.target_encoder.parameters())


def test_collapse_monitors():
    torch.manual_seed(0)
    iso = torch.randn(512, 16)
    collapsed = torch.full((512, 16), 3.0) + 1e-4 * torch.randn(512, 16)
    assert rankme(iso).item() > 14 and rankme(collapsed).item() < 2
    assert feature_std(iso).item() == pytest.approx(1 / math.sqrt(16), rel=0.15)
    assert feature_std(collapsed).item() < 0.01


def test_online_probe_gets_no_gradient_path_into_encoders():
    m = tiny_module()
    assert isinstance(m.probe[-1], nn.Linear) and m.probe[-1].out_features == 3
    assert tiny_module(num_classes=None).probe is None


def _loss_and_grads(module, images, ctx, tgt):
    module.zero_grad()
    out = module.jepa_loss(images, [(ctx, tgt)])
    out.loss.backward()
    return out.loss.detach(), [p.grad.clone() for p in module.encoder.parameters()]


def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    plain = tiny_module()
    ckpt = tiny_module(activation_checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    images = torch.randn(2, 3, 16, 16)
    ctx = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    tgt = torch.tensor([[[8, 9], [10, 11], [12, 13], [14, 15]]] * 2)
    loss_a, grads_a = _loss_and_grads(plain, images, ctx, tgt)
    loss_b, grads_b = _loss_and_grads(ckpt, images, ctx, tgt)
    assert ckpt.encoder.grad_checkpointing and ckpt.predictor.grad_checkpointing
    torch.testing.assert_close(loss_a, loss_b)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b)


def test_compiled_module_matches_eager():
    torch.manual_seed(0)
    eager = tiny_module()
    compiled = tiny_module(compile=True)
    compiled.load_state_dict(eager.state_dict())
    compiled.setup("fit")
    assert all(b._compiled_call_impl is not None for b in compiled.encoder.blocks)
    images = torch.randn(2, 3, 16, 16)
    ctx = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    tgt = torch.tensor([[[8, 9], [10, 11], [12, 13], [14, 15]]] * 2)
    # The context length changes from batch to batch in training: the compiled step must follow.
    for keep in (4, 3, 2):
        loss_a, grads_a = _loss_and_grads(eager, images, ctx[:, :keep], tgt)
        loss_b, grads_b = _loss_and_grads(compiled, images, ctx[:, :keep], tgt)
        torch.testing.assert_close(loss_a, loss_b, rtol=1e-4, atol=1e-5)
        for a, b in zip(grads_a, grads_b):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_a_collapse_is_warned_once_in_one_line_naming_the_likely_cause(capsys):
    from types import SimpleNamespace

    from jepa.train.probe_eval import ProbeEvaluation

    probe = ProbeEvaluation(collapse_after=2)
    module = SimpleNamespace(objective=SimpleNamespace(name="sigreg"))
    rows = [(0, 2.0), (100, 30.0), (200, 9.0), (300, 8.0), (400, 7.0)]  # the floor is 12.8 of 128
    warned = []
    for step, rank in rows:
        probe.history.append({"step": step, "rankme": rank, "rankme_max": 128})
        probe._check_collapse(probe.history[-1], module, report=True)
        warned.append(capsys.readouterr().err)
    # Step 0 (random weights) never counts; two trained evaluations in a row below the floor do, once.
    assert [bool(w) for w in warned] == [False, False, False, True, False]
    (line,) = warned[3].strip().splitlines()
    assert line.startswith("warning: the encoder's features are collapsing: held-out RankMe 8.0 of 128 (step 0: 2.0) "
                           "at step 300, below a tenth for 2 evaluation(s) in a row; likely cause: SIGReg acts on")
