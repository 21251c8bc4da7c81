"""Four-Rooms: the walls and doors (one closed in half the tasks), tasks of 15-30 shortest-path steps,
their budget, and the grid shortest paths they are measured with."""

import math

import numpy as np
import pytest
import torch

from jepa.errors import JEPAError
from jepa.planning.envs import make_env
from jepa.planning.envs.arena import is_free
from jepa.planning.envs.four_rooms import DOORS, FourRoomsConfig, room_of
from jepa.planning.envs.paths import shortest_path_length


def walk(cfg: FourRoomsConfig, start, action, steps: int) -> torch.Tensor:
    env = make_env("four-rooms", config=cfg)
    state = torch.tensor([start], dtype=torch.float32)
    for _ in range(steps):
        state = env.step_states(state, torch.tensor([action], dtype=torch.float32))
    return state[0]


def test_doors_join_their_rooms_and_a_closed_one_is_a_wall():
    cfg = FourRoomsConfig()
    for door, (wall, centre, rooms) in enumerate(DOORS):
        # Through the door's centre, from the middle of one room to the middle of the other.
        a = (0.25, centre) if wall == "vertical" else (centre, 0.25)
        move = (0.07, 0.0) if wall == "vertical" else (0.0, 0.07)
        across = walk(cfg, a, move, 8)
        assert int(room_of(across, cfg)) == rooms[1], (door, across)
        blocked = walk(FourRoomsConfig(closed_door=door), a, move, 8)
        assert int(room_of(blocked, cfg)) == rooms[0], (door, blocked)
    # The closed door is drawn: the frame changes where the gap was.
    open_frame = make_env("four-rooms").render_states(np.array([[0.1, 0.1]]))[0]
    closed_frame = make_env("four-rooms", closed_door=0).render_states(np.array([[0.1, 0.1]]))[0]
    changed = np.argwhere((open_frame != closed_frame).any(-1))
    assert len(changed) > 20 and abs(changed[:, 1].mean() - 31.5) < 2  # the vertical wall's column
    with pytest.raises(JEPAError, match="closed_door must be None or a door 0-3"):
        make_env("four-rooms", closed_door=4)


def test_tasks_are_15_to_30_steps_half_of_them_a_detour_round_a_closed_door():
    env = make_env("four-rooms", resolution=16)  # the tasks do not depend on the frames' size
    tasks = [env.reset(seed=s)[1] for s in range(16)]
    assert all(15 <= t["shortest_steps"] <= 30 for t in tasks)
    assert all(t["budget"] == math.ceil(2.8 * t["shortest_steps"]) for t in tasks)
    closed = [t for t in tasks if t["closed_door"] is not None]
    assert 4 <= len(closed) <= 12
    for t in tasks:
        rooms = {t["start_room"], t["goal_room"]}
        if t["closed_door"] is None:
            assert t["start_room"] + t["goal_room"] == 3  # diagonally opposite
        else:
            assert rooms == set(DOORS[t["closed_door"]][2])  # the rooms of the closed door
        assert int(room_of(torch.as_tensor(t["state"]), env.config)) == t["start_room"]
    again = make_env("four-rooms", resolution=16).reset(seed=5)[1]
    assert np.array_equal(again["state"], tasks[5]["state"]) and again["closed_door"] == tasks[5]["closed_door"]
    # Going straight for the goal runs into a wall on every detour task.
    from jepa.planning.agent import AgentSettings
    from jepa.planning.evaluate import evaluate

    detours = [s for s in range(16) if tasks[s]["closed_door"] is not None]
    runs = evaluate(env, detours, ["greedy"], lambda: None, AgentSettings(step_budget=30))
    assert [e.success for e in runs["greedy"]["episodes"]] == [False] * len(detours)
    # The task's own budget by default (40 where a task sets none); a given --steps caps it.
    from jepa.planning.agent import task_budget
    assert (task_budget({"budget": 50}, None), task_budget({}, None)) == (50, 40)
    assert (task_budget({"budget": 50}, 30), task_budget({"budget": 50}, 90), task_budget({}, 30)) == (30, 50, 30)
    # The task's own budget caps the episode (a shorter --steps still wins).
    capped = evaluate(env, [0], ["random"], lambda: None, AgentSettings(step_budget=1000))["random"]["episodes"][0]
    assert capped.success or capped.steps == tasks[0]["budget"]


