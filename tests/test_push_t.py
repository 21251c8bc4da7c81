"""Push-T in gym-pusht's simulation: exact states, the recorded episodes replayed, the benchmark's tasks
and the arms that need no learned model."""

from __future__ import annotations

import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, write_tiny_config
from test_pretrain import run_main as run_cli

pytest.importorskip("gym_pusht")

from jepa.errors import JEPAError  # noqa: E402
from jepa.planning.envs import make_env  # noqa: E402
from jepa.planning.envs.push_t import PushTConfig, Simulator, keypoints, succeeded  # noqa: E402
from jepa.planning.push_t_tasks import make_tasks, read_recorded, replay_drift  # noqa: E402

SHARD = SHARED_DATA / "pusht" / "pusht-000000.tar"
needs_pusht = pytest.mark.skipif(not SHARD.exists(), reason="../shared/data/pusht not present")


@pytest.fixture(scope="module")
def recorded():
    return read_recorded(str(SHARD), max_episodes=10)


def test_a_state_is_set_exactly_where_gym_pushts_own_reset_moves_the_block():
    import gym_pusht.envs.pusht as pusht

    state = np.array([100.0, 400.0, 300.0, 250.0, 2.0], np.float32)
    legacy = pusht.PushTEnv(obs_type="state")
    got, _ = legacy.reset(options={"reset_to_state": state})
    assert np.abs(got[2:4] - state[2:4]).max() > 5  # position before angle: the block turns about its centre
    env = make_env("push-t")
    env.reset(options={"start": state, "goal": state})
    assert np.abs(env.state - state).max() < 1e-3
    with pytest.raises(ValueError, match="inside the block"):
        env.set_state([300.0, 250.0, 300.0, 250.0, 0.0])  # the pusher inside the block


@needs_pusht
def test_the_control_step_is_gym_pushts_and_step_states_is_a_step_from_rest(recorded):
    import gym_pusht.envs.pusht as pusht

    ep = recorded[0]
    ref = pusht.PushTEnv(obs_type="state")
    ref.reset(seed=0)
    ref._setup()
    ref.agent.position = ep.states[0, :2].tolist()
    ref.block.angle = float(ep.states[0, 4])
    ref.block.position = ep.states[0, 2:4].tolist()
    ref.space.step(ref.dt)
    sim = Simulator(96)
    sim.place(ep.states[0])
    for t in range(30):
        obs, *_ = ref.step(ep.targets[t])
        sim.control(tuple(ep.targets[t]))
        assert np.abs(obs - sim.state()).max() < 1e-3, t
    # One environment step from a state at rest is step_states of that state.
    env = make_env("push-t")
    env.reset(options={"start": ep.states[0], "goal": ep.states[-1]})
    action = np.array([0.4, -0.3], np.float32)
    _, _, _, _, info = env.step(action)
    batch = env.step_states(torch.tensor(ep.states[0], dtype=torch.float32)[None].repeat(2, 1),
                            torch.tensor(np.array([action, [0.0, 0.0]])))
    assert torch.allclose(batch[0], torch.tensor(info["state"]), atol=1e-3)
    assert torch.allclose(batch[1], torch.tensor(ep.states[0], dtype=torch.float32), atol=0.5)  # zero: stay


@needs_pusht
def test_recorded_episodes_replay_in_the_simulator_and_their_goals_meet_the_criterion(recorded):
    fidelity = replay_drift(recorded[:6])
    assert fidelity["max_drift_px"] < 1.0 and fidelity["max_drift_rad"] < 0.01
    assert fidelity["windows"] >= 30 and fidelity["goal_met_fraction"] >= 0.95


def test_success_needs_both_position_and_angle():
    cfg = PushTConfig()
    goal = np.array([100, 100, 200, 200, 0.1])
    assert succeeded(goal + [5, 5, 5, 5, 0.2], goal, cfg)
    assert not succeeded(goal + [15, 15, 0, 0, 0.0], goal, cfg)  # 21 px
    assert not succeeded(goal + [0, 0, 0, 0, math.pi / 8], goal, cfg)
    assert succeeded(np.array([100, 100, 200, 200, 2 * math.pi - 0.1]), goal, cfg)  # the angle wraps
    # the goal cost's keypoints: the block's corners turn with it, in pixels
    k = keypoints(torch.tensor([[0.0, 0.0, 256.0, 256.0, math.pi / 2]]))
    assert k.shape == (1, 18) and torch.allclose(k[0, 2:4], torch.tensor([226.0, 196.0]), atol=1e-4)


