"""Anti-collapse objectives: the regularisers' math, the objective settings, and short real runs."""

import csv
import json
import math

import pytest
import torch

from jepa.cli import main
from jepa.errors import JEPAError
from jepa.objectives import (
    covariance_loss,
    epps_pulley,
    motion_weights,
    sigreg,
    variance_loss,
    weighted_regression_loss,
)
from jepa.train.objective import OBJECTIVES, build_objective

from conftest import write_tiny_config
from test_pretrain import run_cli


def test_epps_pulley_of_a_constant_matches_the_closed_form():
    # A sample that is constant at 0 has the characteristic function 1, so the statistic is
    # N * integral of (1 - exp(-t^2/2))^2 exp(-t^2/2) dt over [-5, 5] (same trapezoid rule).
    n = 100
    t = torch.linspace(-5, 5, 17)
    phi = torch.exp(-0.5 * t * t)
    expected = n * torch.trapezoid((1 - phi) ** 2 * phi, t)
    torch.testing.assert_close(epps_pulley(torch.zeros(n, 3)), expected.repeat(3))


def test_sigreg_is_small_for_isotropic_gaussians_and_large_for_collapse():
    gen = torch.Generator().manual_seed(0)
    gauss = torch.randn(1024, 64, generator=gen)
    value = lambda x: sigreg(x, 128, torch.Generator().manual_seed(1)).item()  # noqa: E731
    iso = value(gauss)
    assert iso < 3  # of order 1 for N(0, I), whatever the batch size
    assert value(torch.randn(4096, 64, generator=gen)) < 3
    assert value(torch.full((1024, 64), 0.5)) > 100 * iso  # every sample the same: full collapse
    assert value(gauss[:, :1].repeat(1, 64)) > 30 * iso  # one dimension used: dimensional collapse
    assert value(3 * gauss) > 30 * iso  # the wrong scale is not isotropic N(0, 1) either
    # Seeded directions: the same step gives the same value (resume), another step another sketch.
    assert value(gauss) == iso
    assert sigreg(gauss, 128, torch.Generator().manual_seed(2)).item() != iso


def test_vicreg_terms_against_closed_forms():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(4096, 8, generator=gen)
    assert variance_loss(2 * z).item() == 0.0  # every std above gamma = 1
    assert variance_loss(torch.zeros(16, 8)).item() == pytest.approx(1 - math.sqrt(1e-4))
    assert covariance_loss(z).item() < 0.01  # independent dimensions
    a = torch.randn(4096, 1, generator=gen)
    var = a.var().item()
    # Two copies of one column: the off-diagonal covariances are var twice, divided by D = 2.
    assert covariance_loss(torch.cat([a, a], 1)).item() == pytest.approx(var**2, rel=1e-4)


def test_motion_weights_favour_the_tokens_where_pixels_change():
    clips = torch.zeros(2, 3, 4, 8, 8)
    clips[:, :, 2:, :4, :4] = 1.0  # a square appears in the top-left patch at frame 2
    w = motion_weights(clips, tubelet=2, patch=4, strength=1.0)  # 2 x 2 x 2 tokens in (t, h, w) order
    assert w.shape == (2, 8) and torch.allclose(w.mean(dim=1), torch.ones(2))
    assert w[0, 4] == w.max() and (w[0, [1, 2, 3, 5, 6, 7]] == 0).all()  # only the second tubelet of that patch changes
    half = motion_weights(clips, tubelet=2, patch=4, strength=0.5)
    assert torch.allclose(half, 0.5 + 0.5 * w)
    assert torch.equal(motion_weights(clips, 2, 4, strength=0.0), torch.ones(2, 8))
    pred, target = torch.zeros(2, 8, 5), torch.ones(2, 8, 5)
    assert weighted_regression_loss(pred, target, torch.ones(2, 8), "l1") == 1.0
    with pytest.raises(ValueError, match="at least 2 frames"):
        motion_weights(torch.zeros(2, 3, 8, 8), 1, 4, 1.0)


def test_every_registered_objective_is_built_by_name_and_settings():
    assert set(OBJECTIVES) >= {"ema", "sigreg", "vicreg", "lejepa"}
    assert build_objective("sigreg").settings.weight == 0.05
    assert build_objective({"name": "sigreg", "weight": 0.2, "slices": 64}).settings.slices == 64
    assert build_objective({"start": 0.99}).name == "ema"  # the default objective


