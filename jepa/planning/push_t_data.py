"""World-model training data for Push-T: noisy replays of the recorded episodes in the simulator,
written as episode shards (``episodes.py``'s format) with lossless re-rendered frames.

Only the training part of the whole-episode split is replayed (``push_t_tasks``: the last fifth of
the episodes hold the benchmark's tasks). A replay starts at a recorded step of its episode drawn in
the episode's first half, at rest, and follows the recording one environment step (``frame_skip``
control steps) at a time: the action points the pusher at the recorded target of the step's last
control step, as the dataset arm plays it, plus Gaussian noise of ``noise`` action units per axis,
clipped to the action bound; the noise makes the replays leave the recording, so the world model
sees what other actions do. Frames are rendered from the simulator's state, not decoded from the
recording's lossy video.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..data.shard_writer import DEFAULT_MAX_BYTES, DEFAULT_MAX_COUNT, ShardReport, write_episode_shards
from ..errors import JEPAError
from ..seeding import mix_seed
from .envs.push_t import PushTEnv
from .episodes import encode_mp4
from .push_t_tasks import Recorded, read_recorded
from .trajectories import held_out_count

MIN_STEPS = 8  # environment steps a replay keeps at least


def replay_with_noise(env: PushTEnv, recorded: Recorded, rng: np.random.Generator,
                      noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One noisy replay: (frames uint8 [T, H, W, 3], actions float32 [T, 2], states float32 [T, 5]),
    frame and state t before action t."""
    skip = env.config.frame_skip
    steps = len(recorded.targets) // skip
    if steps < MIN_STEPS:
        raise ValueError(f"episode {recorded.key} has {len(recorded.targets)} steps: a replay needs {MIN_STEPS * skip}")
    first = int(rng.integers(0, (steps - MIN_STEPS) // 2 + 1))  # environment steps skipped
    while True:
        start = recorded.states[first * skip]
        try:
            env.reset(options={"start": start, "goal": start})
            break
        except ValueError:  # a recorded state with the pusher inside the block (26 of 8,622 sampled): the next step
            first += 1
            if steps - first < MIN_STEPS:
                raise
    frames, actions, states = [], [], []
    for k in range(first, steps):
        frames.append(env.render())
        states.append(env.state)
        action = env.bounded(env.action_toward(recorded.targets[(k + 1) * skip - 1]) + rng.normal(0.0, noise, 2))
        actions.append(action.astype(np.float32))
        env.step(action)
    return np.stack(frames), np.stack(actions), np.stack(states)


def write_replays(recorded_spec: str, out_pattern: str, num_episodes: int, seed: int = 0, noise: float = 0.3,
                  env: PushTEnv | None = None, holdout_fraction: float = 0.2, max_count: int = DEFAULT_MAX_COUNT,
                  max_bytes: int = DEFAULT_MAX_BYTES, overwrite: bool = False) -> ShardReport:
    """``num_episodes`` noisy replays of the training episodes of ``recorded_spec``, in turn (replay i
    of episode ``i % n``, seeded by ``mix_seed(seed, i)``), written and checked as episode shards."""
    if num_episodes < 1 or noise < 0:
        raise JEPAError(f"--episodes must be >= 1 and the noise >= 0, got {num_episodes} and {noise}")
    env = env if env is not None else PushTEnv()
    recorded = read_recorded(recorded_spec)
    train = [ep for ep in recorded[:len(recorded) - held_out_count(len(recorded), holdout_fraction)]
             if len(ep.targets) >= MIN_STEPS * env.config.frame_skip]
    if not train:
        raise JEPAError(f"{recorded_spec} has no training episode of {MIN_STEPS * env.config.frame_skip} steps or more")
    with tempfile.TemporaryDirectory(prefix="jepa-replays-") as tmp:
        root = Path(tmp)
        for i in range(num_episodes):
            source = train[i % len(train)]
            try:
                frames, actions, states = replay_with_noise(env, source, np.random.default_rng(mix_seed(seed, i)), noise)
            except ValueError as err:
                raise JEPAError(f"episode {source.key}: {err}") from None
            key = f"ep{i:06d}"
            encode_mp4(frames, root / f"{key}.mp4")
            np.save(root / f"{key}.action.npy", actions)
            np.save(root / f"{key}.state.npy", states)
        return write_episode_shards(root, out_pattern, max_count=max_count, max_bytes=max_bytes, overwrite=overwrite)