def test_grid_shortest_paths_match_straight_lines_and_go_round_walls():
    cfg = FourRoomsConfig()
    straight = shortest_path_length(cfg, np.array([0.1, 0.1]), np.array([0.4, 0.35]))
    assert straight == pytest.approx(math.hypot(0.3, 0.25), rel=0.06)  # grid + snapping of both ends
    # Through door 0 (open) versus round it when it is closed (three doors).
    a, b = np.array([0.25, 0.25]), np.array([0.75, 0.25])
    through = shortest_path_length(cfg, a, b)
    round_ = shortest_path_length(FourRoomsConfig(closed_door=0), a, b)
    assert through == pytest.approx(0.5, rel=0.06) and round_ > 2 * through  # three doors, corners cut


def test_exploration_episodes_see_closed_doors_and_their_waypoints_are_the_doors():
    from jepa.planning.episodes import generate_episodes

    env = make_env("four-rooms", resolution=16)
    frames, _, states = generate_episodes(list(range(8)), 12, env)
    open_frames = np.asarray(env.render_states(states.reshape(-1, 2))).reshape(frames.shape)
    closed = [i for i in range(8) if not np.array_equal(frames[i], open_frames[i])]
    assert 1 <= len(closed) <= 7  # about half the episodes run in a world with a door closed (drawn)
    assert env.explore_config(np.random.default_rng(0)) in {FourRoomsConfig(resolution=16, closed_door=d) for d in (None, 0, 1, 2, 3)}
    # With a door closed, about half the episodes start beside it (free of the walls), so that the
    # world models see it stop the agent; with the doors open the start stays where it was drawn.
    near, rng = 0, np.random.default_rng(1)
    for _ in range(200):
        start = env.sample_start(rng)
        moved = env.explore_start(rng, FourRoomsConfig(resolution=16, closed_door=2), start)
        assert bool(is_free(torch.as_tensor(moved), env.config))
        near += not np.array_equal(moved, start)
        assert np.abs(moved - env.door_centre(2)).max() <= 0.12 or np.array_equal(moved, start)
    assert 70 <= near <= 130
    start, state = env.sample_start(rng), rng.bit_generator.state
    assert env.explore_start(rng, FourRoomsConfig(resolution=16), start) is start
    assert rng.bit_generator.state == state  # nothing drawn: the episode's later draws stay as they were
    # The oracle's waypoints: the doors of the shortest open route, in order.
    env.reset(seed=0, options={"start": (0.1, 0.1), "goal": (0.9, 0.9), "closed_door": None})
    assert len(env.waypoints()) == 2
    env.reset(seed=0, options={"start": (0.1, 0.4), "goal": (0.1, 0.6), "closed_door": 2})
    assert [tuple(p) for p in env.waypoints()] == [tuple(env.door_centre(d)) for d in (0, 3, 1)]


def test_some_tasks_draw_a_keep_out_square_on_their_route_and_the_others_are_unchanged():
    from jepa.planning.envs import in_keep_out

    env = make_env("four-rooms", resolution=16)
    plain = make_env("four-rooms", resolution=16, keep_out_tasks=0.0)
    # A planner with a wide margin (a random-weights encoder's probe: 0.15 with the agent's radius)
    # plays the same tasks.
    wide = make_env("four-rooms", resolution=16, keep_out_clearance=0.151)
    drawn = 0
    for seed in range(20):
        _, info = env.reset(seed=seed)
        _, same = plain.reset(seed=seed)
        assert wide.reset(seed=seed)[1]["keep_out"] == info["keep_out"]
        assert np.array_equal(info["state"], same["state"]) and np.array_equal(info["goal"], same["goal"])
        assert info["closed_door"] == same["closed_door"] and same["keep_out"] is None
        box = info["keep_out"]
        if box is None:
            assert info["budget"] == same["budget"] and env.keep_out is None
            continue
        drawn += 1
        x0, y0, x1, y1 = box
        assert env.keep_out == box and x1 - x0 == pytest.approx(0.1)
        assert any(a <= x0 and b <= y0 and x1 <= c and y1 <= d for a, b, c, d in env.config.rooms)  # no door covered
        for end in (info["state"], info["goal"]):
            assert not bool(in_keep_out(torch.as_tensor(end), env.config))
            assert max(x0 - end[0], end[0] - x1, y0 - end[1], end[1] - y1) > 0.1  # far from both ends
        assert bool(in_keep_out(torch.tensor([(x0 + x1) / 2, (y0 + y1) / 2]), env.config))
        # The shortest path goes round the square (never shorter than without it), and the budget with it.
        assert same["shortest_path"] <= info["shortest_path"] <= 1.25 * same["shortest_path"]
        assert info["budget"] == math.ceil(2.8 * info["shortest_steps"])
    assert 2 <= drawn <= 12  # about 30 % of tasks
    # A world with a keep-out region of its own keeps it for every task and draws none.
    own = make_env("four-rooms", resolution=16, keep_out=(0.1, 0.1, 0.2, 0.2))
    assert all(own.reset(seed=s)[1]["keep_out"] is None and own.keep_out == (0.1, 0.1, 0.2, 0.2) for s in range(6))
    with pytest.raises(JEPAError, match="keep_out_tasks must lie in"):
        make_env("four-rooms", keep_out_tasks=1.5)


