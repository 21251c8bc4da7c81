"""The two-rooms environment: wall and door dynamics, rendering, resets, registration."""

import gymnasium
import numpy as np
import pytest
import torch

from jepa.errors import JEPAError
from jepa.planning.envs import (
    ENV_ID,
    TwoRoomsConfig,
    TwoRoomsEnv,
    in_keep_out,
    is_free,
    make_env,
    render_states,
    room_of,
    step_states,
)

CFG = TwoRoomsConfig()
KEEP_OUT = (0.15, 0.3, 0.35, 0.7)


def _walk(start, action, steps, cfg=CFG):
    state = torch.tensor([start], dtype=torch.float32)
    path = [state]
    for _ in range(steps):
        state = step_states(state, torch.tensor([action], dtype=torch.float32), cfg)
        path.append(state)
    return torch.cat(path)


def test_wall_blocks_outside_the_door_and_the_agent_slides():
    wall_x0 = CFG.wall_x[0]
    for y in (0.1, 0.3, 0.8):
        path = _walk((0.25, y), (0.2, 0.0), 10)
        assert (path[:, 0] <= wall_x0 - CFG.agent_radius + 1e-6).all()
        assert path[-1, 0] > wall_x0 - CFG.agent_radius - CFG.max_action_norm / CFG.substeps
    # Pushing diagonally into the wall below the door: x is blocked, y keeps moving (sliding).
    path = _walk((0.3, 0.1), (0.15, 0.05), 6)
    assert (path[:, 0] < 0.5).all() and path[-1, 1] > path[0, 1] + 0.2
    # From the right room too.
    path = _walk((0.75, 0.2), (-0.2, 0.0), 10)
    assert (path[:, 0] >= CFG.wall_x[1] + CFG.agent_radius - 1e-6).all()


def test_door_lets_the_agent_through_when_it_fits():
    path = _walk((0.25, 0.5), (0.2, 0.0), 5)
    assert path[-1, 0] > 0.75 and (room_of(path, CFG)[-1] == 1)
    # Just off-centre but still fitting through the 0.22-wide gap.
    path = _walk((0.25, 0.5 + 0.11 - CFG.agent_radius - 0.005), (0.2, 0.0), 5)
    assert path[-1, 0] > 0.75
    # Half the disc would hit the wall's end above the gap: blocked.
    path = _walk((0.25, 0.61), (0.2, 0.0), 5)
    assert path[-1, 0] < 0.5


def test_never_leaves_the_arena_and_respects_the_max_norm():
    gen = torch.Generator().manual_seed(0)
    states = torch.rand(4096, 2, generator=gen)
    states = states[is_free(states, CFG)]
    for _ in range(20):
        actions = (torch.rand(len(states), 2, generator=gen) - 0.5) * 3  # many far over the norm
        new = step_states(states, actions, CFG)
        assert is_free(new, CFG).all()
        r = CFG.agent_radius
        assert ((new >= r) & (new <= CFG.arena_size - r)).all()
        assert ((new - states).norm(dim=1) <= CFG.max_action_norm + 1e-6).all()
        states = new
    # In open space a short action is taken exactly; a long one is scaled onto the norm ball.
    start = torch.tensor([[0.25, 0.5]])
    assert torch.allclose(step_states(start, torch.tensor([[0.05, -0.03]]), CFG), torch.tensor([[0.30, 0.47]]))
    assert torch.allclose(step_states(start, torch.tensor([[0.0, 4.0]]), CFG), torch.tensor([[0.25, 0.7]]))