@needs_pusht
def test_tasks_come_from_held_out_episodes_and_replay_their_recorded_actions(recorded):
    tasks = make_tasks(recorded, count=8, seed=3)
    held = {ep.key for ep in recorded[-2:]}  # the last fifth of 10
    assert set(tasks["held_out"]) == held
    by_key = {ep.key: ep for ep in recorded}
    sim = Simulator(96)
    for task in tasks["tasks"]:
        assert task["episode"] in held
        ep = by_key[task["episode"]]
        np.testing.assert_allclose(task["start"], ep.states[task["t"]], atol=1e-4)
        assert not succeeded(np.array(task["start"]), np.array(task["goal"]), PushTConfig())
        sim.place(task["start"])
        for target in task["targets"]:
            sim.control(tuple(target))
        np.testing.assert_allclose(sim.state(), task["goal"], atol=1e-3)
    assert make_tasks(recorded, count=8, seed=3) == tasks  # seeded
    with pytest.raises(JEPAError, match="only"):
        make_tasks(recorded, count=10_000)


@needs_pusht
def test_pusht_tasks_and_plan_write_the_benchmark_table(tmp_path):
    out = tmp_path / "tasks.json"
    result = run_cli("world", "pusht-tasks", str(SHARD), str(out), "--count", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "met the success criterion in" in result.stdout
    data = json.loads(out.read_text())
    assert len(data["tasks"]) == 4 and data["fidelity"]["goal_met_fraction"] >= 0.95
    again = run_cli("world", "pusht-tasks", str(SHARD), str(out))
    assert again.returncode == 2 and "--overwrite" in again.stderr
    plan = tmp_path / "plan"
    result = run_cli("plan", "--env", "push-t", "--tasks", str(out), "--arms", "hold", "dataset", "simulator",
                     "--episodes", "4", "--samples", "12", "--iterations", "2", "--workers", "1", "--out", str(plan))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((plan / "plan.json").read_text())
    assert report["arms"]["hold"]["success_rate"] == 0  # no task is done at its start
    assert report["arms"]["dataset"]["success_rate"] >= 0.75  # 98% on the 100 benchmark tasks
    first = report["episodes"]["dataset"][0]
    assert first["episode"] == data["tasks"][0]["episode"] and first["t"] == data["tasks"][0]["t"]
    assert (plan / "frames.png").stat().st_size > 0


def test_push_t_bad_input_is_one_line(tmp_path):
    missing = run_cli("plan", "--env", "push-t", "--tasks", str(tmp_path / "none.json"), "--arms", "hold")
    assert missing.returncode == 2 and "does not exist" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"tasks": [{"start": [1, 2]}]}))
    bad = run_cli("plan", "--env", "push-t", "--tasks", str(foreign), "--arms", "hold")
    assert bad.returncode == 2 and "not a push-t task file" in bad.stderr
    other = run_cli("plan", "--env", "two-rooms", "--tasks", str(foreign), "--arms", "random")
    assert other.returncode == 2 and "unknown two-rooms option 'tasks'" in other.stderr
    pipeline = run_cli("plan", "pipeline", "--env", "push-t", "--out", str(tmp_path / "p"))
    assert pipeline.returncode == 2 and "give --replay SHARDS" in pipeline.stderr
    assert not (tmp_path / "p").exists()
    with pytest.raises(JEPAError, match="no keep-out"):
        make_env("push-t", keep_out=(0, 0, 1, 1))


