"""The MLP position probe that the keep-out guardrail reads: it must read positions that a linear map
cannot (the reason it exists), be seeded, and round-trip through safetensors with the kind recovered
from the tensors (ridge probes of older exports still load)."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from jepa.errors import JEPAError
from jepa.planning.costs import PositionProbe
from jepa.planning.mlp_probe import MLPPositionProbe, load_probe_state


def _rooms(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions seen through features that hold them non-linearly: each coordinate as a phase
    (cos, sin), as a pooled grid cell's features turn with the agent rather than slide."""
    g = torch.Generator().manual_seed(seed)
    pos = 0.05 + 0.9 * torch.rand(n, 2, generator=g)
    phase = 2 * math.pi * 0.9 * pos
    feats = torch.cat([phase.cos(), phase.sin()], dim=1)
    return feats + 0.002 * torch.randn(feats.shape, generator=g), pos


def test_mlp_probe_reads_what_a_ridge_probe_cannot():
    reps, pos = _rooms(3000, 0)
    held_reps, held_pos = _rooms(1000, 1)
    ridge = PositionProbe().fit(reps, pos).error_quantile(held_reps, held_pos)
    mlp = MLPPositionProbe(hidden=64).fit(reps, pos)
    error = mlp.error_quantile(held_reps, held_pos)
    assert error < 0.05 and error < 0.5 * ridge, (error, ridge)
    assert mlp(held_reps.reshape(10, 100, -1)).shape == (10, 100, 2)


def test_mlp_probe_is_seeded_and_round_trips(tmp_path):
    reps, pos = _rooms(600, 0)
    a = MLPPositionProbe(hidden=16).fit(reps, pos, steps=50, seed=3)
    b = MLPPositionProbe(hidden=16).fit(reps, pos, steps=50, seed=3)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    save_file(a.state_dict(), tmp_path / "mlp.safetensors")
    loaded = load_probe_state(load_file(tmp_path / "mlp.safetensors"))
    assert isinstance(loaded, MLPPositionProbe) and loaded.hidden == 16
    assert torch.equal(loaded(reps), a(reps))
    ridge = PositionProbe().fit(reps, pos)
    save_file(ridge.state_dict(), tmp_path / "ridge.safetensors")
    old = load_probe_state(load_file(tmp_path / "ridge.safetensors"))
    assert type(old) is PositionProbe and torch.equal(old(reps), ridge(reps))
    with pytest.raises(JEPAError, match="lacks"):
        MLPPositionProbe().load_state_dict(ridge.state_dict())
    with pytest.raises(JEPAError, match="not fitted"):
        MLPPositionProbe()(reps)


def test_mlp_probe_gradient_reaches_the_representation():
    reps, pos = _rooms(600, 0)
    probe = MLPPositionProbe(hidden=16).fit(reps, pos, steps=50)
    x = reps[:4].clone().requires_grad_()
    probe(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_a_feature_constant_in_training_gets_no_weight_and_kinds_do_not_mix():
    reps, pos = _rooms(600, 0)
    reps = torch.cat([reps, torch.ones(600, 1)], dim=1)  # constant over the training frames
    probe = MLPPositionProbe(hidden=16).fit(reps, pos, steps=50)
    moved = reps.clone()
    moved[:, -1] += 1e-3
    assert torch.equal(probe(moved), probe(reps))
    with pytest.raises(JEPAError, match="hidden layers"):
        PositionProbe().load_state_dict(probe.state_dict())