def test_oracle_waypoints_lead_round_the_keep_out_at_the_margin_to_the_goal():
    """Followed straight, each until it is within the success radius, the waypoints bring the true
    agent to the goal within the task's budget and never into the keep-out square; on keep-out tasks
    the route keeps KEEP_OUT_MARGIN from the square, bending round it where it must."""
    from jepa.planning.envs.four_rooms import KEEP_OUT_MARGIN

    env = make_env("four-rooms", resolution=16)
    bent = 0
    for seed in range(16):
        _, info = env.reset(seed=seed)
        points = env.waypoints()
        box = info["keep_out"]
        if box is not None:
            route = np.stack([info["state"], *points, info["goal"]])
            t = np.linspace(0, 1, 50)[:, None, None]
            along = (route[:-1] + t * (route[1:] - route[:-1])).reshape(-1, 2)
            gap = np.maximum(np.maximum(box[0] - along[:, 0], along[:, 0] - box[2]),
                             np.maximum(box[1] - along[:, 1], along[:, 1] - box[3]))
            assert gap.min() >= KEEP_OUT_MARGIN - 2e-3, seed
            bent += not all(any(np.allclose(p, env.door_centre(d)) for d in range(4)) for p in points)
        i, success = 0, False
        for _ in range(info["budget"]):
            while i < len(points) and np.linalg.norm(env.state - points[i]) <= env.config.success_radius:
                i += 1
            move = (points[i] if i < len(points) else env.goal) - env.state
            move *= min(1.0, env.config.max_action_norm / max(float(np.linalg.norm(move)), 1e-9))
            _, _, _, _, step = env.step(move.astype(np.float32))
            assert not step["in_keep_out"], seed
            if step["success"]:
                success = True
                break
        assert success, seed
    assert bent >= 2  # some routes go round a square (seeds 2, 5 and 13 among these)


def test_the_two_level_pipeline_trains_two_slow_models_at_once_and_plans_with_them_as_one(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "fr"
    result = subprocess.run([sys.executable, "-m", "jepa.cli", "plan", "pipeline", "--env", "four-rooms", "--hierarchy", "2",
                             "--size", "tiny", "--steps", "2", "--workers", "2", "--slow-members", "2", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    plan = json.loads((out / "plan" / "plan.json").read_text())
    assert list(plan["arms"]) == ["world_model", "hierarchical"]
    assert plan["settings"]["slow"] == [str(out / "slow" / "world"), str(out / "slow_1" / "world")]
    record = json.loads((out / "pipeline.json").read_text())
    assert (record["slow_members"], record["slow_steps_each"]) == (2, 3)  # one model's 6 tiny steps, shared
    assert all(json.loads((out / d / "summary.json").read_text())["steps"] == 3 for d in ("slow", "slow_1"))
    # Each member its own seed: other weights, the same fast model underneath.
    a, b = (json.loads((out / d / "world" / "world.json").read_text()) for d in ("slow", "slow_1"))
    assert a["fast_world_sha256"] == b["fast_world_sha256"]
    assert (out / "slow" / "world" / "world.safetensors").read_bytes() != (out / "slow_1" / "world" / "world.safetensors").read_bytes()
    refused = subprocess.run([sys.executable, "-m", "jepa.cli", "plan", "pipeline", "--slow-members", "2", "--out",
                              str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--slow-members must be >= 1 and needs --hierarchy 2" in refused.stderr
