"""The world model and the planning command: training through Lightning with exact resume, export
and the encoder check, the open-loop table, and jepa plan's four arms (tiny settings)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from jepa.cli import main
from jepa.errors import JEPAError

from conftest import write_tiny_config

# What every world-model run of these tests shares: the run folder, six steps, the data.
RUN = """\
run_dir: {run_dir}
report: false  # the tests draw report.png once, in test_report.py
checkpoint_every_n_steps: 3
trainer:
  max_steps: 6
  accelerator: cpu
  devices: 1
  log_every_n_steps: 1
  enable_progress_bar: false
  enable_model_summary: false
{callbacks}"""
DATA = """\
data:
  train: {episodes}
  encoder: {encoder}
  grid: 2
  blur: 1.0
  batch_size: 8
  val_fraction: 0.25
"""
WORLD_CONFIG = RUN + """\
model:
  predictor: {{width: 32, depth: 1, heads: 2, history: 2}}
  rollout_steps: 2
  warmup_steps: 2
""" + DATA


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    """Six short Two-Rooms episodes and a tiny image encoder export (two pretraining steps)."""
    from jepa.planning.envs import make_env
    from jepa.planning.episodes import write_episodes

    tmp = tmp_path_factory.mktemp("world")
    report = write_episodes(str(tmp / "eps" / "ep-%06d.tar"), 6, 16, 0, make_env("two-rooms"))
    cfg = write_tiny_config(tmp / "enc", steps=2)
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false"]) == 0
    assert main(["export", str(tmp / "enc" / "run" / "checkpoints" / "last.ckpt"), str(tmp / "encoder")]) == 0
    return {"episodes": Path(report.brace_pattern), "encoder": tmp / "encoder", "tmp": tmp}


def write_config(path: Path, template: str, setup: dict[str, Path], stop_at: int | None = None, **extra) -> Path:
    callbacks = ""
    if stop_at is not None:
        callbacks = f"  callbacks:\n    - class_path: helpers.StopAt\n      init_args: {{step: {stop_at}}}\n"
    path.mkdir(parents=True, exist_ok=True)
    cfg = path / "config.yaml"
    cfg.write_text(template.format(run_dir=path / "run", episodes=setup["episodes"], encoder=setup["encoder"],
                                   callbacks=callbacks, **extra))
    return cfg


def world_config(path: Path, setup: dict[str, Path], stop_at: int | None = None) -> Path:
    return write_config(path, WORLD_CONFIG, setup, stop_at)


def losses(run: Path) -> list[tuple[int, float]]:
    with open(run / "metrics.csv") as f:
        return [(int(r["step"]), float(r["train/loss"])) for r in csv.DictReader(f) if r.get("train/loss")]


def test_world_model_trains_exports_and_resumes_exactly(setup, tmp_path, capsys):
    assert main(["world", "--config", str(world_config(tmp_path / "a", setup))]) == 0
    out = capsys.readouterr().out
    assert "held-out open-loop L1 error, horizon 1..8" in out and "position probe" in out
    first = world_config(tmp_path / "b", setup, stop_at=3)
    assert main(["world", "--config", str(first)]) == 0
    assert torch.load(tmp_path / "b" / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    assert main(["world", "--config", str(world_config(tmp_path / "b", setup)), "--ckpt_path", "last"]) == 0
    straight, resumed = losses(tmp_path / "a" / "run"), losses(tmp_path / "b" / "run")
    assert [s for s, _ in straight] == list(range(6))
    assert resumed == straight  # bit-identical per-step losses, not merely close
    summary = json.loads((tmp_path / "b" / "run" / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["steps_this_run"] == 3
    table = summary["open_loop_val"]
    assert set(table) >= {"model", "copy_last", "shuffled_actions"}
    assert all(len(table[k]) == 8 for k in ("model", "copy_last", "shuffled_actions"))
    assert summary["position_probe_error_q99"] > 0


def test_world_model_refuses_another_encoder_and_another_architecture(setup, tmp_path, capsys):
    from jepa.planning.perception import Perception
    from jepa.planning.world_export import load_world_model

    assert main(["world", "--config", str(world_config(tmp_path, setup))]) == 0
    world_dir = tmp_path / "run" / "world"
    model, config = load_world_model(world_dir, Perception.load(setup["encoder"]).encoder_id)
    assert config["rep_dim"] == 4 * 32 and model.action_dim == 2 and config["kind"] == "fast"
    with pytest.raises(JEPAError, match="trained on encoder .* not on this encoder"):
        load_world_model(world_dir, "0" * 64)
    with pytest.raises(JEPAError, match="holds a fast world model where a slow one is needed"):
        load_world_model(world_dir, kind="slow")
    # The kind decides what is built; a kind this version does not know is one line, not a crash.
    saved = json.loads((world_dir / "world.json").read_text())
    (world_dir / "world.json").write_text(json.dumps({**saved, "kind": "graph"}))
    with pytest.raises(JEPAError, match="holds a world model of kind 'graph', which this version of jepa does not"):
        load_world_model(world_dir)
    (world_dir / "world.json").write_text(json.dumps({k: v for k, v in saved.items() if k != "kind"}))
    assert load_world_model(world_dir)[1].get("kind") is None  # exports from before kinds: a fast model
    (world_dir / "world.json").write_text(json.dumps(saved))
    capsys.readouterr()
    code = main(["world", "--config", str(world_config(tmp_path, setup)), "--ckpt_path", "last",
                 "--model.predictor.width", "64", "--trainer.max_steps", "8"])
    err = capsys.readouterr().err
    assert code == 2 and "another model.predictor" in err and len(err.strip().splitlines()) == 1
    code = main(["world", "--config", str(world_config(tmp_path, setup)), "--ckpt_path", "last",
                 "--data.blur", "2.0", "--trainer.max_steps", "8"])
    err = capsys.readouterr().err
    assert code == 2 and "another model.blur" in err and len(err.strip().splitlines()) == 1
    assert config["blur"] == 1.0 and config["grid"] == 2  # how jepa plan perceives as in training


def test_perception_blur_spreads_an_impulse_by_sigma_and_keeps_flat_images(setup):
    from jepa.planning.perception import Perception, gaussian_kernel, separable_blur

    impulse = torch.zeros(1, 3, 33, 33)
    impulse[:, :, 16, 16] = 1.0
    out = separable_blur(impulse, gaussian_kernel(2.0))[0, 0]
    axis = torch.arange(33.0) - 16
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert (out.sum(0) * axis.square()).sum().item() == pytest.approx(4.0, rel=0.02)  # variance sigma^2
    flat = torch.full((1, 3, 20, 20), 0.3)
    assert torch.allclose(separable_blur(flat, gaussian_kernel(3.0)), flat, atol=1e-6)  # edges reflected, not dark
    encoder = Perception.load(setup["encoder"]).encoder
    frames = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    assert not torch.allclose(Perception(encoder, blur=1.5).encode(frames), Perception(encoder).encode(frames))
    with pytest.raises(JEPAError, match="sigma in pixels"):
        Perception(encoder, blur=-1.0)
    with pytest.raises(JEPAError, match="wider than the encoder's"):
        Perception(encoder, blur=50.0)


def test_world_model_is_causal_and_starts_as_copy_last():
    from jepa.planning.world_model import WorldModel, WorldModelConfig

    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(width=32, depth=2, heads=2, history=3), rep_dim=8, action_dim=2)
    reps, actions = torch.randn(4, 3, 8), torch.randn(4, 3, 2)
    assert torch.allclose(model(reps, actions), reps)  # zero-initialised head: nothing moves
    torch.nn.init.normal_(model.head.weight)
    for block in model.blocks:
        torch.nn.init.normal_(block.modulation.weight, std=0.1)
    base = model(reps, actions)
    changed = reps.clone()
    changed[:, 2] += 1.0  # the future cannot change earlier predictions
    assert torch.allclose(model(changed, actions)[:, :2], base[:, :2], atol=1e-6)
    assert not torch.allclose(model(changed, actions)[:, 2], base[:, 2])
    # Open-loop unrolling from two known frames equals stepping by hand.
    future = torch.randn(4, 3, 2)
    rolled = model.unroll(reps[:, :2], actions[:, :1], future)
    first = model(reps[:, :2], torch.cat([actions[:, :1], future[:, :1]], 1))[:, -1]
    assert rolled.shape == (4, 3, 8) and torch.allclose(rolled[:, 0], first, atol=1e-6)


def test_one_frame_unroll_equals_stepping_by_hand():
    # With one frame of history, unroll takes its planning path (conditioning of every step at once,
    # standard units kept between steps); it must imagine what step-by-step prediction does.
    from jepa.planning.world_model import WorldModel, WorldModelConfig

    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(width=32, depth=2, heads=2, history=1), rep_dim=8, action_dim=2)
    torch.nn.init.normal_(model.head.weight, std=0.3)
    for block in model.blocks:
        torch.nn.init.normal_(block.modulation.weight, std=0.1)
    model.set_rep_stats(torch.randn(8), torch.rand(8) + 0.5)
    model.set_action_stats(torch.randn(2), torch.rand(2) + 0.5)
    rep, actions = torch.randn(5, 1, 8), torch.randn(5, 4, 2)
    by_hand, frame = [], rep
    for i in range(4):
        frame = model.step(frame, actions[:, i:i + 1])[:, None]
        by_hand.append(frame[:, 0])
    rolled = model.unroll(rep, actions[:, :0], actions)
    assert rolled.shape == (5, 4, 8) and not torch.allclose(rolled[:, 0], rolled[:, 3])
    torch.testing.assert_close(rolled, torch.stack(by_hand, 1), atol=1e-5, rtol=1e-5)


def test_plan_reports_four_arms_and_writes_pictures(setup, tmp_path, capsys):
    assert main(["world", "--config", str(world_config(tmp_path, setup))]) == 0
    out = tmp_path / "plan"
    code = main(["plan", "--encoder", str(setup["encoder"]), "--world", str(tmp_path / "run" / "world"),
                 "--episodes", "2", "--steps", "3", "--samples", "16", "--iterations", "2",
                 "--keep-out", "0.7", "0.7", "0.8", "0.8", "--margin", "0.05", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "plan.json").read_text())
    assert list(report["arms"]) == ["random", "greedy", "simulator", "world_model"]
    for arm in report["arms"].values():
        assert arm["episodes"] == 2 and 0.0 <= arm["success_rate"] <= 1.0 and arm["violations"] >= 0
    assert report["arms"]["simulator"]["plan_ms_mean"] > 0
    assert report["settings"]["perception"] == {"grid": 2, "blur": 1.0}  # read from the world model
    assert report["settings"]["goal"] == "sum"  # arriving sooner costs less: the default
    assert (out / "trajectories.png").stat().st_size > 0 and (out / "energy.png").stat().st_size > 0
    assert "world_model" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--env", "mars", "--arms", "random"], "unknown environment 'mars'"),
    (["--arms", "random", "--keep-out", "0", "0", "1", "1"], "covers the whole"),
    (["--arms", "world_model"], "needs --encoder and --world"),
])
def test_plan_bad_input_is_one_line(args, message, tmp_path, capsys):
    code = main(["plan", "--episodes", "1", "--steps", "1", "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_world_model_with_other_actions_is_refused(setup):
    from jepa.planning.agent import AgentSettings
    from jepa.planning.envs import make_env
    from jepa.planning.evaluate import LearnedAgent, world_model_episode
    from jepa.planning.perception import Perception
    from jepa.planning.planners import CEM, CEMSettings
    from jepa.planning.world_model import WorldModel, WorldModelConfig

    perception = Perception.load(setup["encoder"])
    world = WorldModel(WorldModelConfig(width=32, depth=1, heads=2, history=1), perception.rep_dim, action_dim=3)
    with pytest.raises(JEPAError, match="takes 3-D actions but two-rooms acts in 2-D"):
        world_model_episode(make_env("two-rooms"), 0, CEM(CEMSettings(samples=8, iterations=1, elites=2)),
                            AgentSettings(step_budget=1), LearnedAgent(perception, world))


def test_two_rooms_keep_out_is_never_entered_over_50_episodes():
    """The planner on the true dynamics with a keep-out box across the door's exit: no executed step
    enters it (judged on the true state), and the agent still gets through."""
    from jepa.planning.agent import AgentSettings
    from jepa.planning.envs import TwoRoomsConfig, make_env
    from jepa.planning.evaluate import evaluate
    from jepa.planning.planners import CEM, CEMSettings

    env = make_env("two-rooms", config=TwoRoomsConfig(keep_out=(0.56, 0.2, 0.72, 0.46)))
    runs = evaluate(env, range(50), ["simulator"], lambda: CEM(CEMSettings(samples=64, iterations=6, elites=8)),
                    AgentSettings(step_budget=40), margin=0.1)
    summary = runs["simulator"]["summary"]
    assert summary["episodes"] == 50 and summary["violations"] == 0
    paths = [e.path for e in runs["simulator"]["episodes"]]
    inside = [((p[:, 0] >= 0.56) & (p[:, 0] <= 0.72) & (p[:, 1] >= 0.2) & (p[:, 1] <= 0.46)).any() for p in paths]
    assert not any(inside)
    assert summary["success_rate"] >= 0.8


def test_world_bad_input_is_one_line(setup, tmp_path, capsys):
    import tarfile

    bare = tmp_path / "frames.tar"  # a shard of frames only: no actions
    with tarfile.open(bare, "w") as tar:
        tar.add(next((setup["tmp"] / "eps").glob("*.tar")), arcname="x.mp4")
    cases = [(["--data.encoder", str(tmp_path / "missing")], "does not exist"),
             (["--data.train", str(tmp_path / "nothing.tar")], "does not exist"),
             (["--data.train", str(bare)], "has no action.npy")]
    for args, message in cases:
        code = main(["world", "--config", str(world_config(tmp_path / "w", setup)), *args])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_plan_keep_out_with_the_probe_margin_plays_episodes_clear_of_it(setup, tmp_path, capsys):
    """Starts and goals keep clear of the widest margin any arm uses; one too wide for the arena is one line."""
    from jepa.planning.envs import make_env
    from jepa.planning.world_export import load_position_probe

    assert main(["world", "--config", str(world_config(tmp_path, setup))]) == 0
    world_dir = tmp_path / "run" / "world"
    base = ["plan", "--encoder", str(setup["encoder"]), "--world", str(world_dir), "--episodes", "2", "--steps", "2",
            "--samples", "16", "--iterations", "1", "--keep-out", "0.7", "0.7", "0.8", "0.8", "--out", str(tmp_path / "p")]
    assert main([*base, "--margin", "0.15"]) == 0
    report = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert report["settings"]["margin"] == 0.15
    starts = [e["start"] for e in report["episodes"]["world_model"]]
    gaps = [(max(0.7 - x, 0.0, x - 0.8), max(0.7 - y, 0.0, y - 0.8)) for x, y in starts]
    assert all((dx * dx + dy * dy) ** 0.5 > 0.15 for dx, dy in gaps)  # clear of the square widened by the margin
    _, error = load_position_probe(world_dir)
    assert main([*base, "--overwrite"]) == 0  # no --margin: the probe's held-out 99% error plus half a step
    report = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert report["settings"]["margin"] == pytest.approx(error + make_env("two-rooms").max_action_norm / 2)
    capsys.readouterr()
    assert main([*base, "--overwrite", "--margin", "0.8"]) == 2
    err = capsys.readouterr().err
    assert "covers the whole" in err and len(err.strip().splitlines()) == 1


def test_world_perception_compares_grids_and_blurs(setup, capsys):
    from jepa.planning.perception_bench import score_perceptions

    assert main(["world", "perception", "--encoder", str(setup["encoder"]), "--episodes", str(setup["episodes"]),
                 "--grid", "1", "2", "--blur", "0", "1.5"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].split()[:3] == ["grid", "blur", "dim"] and len(rows) == 5
    scores = score_perceptions(str(setup["encoder"]), str(setup["episodes"]), [2], [0.0, 1.5])
    assert [(s.grid, s.blur, s.dim) for s in scores] == [(2, 0.0, 128), (2, 1.5, 128)]
    for s in scores:
        assert 0 < s.probe_mean <= s.probe_q99 and -1 <= s.distance_spearman <= 1
    assert scores[0].probe_mean != scores[1].probe_mean  # the blur reaches the encoder
    assert scores[0].block_mean is None and "angle deg" not in rows[0]  # no object pose in Two-Rooms states


def test_world_perception_reads_the_push_t_blocks_pose(setup, tmp_path, capsys):
    pytest.importorskip("gym_pusht")
    from jepa.planning.perception_bench import score_perceptions
    from jepa.planning.push_t_data import write_replays

    from conftest import SHARED_DATA

    shard = SHARED_DATA / "pusht" / "pusht-000000.tar"
    if not shard.exists():
        pytest.skip("../shared/data/pusht not present")
    write_replays(str(shard), str(tmp_path / "ep-%06d.tar"), 6)
    (score,) = score_perceptions(str(setup["encoder"]), str(tmp_path / "ep-000000.tar"), [2], [0.0])
    assert score.block_mean > 0 and 0 < score.angle_mean_deg <= 180
    assert main(["world", "perception", "--encoder", str(setup["encoder"]), "--episodes",
                 str(tmp_path / "ep-000000.tar"), "--grid", "2", "--blur", "0"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[-2:] == ["angle", "deg"]


SLOW_CONFIG = RUN + """\
model:
  fast_world: {fast_world}
  predictor: {{steps: 3, code_dim: 2, width: 32, depth: 1, heads: 2, bank_size: 16}}
  macro_steps: 2
  warmup_steps: 2