def test_batch_equals_per_sample_and_is_pure_and_differentiable():
    gen = torch.Generator().manual_seed(1)
    states = torch.rand(512, 2, generator=gen)
    states = states[is_free(states, CFG)][:64]
    actions = (torch.rand(len(states), 2, generator=gen) - 0.5)
    before_s, before_a = states.clone(), actions.clone()
    batch = step_states(states, actions, CFG)
    single = torch.cat([step_states(states[i:i + 1], actions[i:i + 1], CFG) for i in range(len(states))])
    assert torch.equal(batch, single)
    assert torch.equal(batch, step_states(states, actions, CFG))  # deterministic
    assert torch.equal(states, before_s) and torch.equal(actions, before_a)  # nothing in place
    acts = torch.zeros(3, 2, requires_grad=True)  # the norm of a zero action must not give NaN
    step_states(torch.tensor([[0.2, 0.2]] * 3), acts, CFG).sum().backward()
    assert torch.isfinite(acts.grad).all() and (acts.grad == 1).all()


def test_render_background_wall_and_red_agent():
    images = render_states(np.array([[0.2, 0.8], [0.8, 0.2]], np.float32), CFG)
    assert images.shape == (2, 64, 64, 3) and images.dtype == np.uint8
    res = CFG.resolution
    row, col = int((1 - 0.8) * res), int(0.2 * res)  # y up: row 0 is the top
    r, g, b = images[0, row, col].astype(int)
    assert r > 180 and g < 90 and b < 90
    wall = images[0, 2, res // 2]
    assert wall.max() < 100
    door = images[0, res // 2, res // 2]
    assert door.min() > 200  # the gap shows the background
    # Anti-aliased: the disc's edge has in-between colours.
    assert len(np.unique(images[0, :, :, 1])) > 4
    as_torch = render_states(torch.tensor([[0.2, 0.8]]), CFG)
    assert isinstance(as_torch, torch.Tensor) and np.array_equal(as_torch.numpy()[0], images[0])


def test_reset_places_start_and_goal_in_different_rooms_outside_keep_out():
    env = TwoRoomsEnv(TwoRoomsConfig(keep_out=KEEP_OUT))
    rooms = set()
    for seed in range(40):
        obs, info = env.reset(seed=seed)
        start, goal = torch.from_numpy(info["state"]), torch.from_numpy(info["goal"])
        assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
        assert room_of(start, env.config) != room_of(goal, env.config)
        rooms.add(int(room_of(start, env.config)))
        inflated = TwoRoomsConfig(keep_out=(KEEP_OUT[0] - 0.035, KEEP_OUT[1] - 0.035,
                                            KEEP_OUT[2] + 0.035, KEEP_OUT[3] + 0.035))
        assert not in_keep_out(start, inflated) and not in_keep_out(goal, inflated)
        assert is_free(start, env.config) and is_free(goal, env.config)
    assert rooms == {0, 1}  # which room holds the start is random


def test_same_seed_same_episode_and_goal_obs():
    env = TwoRoomsEnv()
    obs_a, info_a = env.reset(seed=7)
    obs_b, info_b = env.reset(seed=7)
    assert np.array_equal(obs_a, obs_b) and np.array_equal(info_a["goal"], info_b["goal"])
    assert np.array_equal(info_a["goal_obs"], render_states(info_a["goal"][None], env.config)[0])
    assert np.array_equal(env.render(), obs_a)
    actions = np.random.default_rng(0).uniform(-0.2, 0.2, size=(10, 2)).astype(np.float32)
    runs = []
    for _ in range(2):
        env.reset(seed=7)
        runs.append([env.step(a)[4]["state"] for a in actions])
    assert np.array_equal(np.array(runs[0]), np.array(runs[1]))


def test_set_state_then_step_agrees_with_step_states():
    env = TwoRoomsEnv(TwoRoomsConfig(keep_out=KEEP_OUT, max_episode_steps=3))
    env.reset(seed=0)
    obs = env.set_state((0.25, 0.5))
    assert np.array_equal(obs, render_states(np.array([[0.25, 0.5]], np.float32), env.config)[0])
    state = torch.tensor([[0.25, 0.5]])
    for i, action in enumerate([(0.2, 0.0), (0.5, 0.1), (0.0, -0.2)]):
        obs, reward, terminated, truncated, info = env.step(np.array(action, np.float32))
        state = step_states(state, torch.tensor([action]), env.config)
        assert np.array_equal(info["state"], state[0].numpy())
        assert reward == pytest.approx(-np.linalg.norm(info["state"] - env.goal))
        assert truncated == (i == 2)
    env.set_state((0.2, 0.5))
    assert env.step(np.zeros(2, np.float32))[4]["in_keep_out"]
    env.set_state(env.goal)
    assert env.step(np.zeros(2, np.float32))[2]  # at the goal: success terminates
    for bad in [(0.5, 0.2), (1.2, 0.5), (0.01, 0.5)]:
        with pytest.raises(ValueError, match="inside the wall or outside the arena") as err:
            env.set_state(bad)
        assert "\n" not in str(err.value)


def test_make_env_names_registration_and_config_errors():
    env = make_env("two-rooms", resolution=32)
    assert isinstance(env, TwoRoomsEnv) and env.observation_space.shape == (32, 32, 3)
    assert isinstance(make_env(ENV_ID), TwoRoomsEnv)
    assert gymnasium.make(ENV_ID).unwrapped.config == CFG
    with pytest.raises(JEPAError) as err:
        make_env("x")
    assert str(err.value) == "unknown environment 'x': available are two-rooms, four-rooms, push-t"
    for kwargs in [{"door_width": 0.05}, {"bogus": 1}, {"keep_out": (0, 0, 0.5, 1)}, {"substeps": 1}]:
        with pytest.raises(JEPAError) as err:
            make_env("two-rooms", **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="agent's diameter"):
        TwoRoomsConfig(door_width=0.05)


def test_a_registered_environment_is_what_every_planning_part_takes(tmp_path, monkeypatch):
    """The seam: episodes, the simulator arm, the evaluation and the pictures take any registered
    environment; a new one is its class plus one registry entry."""
    import dataclasses

    from jepa.planning.agent import AgentSettings
    from jepa.planning.envs import ENVIRONMENTS, PipelineSizes, environment
    from jepa.planning.episodes import generate_episodes
    from jepa.planning.evaluate import evaluate
    from jepa.planning.planners import CEM, CEMSettings
    from jepa.planning.plots import plot_trajectories

    class NarrowDoor(TwoRoomsEnv):  # a stand-in for a new environment file
        name = "narrow-door"

        def __init__(self, **kwargs):
            super().__init__(TwoRoomsConfig(door_width=0.12, resolution=32), **kwargs)

    entry = dataclasses.replace(environment("two-rooms"), name="narrow-door", gym_id="jepa/NarrowDoor-v0",
                                env_class=NarrowDoor, sizes={"tiny": PipelineSizes(2, 8, 1, 1, 1)})
    monkeypatch.setitem(ENVIRONMENTS, "narrow-door", entry)
    env = make_env("narrow-door")
    assert env.config.door_width == 0.12 and make_env("jepa/NarrowDoor-v0").name == "narrow-door"
    assert gymnasium.make("jepa/NarrowDoor-v0").unwrapped.config.door_width == 0.12
    frames, _, states = generate_episodes([0, 1], 8, env)
    assert frames.shape == (2, 8, 32, 32, 3) and is_free(torch.from_numpy(states), env.config).all()
    runs = evaluate(env, range(2), ["greedy", "simulator"], lambda: CEM(CEMSettings(samples=16, iterations=2, elites=4)),
                    AgentSettings(step_budget=3))
    assert runs["simulator"]["summary"]["episodes"] == 2
    goals = {s: torch.as_tensor(env.reset(seed=s)[1]["goal"]) for s in range(2)}
    assert plot_trajectories({a: r["episodes"] for a, r in runs.items()}, goals, env, tmp_path / "t.png").is_file()
    with pytest.raises(JEPAError, match="unknown environment 'four-doors': available are two-rooms, four-rooms, push-t, narrow-door"):
        make_env("four-doors")