@needs_pusht
def test_noisy_replays_are_episode_shards_of_the_training_episodes(tmp_path):
    from jepa.planning.trajectories import read_episodes

    out = str(tmp_path / "ep-%06d.tar")
    result = run_cli("world", "episodes", "--env", "push-t", "--replay", str(SHARD), "--episodes", "3", out)
    assert result.returncode == 0, result.stderr[-2000:]
    episodes = list(read_episodes(str(tmp_path / "ep-000000.tar")))
    env = make_env("push-t")
    assert len(episodes) == 3
    for ep in episodes:
        assert ep.frames.shape[1:] == (96, 96, 3) and ep.actions.shape[1] == 2 and ep.states.shape[1] == 5
        assert len(ep) >= 8 and np.linalg.norm(ep.actions, axis=1).max() <= env.max_action_norm + 1e-5
        # lossless: the frame shows the state it was recorded with
        assert np.array_equal(ep.frames[3], env.render_states(ep.states[3:4])[0])
    other = run_cli("world", "episodes", "--replay", str(SHARD), out)
    assert other.returncode == 2 and "two-rooms explores" in other.stderr


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory) -> Path:
    """One tiny Push-T pipeline (tasks, replays, frames, encoder, world model, the four arms), shared."""
    if not SHARD.exists():
        pytest.skip("../shared/data/pusht not present")
    out = tmp_path_factory.mktemp("pusht") / "p"
    result = run_cli("plan", "pipeline", "--env", "push-t", "--size", "tiny", "--replay", str(SHARD), "--workers", "1",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_the_push_t_pipeline_runs_from_recordings_to_the_benchmark_table(tiny_pipeline):
    out = tiny_pipeline
    report = json.loads((out / "plan" / "plan.json").read_text())
    assert list(report["arms"]) == ["hold", "random", "dataset", "world_model"]
    assert report["settings"]["tasks"] == str(out / "tasks.json") and report["arms"]["world_model"]["episodes"] == 2
    stages = json.loads((out / "pipeline.json").read_text())["stages_s"]
    assert list(stages)[:2] == ["tasks", "episodes"]


def test_a_push_t_world_model_resumes_exactly_and_refuses_an_encoder_of_another_resolution(tiny_pipeline, tmp_path):
    """On the pipeline's Push-T replays (2-D relative actions, 5-D states, 96 px frames): a run stopped at
    step 3 and resumed logs the same per-step losses as one run of 6; planning with the world model and
    an encoder of another resolution than the one it was trained on is one line."""
    from test_world_model import WORLD_CONFIG, losses, write_config

    from jepa.cli import main
    from jepa.export import load_encoder

    setup = {"episodes": tiny_pipeline / "episodes" / "episodes-000000.tar", "encoder": tiny_pipeline / "encoder_export"}
    assert main(["world", "--config", str(write_config(tmp_path / "a", WORLD_CONFIG, setup))]) == 0
    assert main(["world", "--config", str(write_config(tmp_path / "b", WORLD_CONFIG, setup, stop_at=3))]) == 0
    assert main(["world", "--config", str(write_config(tmp_path / "b", WORLD_CONFIG, setup)), "--ckpt_path", "last"]) == 0
    straight, resumed = losses(tmp_path / "a" / "run"), losses(tmp_path / "b" / "run")
    assert [s for s, _ in straight] == list(range(6)) and resumed == straight  # bit-identical, not merely close

    # An encoder of another resolution: the tiny test encoder (16 px) where the world model saw the
    # pipeline's (64 px).
    cfg = write_tiny_config(tmp_path / "enc", steps=1)
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false"]) == 0
    assert main(["export", str(tmp_path / "enc" / "run" / "checkpoints" / "last.ckpt"), str(tmp_path / "other")]) == 0
    sizes = {load_encoder(d).img_size for d in (tmp_path / "other", setup["encoder"])}
    assert len(sizes) == 2
    other = run_cli("plan", "--env", "push-t", "--tasks", str(tiny_pipeline / "tasks.json"), "--arms", "world_model",
                    "--episodes", "1", "--encoder", str(tmp_path / "other"), "--world", str(tiny_pipeline / "world" / "world"),
                    "--out", str(tmp_path / "plan"))
    assert other.returncode == 2 and "not on this encoder" in other.stderr, other.stderr[-2000:]
    assert len(other.stderr.strip().splitlines()) == 1


ENCODER_CONFIG = """\
model:
  encoder: {{size: tiny, patch_size: 8, width: 32, depth: 1, heads: 2}}
  predictor: {{width: 32, depth: 1, heads: 2, history: 2}}
  grid: 2
  warmup_steps: 2
data:
  train: {episodes}
  image_size: 32
  blur: 2.0
  batch_size: 4
  val_fraction: 0.25
"""


def test_the_push_t_encoder_learns_from_the_replays_resumes_exactly_and_sees_what_the_planner_sees(tiny_pipeline, tmp_path):
    """jepa world encoder: the pipeline's encoder comes from it (objective lewm, no frame shards); a run
    stopped at step 3 and resumed logs the same per-step losses as one run of 6; its export, through
    the planner's Perception, gives the representation the training shaped; shards without actions
    are refused in one line."""
    from test_world_model import RUN, losses, write_config

    from jepa.cli import main
    from jepa.export import load_encoder
    from jepa.planning.episode_frames import read_frames
    from jepa.planning.perception import Perception
    from jepa.planning.trajectories import read_episodes
    from jepa.planning.world_encoder import WorldEncoderModule

    assert json.loads((tiny_pipeline / "encoder_export" / "config.json").read_text())["objective"] == "lewm"
    assert "frames" not in json.loads((tiny_pipeline / "pipeline.json").read_text())["stages_s"]
    assert not (tiny_pipeline / "frames").exists()

    setup = {"episodes": tiny_pipeline / "episodes" / "episodes-000000.tar", "encoder": ""}
    template = RUN + ENCODER_CONFIG
    assert main(["world", "encoder", "--config", str(write_config(tmp_path / "a", template, setup))]) == 0
    assert main(["world", "encoder", "--config", str(write_config(tmp_path / "b", template, setup, stop_at=3))]) == 0
    assert main(["world", "encoder", "--config", str(write_config(tmp_path / "b", template, setup)),
                 "--ckpt_path", "last"]) == 0
    straight, resumed = losses(tmp_path / "a" / "run"), losses(tmp_path / "b" / "run")
    assert [s for s, _ in straight] == list(range(6)) and resumed == straight  # bit-identical, not merely close
    held = json.loads((tmp_path / "a" / "run" / "summary.json").read_text())["held_out"]
    assert held["rep_dim"] == 2 * 2 * 32 and 1 <= held["rankme"] <= 128 and held["prediction_mse"] >= 0

    ckpt = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    assert main(["export", str(ckpt), str(tmp_path / "export")]) == 0
    module = WorldEncoderModule.load_from_checkpoint(ckpt, weights_only=True).eval()
    episodes = read_frames(str(setup["episodes"]), 32, 2.0, max_episodes=1)
    perception = Perception(load_encoder(tmp_path / "export"), grid=2, blur=2.0)
    raw = next(read_episodes(str(setup["episodes"]), 1)).frames
    with torch.no_grad():
        trained = module.represent(episodes.reps[0])
    # The same pictures up to the uint8 rounding of the training frames (half a grey level).
    assert torch.allclose(perception.encode(raw), trained, atol=0.05)
    assert (perception.encode(raw) - trained).abs().mean() < 0.01

    # The replays without their actions: one line naming the problem.
    bare = tmp_path / "bare.tar"
    with tarfile.open(setup["episodes"]) as src, tarfile.open(bare, "w") as dst:
        for member in src.getmembers():
            if not member.name.endswith("action.npy"):
                dst.addfile(member, src.extractfile(member))
    no_actions = run_cli("world", "encoder", "--config", str(write_config(tmp_path / "c", template, {**setup, "episodes": bare})))
    assert no_actions.returncode == 2 and "action" in no_actions.stderr, no_actions.stderr[-2000:]
    assert len(no_actions.stderr.strip().splitlines()) == 1


def test_the_perceived_simulator_arm_plans_on_true_dynamics_with_the_learned_arms_cost(tiny_pipeline, tmp_path):
    """simulator_perceived: the simulator's rollouts scored by the world model's representation distance:
    the goal state itself costs nothing, another state more, and the arm plays through jepa plan."""
    from jepa.planning.costs import GoalEnergy
    from jepa.planning.perceived_simulator import perceived
    from jepa.planning.perception import Perception
    from jepa.planning.world_export import load_world_model, read_world_config

    world_dir = tiny_pipeline / "world" / "world"
    seen = read_world_config(world_dir)
    perception = Perception.load(tiny_pipeline / "encoder_export", grid=int(seen["grid"]), blur=float(seen["blur"]))
    world, _ = load_world_model(world_dir, perception.encoder_id)
    env = make_env("push-t", tasks=str(tiny_pipeline / "tasks.json"))
    task = json.loads((tiny_pipeline / "tasks.json").read_text())["tasks"][0]
    goal, start = torch.tensor(task["goal"]), torch.tensor(task["start"])
    cost = GoalEnergy(goal, env.max_action_norm, readout=perceived(env, perception, world))
    rollouts = torch.stack([torch.stack([start, goal]), torch.stack([goal, start])])  # [2, H=2, 5]
    energy = cost.energy(rollouts)
    assert energy[0] < 1e-6 < energy[1]  # mode final: the last step alone decides

    result = run_cli("plan", "--env", "push-t", "--tasks", str(tiny_pipeline / "tasks.json"), "--arms", "simulator_perceived",
                     "--episodes", "1", "--samples", "6", "--iterations", "1", "--steps", "2", "--workers", "1",
                     "--encoder", str(tiny_pipeline / "encoder_export"), "--world", str(world_dir), "--out", str(tmp_path / "p"))
    assert result.returncode == 0, result.stderr[-2000:]
    arm = json.loads((tmp_path / "p" / "plan.json").read_text())["arms"]["simulator_perceived"]
    assert arm["episodes"] == 1 and arm["plan_ms_median"] > 0
    missing = run_cli("plan", "--env", "push-t", "--tasks", str(tiny_pipeline / "tasks.json"), "--arms", "simulator_perceived",
                      "--episodes", "1", "--out", str(tmp_path / "q"))
    assert missing.returncode == 2 and "simulator_perceived arm needs --encoder and --world" in missing.stderr