@pytest.mark.parametrize("spec, message", [
    ("byol", "model.objective 'byol' is not an objective: choose one of ema, lejepa, sigreg, vicreg"),
    ({"name": "sigreg", "start": 0.99}, "model.objective.start is not a setting of sigreg (it is a setting of ema)"),
    ({"name": "ema", "weight": 0.1}, "model.objective.weight is not a setting of ema (it is a setting of lejepa and sigreg)"),
    ({"name": "vicreg", "momentum": 1}, "model.objective.momentum is not a setting of vicreg (no objective has it)"),
    ({"name": "sigreg", "weight": 2.0}, "weight must be in [0, 1]"),
])
def test_bad_objective_settings_are_refused(spec, message):
    with pytest.raises(JEPAError) as err:
        build_objective(spec)
    assert message in str(err.value)


def test_a_bad_objective_on_the_command_line_is_one_line(tmp_path):
    cfg = write_tiny_config(tmp_path, steps=1)
    result = run_cli("pretrain", "--config", str(cfg), "--model.objective", "{name: sigreg, start: 0.99}")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "model.objective.start is not a setting of sigreg (it is a setting of ema)" in lines[0]


def _monitor(run_dir, key):
    with open(run_dir / "metrics.csv", newline="") as f:
        return [float(r[key]) for r in csv.DictReader(f) if r.get(key)]


@pytest.mark.parametrize("objective", ["ema", "sigreg", "vicreg", "lejepa"])
def test_each_objective_trains_without_collapse_and_exports_its_encoder(tmp_path, objective):
    cfg = write_tiny_config(tmp_path, steps=30)
    # lejepa trains on views alone: two global and two local crops, colour-jittered.
    views = ["--data.views", "{global_views: 2, local_views: 2, local_size: 8, color: {jitter: 0.8, grayscale: 0.2}}"]
    assert main(["pretrain", "--config", str(cfg), "--model.objective", objective, "--probe.enabled", "false",
                 "--data.batch_size", "32", *(views if objective == "lejepa" else [])]) == 0
    run = tmp_path / "run"
    rank, std = _monitor(run, "monitor/rankme"), _monitor(run, "monitor/feature_std")
    losses = _monitor(run, "loss")
    assert all(math.isfinite(v) for v in losses) and min(losses[-5:]) < losses[0]
    # The pooled features of the evaluated encoder keep their spread and their effective rank.
    assert min(rank[-5:]) > 0.5 * rank[0] and min(rank[-5:]) > 3, rank
    assert min(std[-5:]) > 0.3 * std[0], std
    if objective != "ema":
        reg = _monitor(run, "train/variance" if objective == "vicreg" else "train/sigreg")
        assert sum(reg[-5:]) < sum(reg[:5])  # the regulariser is doing its job
    # Export takes the encoder the objective evaluates: the EMA target, or the one online encoder.
    assert main(["export", str(run / "checkpoints" / "last.ckpt"), str(tmp_path / "export")]) == 0
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["objective"] == objective
    assert config["which"] == ("target" if objective == "ema" else "context")
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    prefix = "target_encoder." if objective == "ema" else "encoder."
    from safetensors.torch import load_file

    exported = load_file(str(tmp_path / "export" / "model.safetensors"))
    assert torch.equal(exported["blocks.0.attn.qkv.weight"], ckpt["state_dict"][prefix + "blocks.0.attn.qkv.weight"])
    # vicreg regularises the target tokens themselves (no projector) unless told regularize: pooled
    assert ("projector.0.weight" in ckpt["state_dict"]) == (objective in ("sigreg", "lejepa"))
    if objective != "ema":
        result = run_cli("export", str(run / "checkpoints" / "last.ckpt"), str(tmp_path / "t"), "--which", "target")
        assert result.returncode == 2 and "use --which context" in result.stderr


