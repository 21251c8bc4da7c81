"""Offline two-rooms episodes written as shards, and episode shards read back for training."""

import io
import tarfile
import warnings

import numpy as np
import pytest

from jepa.data.shard_writer import write_episode_shards
from jepa.errors import JEPAError
from jepa.planning.envs import TwoRoomsConfig, is_free, make_env, render_states
from jepa.planning.episodes import explore_actions, generate_episode, generate_episodes, write_episodes
from jepa.planning.trajectories import Episode, read_episodes, windows
from jepa.seeding import mix_seed

from conftest import SHARED_DATA

PUSHT = SHARED_DATA / "pusht" / "pusht-000000.tar"
CFG = TwoRoomsConfig()
ENV = make_env("two-rooms")


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _tar(path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_explore_actions_stay_in_the_norm_ball_and_noisy_is_smooth():
    rng = np.random.default_rng(0)
    for policy in ("random", "noisy"):
        actions = explore_actions(rng, 500, CFG.max_action_norm, policy)
        assert actions.shape == (500, 2) and actions.dtype == np.float32
        assert (np.linalg.norm(actions, axis=1) <= CFG.max_action_norm + 1e-7).all()
    noisy = explore_actions(np.random.default_rng(1), 2000, CFG.max_action_norm, "noisy")
    rand = explore_actions(np.random.default_rng(1), 2000, CFG.max_action_norm, "random")
    corr = [np.corrcoef(a[:-1, 0], a[1:, 0])[0, 1] for a in (noisy, rand)]
    assert corr[0] > 0.3 and abs(corr[1]) < 0.1
    with pytest.raises(ValueError, match="unknown exploration policy"):
        explore_actions(rng, 3, CFG.max_action_norm, "greedy")


def test_generate_episode_is_deterministic_and_follows_the_push_t_convention():
    frames, actions, states = generate_episode(3, 20, ENV, "noisy")
    assert frames.shape == (20, 64, 64, 3) and frames.dtype == np.uint8
    assert actions.shape == states.shape == (20, 2) and actions.dtype == states.dtype == np.float32
    again = generate_episode(3, 20, ENV, "noisy")
    assert all(np.array_equal(a, b) for a, b in zip((frames, actions, states), again))
    assert not np.array_equal(states, generate_episode(4, 20, ENV, "noisy")[2])
    assert np.array_equal(frames, render_states(states, CFG))  # frame t shows state t (before action t)
    assert is_free(states, CFG).all()
    batch = generate_episodes([5, 3], 20, ENV, "noisy")
    assert all(np.array_equal(b[1], a) for a, b in zip((frames, actions, states), batch))


def test_write_episodes_round_trips_through_read_episodes(tmp_path):
    report = write_episodes(str(tmp_path / "tr-%06d.tar"), num_episodes=5, length=24, seed=11, env=ENV,
                            policy="noisy", max_count=3)
    assert report.samples == 5 and len(report.shards) == 2 and not report.warnings
    episodes = list(read_episodes(report.brace_pattern))
    assert [e.key for e in episodes] == [f"ep{i:06d}" for i in range(5)]
    for i, episode in enumerate(episodes):
        frames, actions, states = generate_episode(mix_seed(11, i), 24, ENV, "noisy")
        assert np.array_equal(episode.actions, actions) and np.array_equal(episode.states, states)
        assert episode.frames.shape == frames.shape and episode.dropped == 0
        # Lossless h264 in RGB: the agent trains on exactly the frames the environment renders.
        assert np.array_equal(episode.frames, frames)
    # Re-sharding the written shards goes through write_episode_shards' read-back check again.
    again = write_episode_shards(report.brace_pattern, str(tmp_path / "re-%06d.tar"))
    assert again.samples == 5 and not again.warnings
    assert len(list(read_episodes(report.brace_pattern, max_episodes=2))) == 2


@pytest.mark.skipif(not PUSHT.exists(), reason="../shared/data/pusht not present")
def test_read_episodes_on_push_t():
    episodes = list(read_episodes(str(PUSHT), max_episodes=3))
    assert len(episodes) == 3
    for episode in episodes:
        assert episode.frames.shape[1:] == (96, 96, 3) and episode.frames.dtype == np.uint8
        assert episode.actions.shape == (len(episode), 2) and episode.states.shape == (len(episode), 5)
        assert len(episode.frames) == len(episode) and episode.dropped == 0


def test_episode_shard_errors_are_one_line(tmp_path):
    shard = _tar(tmp_path / "bad.tar", {"e0.mp4": b"not a video", "e0.state.npy": _npy(np.zeros((3, 2)))})
    with pytest.raises(JEPAError) as err:
        next(read_episodes(shard))
    assert str(err.value) == (f"episode e0 in {shard} has no action.npy: episode shards need "
                              "<key>.mp4 + <key>.action.npy (+ state.npy)")
    with pytest.raises(JEPAError) as err:
        read_episodes(str(tmp_path / "missing-{000000..000001}.tar"))
    assert "does not exist" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(JEPAError, match="not a shard path"):
        read_episodes(str(tmp_path))


def test_length_mismatch_is_cut_to_the_shorter_with_a_warning(tmp_path):
    report = write_episodes(str(tmp_path / "src-%06d.tar"), num_episodes=1, length=12, seed=0, env=ENV)
    with tarfile.open(report.shards[0]) as tar:
        video = tar.extractfile("ep000000.mp4").read()
    actions = np.zeros((15, 2), np.float32)
    shard = _tar(tmp_path / "long.tar", {"e0.mp4": video, "e0.action.npy": _npy(actions)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        episode = next(read_episodes(shard))
    assert len(episode) == 12 and episode.frames.shape[0] == 12 and episode.states is None
    assert episode.dropped == 3 and any("cut to 12 steps" in str(w.message) for w in caught)


def test_windows_shapes_and_count():
    episode = Episode("e", np.zeros((10, 8, 8, 3), np.uint8), np.arange(20, dtype=np.float32).reshape(10, 2),
                      np.zeros((10, 5), np.float32))
    got = list(windows(episode, 4))
    assert len(got) == 7
    frames, actions, states = got[2]
    assert frames.shape == (4, 8, 8, 3) and actions.shape == (4, 2) and states.shape == (4, 5)
    assert np.array_equal(actions[:, 0], [4, 6, 8, 10])
    assert len(list(windows(episode, 4, stride=3))) == 3  # starts 0, 3, 6
    assert list(windows(episode, 11)) == []
    episode.states = None
    assert all(s is None for _, _, s in windows(episode, 10))
    with pytest.raises(ValueError):
        next(windows(episode, 0))
