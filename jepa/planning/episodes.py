"""Offline exploration trajectories of a planning environment for training a world model: exploration actions, episodes, and
episode shards in the Push-T format (``<key>.mp4``, ``<key>.action.npy``, ``<key>.state.npy``).

Frame t is the observation before action t and state t the position it shows (the Push-T
convention: T frames, T actions, T states; the last action's outcome is not in the episode).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from ..data.shard_writer import DEFAULT_MAX_BYTES, DEFAULT_MAX_COUNT, ShardReport, write_episode_shards
from ..seeding import mix_seed
from .envs.protocol import PlanningEnv
from .envs.registry import make_env
from .interfaces import clip_norm

POLICIES = ("noisy", "random")
MOMENTUM = 0.8
NOISE = 1.0  # noise std per axis, in units of max_action_norm (the best of 0.3, 0.5, 1.0 measured)
BATCH = 64  # episodes simulated together by write_episodes
FPS = 10
# Lossless h264 in RGB (libx264rgb, qp 0): decoded frames are the rendered ones bit for bit. Even
# near-lossless yuv444p (crf 4: 0.37 grey levels off on average) moved the frozen encoder's pooled
# representation by 0.78 standard units and quadrupled the position probe's error on the
# environment's own renders (0.012 -> 0.052): a world model trained on decoded frames then plans
# on frames it never saw. 4:2:0 would also smear the small red disc into the background.
CODEC = "libx264rgb"
PIX_FMT = "rgb24"


def explore_actions(rng: np.random.Generator, steps: int, max_action_norm: float,
                    policy: str = "noisy") -> np.ndarray:
    """Actions of an exploring agent, all inside the norm ball of radius ``max_action_norm``.

    ``"random"`` draws i.i.d. actions uniformly in the ball. ``"noisy"`` is a smoothed random walk,
    ``a_t = clip(0.8 a_{t-1} + noise)`` with noise of std ``max_action_norm`` per axis. Why noisy:
    i.i.d. steps mostly jitter in place (their displacement grows like sqrt(T)) and, against the
    wall, push into it as often as along it, so they find the door less often; momentum carries the
    agent across a room and keeps it sliding along the wall to the gap. Measured on 512 episodes of
    100 steps from uniform starts: random crosses between the rooms in 53% of episodes (1.2 passages
    each on average), noisy in 79% (1.7 passages); at 32 steps, 22% against 40%.

    Args:
        rng: the random generator.
        steps: number of actions.
        max_action_norm: the environment's longest step.
        policy: ``"noisy"`` or ``"random"``.

    Returns:
        float32 [steps, 2].
    """
    check_policy(policy)
    high = max_action_norm
    if policy == "random":
        # Uniform in the disc: radius ~ sqrt(U) so that area, not radius, is uniform.
        radius = high * np.sqrt(rng.uniform(size=steps))
        angle = rng.uniform(0, 2 * np.pi, size=steps)
        actions = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    else:
        noise = rng.normal(0.0, NOISE * high, size=(steps, 2))
        actions = np.zeros((steps, 2))
        previous = np.zeros(2)
        for t in range(steps):
            a = MOMENTUM * previous + noise[t]
            norm = float(np.hypot(a[0], a[1]))
            previous = a * min(1.0, high / norm) if norm > 0 else a
            actions[t] = previous
    # Rounding to float32 can put an action a hair outside the ball; clip_norm brings it back, as the
    # environment's own scaling would.
    return clip_norm(torch.from_numpy(actions.astype(np.float32)), high).numpy()


def check_policy(policy: str) -> None:
    """Raises ValueError (one line) unless ``policy`` is one of ``POLICIES``."""
    if policy not in POLICIES:
        raise ValueError(f"unknown exploration policy {policy!r}: use one of {', '.join(POLICIES)}")


def generate_episodes(seeds: Sequence[int], length: int, env: PlanningEnv,
                      policy: str = "noisy") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Several exploration episodes simulated as one batch; episode i is exactly
    ``generate_episode(seeds[i], ...)`` (each seed drives its own generator, and the batched dynamics
    are elementwise).

    Args:
        seeds: one seed per episode.
        length: T, the number of steps.
        env: the environment (its ``sample_start``, ``step_states`` and ``render_states``).
        policy: exploration policy (see ``explore_actions``).

    Returns:
        (frames uint8 [N, T, H, W, 3], actions float32 [N, T, 2], states float32 [N, T, 2]).
    """
    if length < 1:
        raise ValueError(f"episode length must be >= 1, got {length}")
    check_policy(policy)
    starts, actions, worlds = [], [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        start = env.sample_start(rng)
        actions.append(explore_actions(rng, length, env.max_action_norm, policy))
        worlds.append(env.explore_config(rng))  # drawn after: the starts and actions stay as they were
        starts.append(env.explore_start(rng, worlds[-1], start))
    acts = torch.from_numpy(np.stack(actions))
    start = torch.from_numpy(np.stack(starts))
    states = torch.empty(len(starts), length, start.shape[-1])
    frames = None
    # One batch per distinct world (Four-Rooms: which door is closed), each through that world's dynamics.
    for world in dict.fromkeys(worlds):
        rows = torch.tensor([i for i, w in enumerate(worlds) if w == world])
        sim = env if world == env.config else env.with_config(world)
        state = start[rows]
        for t in range(length):
            states[rows, t] = state
            state = sim.step_states(state, acts[rows, t])
        drawn = torch.as_tensor(sim.render_states(states[rows].reshape(-1, state.shape[-1])))
        if frames is None:
            frames = torch.empty(len(starts), length, *drawn.shape[1:], dtype=drawn.dtype)
        frames[rows] = drawn.reshape(len(rows), length, *drawn.shape[1:])
    return frames.numpy(), acts.numpy(), states.numpy()


def generate_episode(seed: int, length: int, env: PlanningEnv,
                     policy: str = "noisy") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One exploration episode, deterministic per seed, starting where ``env.sample_start`` puts it.

    Args:
        seed: seed of the episode's generator.
        length: T, the number of steps.
        env: the environment.
        policy: exploration policy (see ``explore_actions``).

    Returns:
        (frames uint8 [T, H, W, 3], actions float32 [T, 2], states float32 [T, 2]); frame t and state t
        are before action t.
    """
    frames, actions, states = generate_episodes([seed], length, env, policy)
    return frames[0], actions[0], states[0]


def encode_mp4(frames: np.ndarray, path: str | os.PathLike, fps: int = FPS) -> None:
    """Writes RGB frames as a lossless h264 mp4 (libx264rgb, rgb24, qp 0, no B-frames).

    Args:
        frames: uint8 [T, H, W, 3].
        path: the output file.
        fps: frame rate written in the container.
    """
    with av.open(os.fspath(path), mode="w") as container:
        stream = container.add_stream(CODEC, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = PIX_FMT
        stream.time_base = Fraction(1, fps)
        # No B-frames: decode order is presentation order, which every decoder seeks correctly.
        stream.options = {"qp": "0", "bf": "0"}
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def write_episodes(out_pattern: str, num_episodes: int, length: int, seed: int = 0,
                   env: PlanningEnv | None = None, policy: str = "noisy",
                   max_count: int = DEFAULT_MAX_COUNT, max_bytes: int = DEFAULT_MAX_BYTES,
                   overwrite: bool = False) -> ShardReport:
    """Generates exploration episodes and writes them as verified episode shards.

    Episode i is ``generate_episode(mix_seed(seed, i), ...)`` under the key ``ep%06d``; episodes are
    staged in a temporary folder (mp4 + action.npy + state.npy) and handed to
    ``write_episode_shards``, which checks every video decodes and reads the shards back.

    Args:
        out_pattern: shard paths with one printf number, e.g. ``out/two-rooms-%06d.tar``.
        num_episodes: how many episodes.
        length: steps per episode.
        seed: seed of the whole set.
        env: the environment (default: ``make_env("two-rooms")``).
        policy: exploration policy (see ``explore_actions``).
        max_count: most episodes in one shard.
        max_bytes: most bytes in one shard file.
        overwrite: replace shards already matching ``out_pattern``.

    Returns:
        The ShardReport of ``write_episode_shards``.
    """
    env = env if env is not None else make_env("two-rooms")
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    check_policy(policy)
    with tempfile.TemporaryDirectory(prefix="jepa-episodes-") as tmp:
        root = Path(tmp)
        for first in range(0, num_episodes, BATCH):
            ids = range(first, min(first + BATCH, num_episodes))
            frames, actions, states = generate_episodes([mix_seed(seed, i) for i in ids], length, env, policy)
            for j, i in enumerate(ids):
                key = f"ep{i:06d}"
                encode_mp4(frames[j], root / f"{key}.mp4")
                np.save(root / f"{key}.action.npy", actions[j])
                np.save(root / f"{key}.state.npy", states[j])
        return write_episode_shards(root, out_pattern, max_count=max_count, max_bytes=max_bytes,
                                    overwrite=overwrite)