def test_a_budget_fixes_max_steps_once_records_it_and_a_resume_keeps_it(tmp_path):
    import time

    import yaml

    cfg = write_tiny_config(tmp_path, steps=1, extra="")
    # Stopped right after max_steps is fixed, so the checkpoint carries it.
    stop = "  callbacks:\n    - class_path: helpers.StopAfterBudget\n"
    cfg.write_text(cfg.read_text().replace("  enable_model_summary: false\n", "  enable_model_summary: false\n" + stop))
    t0 = time.monotonic()
    first = run_cli("pretrain", "--config", str(cfg), "--budget", "40s", "--probe.enabled", "false")
    assert first.returncode == 0, first.stderr[-2000:]
    assert time.monotonic() - t0 < 40
    run = tmp_path / "run"
    budget = json.loads((run / "summary.json").read_text())["budget"]
    fixed = budget["max_steps"]
    stopped = json.loads((run / "summary.json").read_text())["steps"]
    assert fixed > stopped >= 13 and budget["step_s"] > 0 and budget["budget_s"] == 40
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_steps"] == fixed
    # The resumed run takes max_steps from the checkpoint (no new timing), so its schedules are the
    # ones the first part ran with, and it goes on to that step.
    cfg.write_text(cfg.read_text().replace(stop, ""))
    resumed = run_cli("pretrain", "--config", str(cfg), "--budget", "40s", "--probe.enabled", "false",
                      "--ckpt_path", "auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == fixed and summary["budget"]["max_steps"] == fixed
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_steps"] == fixed


def test_a_bad_budget_is_one_line(tmp_path):
    cfg = write_tiny_config(tmp_path, steps=1)
    result = run_cli("pretrain", "--config", str(cfg), "--budget", "15x")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "--budget '15x' is not a duration" in lines[0], result.stderr


@pytest.mark.parametrize("name", ["sigreg", "vicreg"])
def test_the_projector_cannot_hide_a_collapsed_encoder(name):
    # Embeddings that differ only by tiny noise (a collapsed encoder) must still look collapsed to
    # the regulariser after the projector: a BatchNorm inside it would blow the noise up to unit variance.
    from jepa.train.objective.base import projector

    torch.manual_seed(0)
    head = projector(32, build_objective(name).settings.projector)
    collapsed = torch.ones(256, 32) + 1e-4 * torch.randn(256, 32)
    with torch.no_grad():
        out = head(collapsed)
        if name == "sigreg":
            gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
            # as far from N(0, I) as a single point: the test statistic of a constant sample
            assert sigreg(out, 64, gen()) > 0.9 * sigreg(torch.zeros_like(out), 64, gen())
        else:
            assert variance_loss(out) > 0.98  # 0.99 for no spread at all (the eps in the std)


def test_token_regularisers_test_each_position_across_the_batch():
    # Tokens that encode only their position (every image alike at each position) are collapsed,
    # however far apart the positions lie.
    torch.manual_seed(0)
    per_position = torch.randn(1, 8, 16).expand(256, 8, 16)
    healthy = torch.randn(256, 8, 16)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert sigreg(per_position, 64, gen()) > 50 * sigreg(healthy, 64, gen())
    assert variance_loss(per_position) > 0.98 and variance_loss(healthy) < 0.1
    # [N, P, D]: the mean over positions of each position's own statistic
    assert torch.allclose(covariance_loss(healthy), torch.stack([covariance_loss(healthy[:, p]) for p in range(8)]).mean())


@pytest.mark.parametrize("name", ["sigreg", "vicreg"])
def test_regularize_tokens_hands_the_target_tokens_to_the_regulariser(name):
    objective = build_objective({"name": name, "regularize": "tokens", "positions": 3})
    head = objective.modules(_TinyEncoder())["projector"]
    assert isinstance(head, torch.nn.Identity)  # nothing between the tokens and the regulariser
    tokens = torch.randn(4, 10, 32, requires_grad=True)
    first, again, other = (objective.regularized(tokens, [], s)[0] for s in (7, 7, 8))
    assert first.shape == (4, 3, 32) and torch.equal(first, again)  # seeded by the step: resume repeats it
    assert not torch.equal(first, other)
    pooled = build_objective({"name": name, "regularize": "pooled"})
    assert pooled.regularized(tokens, [], 7)[0].shape == (4, 32)


class _TinyEncoder:
    embed_dim = 32