""" + DATA


@pytest.fixture(scope="module")
def fast_world(setup) -> Path:
    """One tiny fast world model the slow-model tests sit on."""
    assert main(["world", "--config", str(world_config(setup["tmp"] / "fast", setup))]) == 0
    return setup["tmp"] / "fast" / "run" / "world"


def slow_config(path: Path, setup: dict[str, Path], fast: Path, stop_at: int | None = None) -> Path:
    return write_config(path, SLOW_CONFIG, setup, stop_at, fast_world=fast)


def test_slow_world_model_trains_resumes_exactly_and_sits_on_its_fast_model(setup, fast_world, tmp_path, capsys):
    from jepa.planning.perception import Perception
    from jepa.planning.world_export import load_slow_model, load_world_model

    assert main(["world", "slow", "--config", str(slow_config(tmp_path / "a", setup, fast_world))]) == 0
    out = capsys.readouterr().out
    assert "held-out open-loop L1 error per macro-action of 3 steps" in out and "copy-current" in out
    assert main(["world", "slow", "--config", str(slow_config(tmp_path / "b", setup, fast_world, stop_at=3))]) == 0
    assert main(["world", "slow", "--config", str(slow_config(tmp_path / "b", setup, fast_world)),
                 "--ckpt_path", "last"]) == 0
    straight, resumed = losses(tmp_path / "a" / "run"), losses(tmp_path / "b" / "run")
    assert [s for s, _ in straight] == list(range(6)) and resumed == straight  # bit-identical
    summary = json.loads((tmp_path / "b" / "run" / "summary.json").read_text())
    assert summary["steps"] == 6 and len(summary["open_loop_val"]["model"]) >= 1
    # The export: kind slow, on this encoder and this fast model; its bank holds codes of training chunks.
    encoder_id = Perception.load(setup["encoder"]).encoder_id
    slow_dir = tmp_path / "b" / "run" / "world"
    model, config = load_slow_model(slow_dir, encoder_id, fast_world)
    assert config["kind"] == "slow" and config["bank_chunks"] > 0 and model.bank.shape == (16, 2)
    assert model.bank.abs().max() <= 1 and model.bank.std(0).min() > 0  # tanh codes, not all one chunk
    reps = torch.randn(5, model.rep_dim)
    assert model(reps, model.bank[:2].expand(5, 2, 2)).shape == (5, 2, model.rep_dim)
    # Refusals, each one line: a slow model as the fast one, another fast model, another encoder.
    with pytest.raises(JEPAError, match="holds a slow world model where a fast one is needed"):
        load_world_model(slow_dir, encoder_id, kind="fast")
    with pytest.raises(JEPAError, match="sits on another fast world model"):
        load_slow_model(slow_dir, encoder_id, tmp_path / "a" / "run" / "world")  # a slow folder: another checksum
    with pytest.raises(JEPAError, match="not on this encoder"):
        load_slow_model(slow_dir, "0" * 64, fast_world)
    capsys.readouterr()
    code = main(["world", "slow", "--config", str(slow_config(tmp_path / "c", setup, fast_world)),
                 "--model.fast_world", str(slow_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "holds a slow world model, not a fast one" in err and len(err.strip().splitlines()) == 1
    # The bank's action chunks are kept: another slow model can encode them (an ensemble's shared codes).
    assert model.bank_actions.shape == (16, 3, 2) and torch.allclose(model.encode(model.bank_actions), model.bank)
    # Two slow models plan as one ensemble; plan.json names both.
    out = tmp_path / "plan"
    code = main(["plan", "--encoder", str(setup["encoder"]), "--world", str(fast_world), "--hierarchy", "2",
                 "--slow", str(slow_dir), str(tmp_path / "a" / "run" / "world"), "--arms", "hierarchical",
                 "--episodes", "1", "--steps", "2", "--low-samples", "8", "--low-iterations", "1", "--workers", "1",
                 "--out", str(out)])
    plan = json.loads((out / "plan.json").read_text())
    assert code == 0 and len(plan["settings"]["slow"]) == 2 and plan["settings"]["disagreement"] == 1.0


def test_a_slow_model_exported_before_bank_chunks_were_kept_loads_and_is_refused_as_an_ensembles_first(tmp_path):
    from safetensors.torch import load_file, save_file

    from jepa.planning.slow_ensemble import SlowEnsemble
    from jepa.planning.slow_model import SlowModelConfig, SlowWorldModel

    config = SlowModelConfig(steps=3, code_dim=2, width=16, depth=1, heads=2, bank_size=4)
    state = {k: v for k, v in SlowWorldModel(config, 8, 2).state_dict().items() if k != "bank_actions"}
    save_file(state, str(tmp_path / "old.safetensors"))
    old = SlowWorldModel(config, 8, 2)
    old.load_state_dict(load_file(str(tmp_path / "old.safetensors")))  # strict: the missing chunks are filled
    assert old.bank_actions.isnan().all()
    assert SlowEnsemble([old]).bank.shape == (4, 2)  # alone it plans as before
    with pytest.raises(JEPAError, match="holds no bank chunks"):
        SlowEnsemble([old, SlowWorldModel(config, 8, 2)])
