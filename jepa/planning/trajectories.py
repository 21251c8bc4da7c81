"""Reading episode shards (the Push-T format: ``<key>.mp4``, ``<key>.action.npy``, optional
``<key>.state.npy``) as whole episodes, and cutting them into windows for world-model training."""

from __future__ import annotations

import tarfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from webdataset.tariterators import group_by_keys, tar_file_expander

from ..data.shard_inputs import load_npy
from ..data.shards import expand_shards, is_shard_spec
from ..data.video.decode import decode_planned, one_line
from ..errors import JEPAError

FORMAT = "episode shards need <key>.mp4 + <key>.action.npy (+ state.npy)"


@dataclass
class Episode:
    """One episode: frame t is the observation before action t.

    Attributes:
        key: the sample's key in its shard.
        frames: uint8 [T, H, W, 3].
        actions: float32 [T, A].
        states: float32 [T, S], or None when the shard has no ``state.npy``.
        url: the shard it came from.
        dropped: trailing steps cut because the video and the arrays had different lengths.
    """

    key: str
    frames: np.ndarray
    actions: np.ndarray
    states: np.ndarray | None
    url: str = ""
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.actions)


def held_out_count(n: int, fraction: float) -> int:
    """Episodes held out of ``n`` by a whole-episode split: the last ``fraction`` of them, at least one
    (frames of one episode are near copies of each other, so episodes are never split)."""
    if n < 2 or not 0 < fraction < 1:
        raise JEPAError(f"a split needs at least 2 episodes and a fraction between 0 and 1, got {n} and {fraction}")
    return max(1, round(fraction * n))


def read_episodes(spec: str, max_episodes: int | None = None, frames: bool = True) -> Iterator[Episode]:
    """Episodes of shards, in order, decoded whole (every frame, with the project's video decoder).

    The spec is checked now (a missing shard raises here); shards are read lazily. When the video
    and the arrays have different lengths, all are cut to the shortest, with a warning, and
    ``Episode.dropped`` says by how much.

    Args:
        spec: a shard path or brace pattern, e.g. ``data/pusht/pusht-{000000..000003}.tar``.
        max_episodes: stop after this many episodes (None: all).
        frames: decode the videos; False reads actions and states only (``Episode.frames`` is then
            empty), for what replays the recordings in a simulator.

    Returns:
        An iterator of Episodes.

    Raises:
        JEPAError: (one line) a spec that is not shards, a missing or unreadable shard, a sample
            without ``action.npy`` or ``mp4``, an array that is not [T, N], a video that does not decode.
    """
    if not is_shard_spec(spec):
        raise JEPAError(f"episode data {spec!r} is not a shard path or brace pattern ending in .tar; {FORMAT}")
    if max_episodes is not None and max_episodes < 0:
        raise ValueError(f"max_episodes must be >= 0 or None, got {max_episodes}")
    urls = expand_shards(spec)
    return _episodes(urls, max_episodes, frames)


def _episodes(urls: list[str], max_episodes: int | None, frames: bool = True) -> Iterator[Episode]:
    count = 0
    for url in urls:
        if max_episodes is not None and count >= max_episodes:
            return
        try:
            stream = open(url, "rb")  # closed by the with below, also when the caller stops early
        except OSError as exn:
            raise JEPAError(f"cannot read episode shard {url}: {one_line(exn)}") from exn
        with stream:
            for sample in _samples(url, stream):
                if max_episodes is not None and count >= max_episodes:
                    return
                yield _episode(url, sample, frames)
                count += 1


def _samples(url: str, stream: BinaryIO) -> Iterator[dict]:
    # Only the reading of the tar is wrapped: errors about a sample's content are raised by _episode.
    samples = group_by_keys(tar_file_expander([{"url": url, "stream": stream}]))
    while True:
        try:
            sample = next(samples)
        except StopIteration:
            return
        except (OSError, tarfile.TarError, ValueError) as exn:
            raise JEPAError(f"cannot read episode shard {url}: {one_line(exn)}") from exn
        yield sample


def _array(url: str, key: str, sample: dict, member: str) -> np.ndarray:
    try:
        array = load_npy(sample[member])
    except Exception as exn:  # any failure means the member is not a plain .npy array
        raise JEPAError(f"episode {key} in {url}: {member} is not a .npy array ({one_line(exn)})") from exn
    if array.ndim != 2 or len(array) == 0:
        raise JEPAError(f"episode {key} in {url}: {member} has shape {array.shape}, expected [T, N] with T > 0")
    return array.astype(np.float32, copy=False)


def _episode(url: str, sample: dict, decode: bool = True) -> Episode:
    key = sample["__key__"]
    for member in ("action.npy", "mp4"):
        if member not in sample:
            raise JEPAError(f"episode {key} in {url} has no {member}: {FORMAT}")
    actions = _array(url, key, sample, "action.npy")
    states = _array(url, key, sample, "state.npy") if "state.npy" in sample else None
    if decode:
        decoded = decode_planned(sample["mp4"], lambda n, fps: range(n), name=f"{url}:{key}.mp4")
        frames = np.stack([decoded.frames[i] for i in sorted(decoded.frames)])
    else:
        frames = np.zeros((0, 0, 0, 3), np.uint8)
    lengths = ([len(frames)] if decode else []) + [len(actions)] + ([len(states)] if states is not None else [])
    steps = min(lengths)
    if max(lengths) != steps:
        named = (f"{len(frames)} frames, " if decode else "") + f"{len(actions)} actions" + (
            f", {len(states)} states" if states is not None else "")
        warnings.warn(f"episode {key} in {url}: {named}; cut to {steps} steps", stacklevel=3)
        frames, actions = frames[:steps], actions[:steps]
        states = states[:steps] if states is not None else None
    return Episode(key, frames, actions, states, url, max(lengths) - steps)


def windows(episode: Episode, length: int,
            stride: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Slices of ``length`` consecutive steps, starting every ``stride`` steps; a window is left out
    when it would run past the episode's end, so there are ``(T - length) // stride + 1`` (or none).

    Args:
        episode: the episode.
        length: steps per window.
        stride: steps between window starts.

    Returns:
        An iterator of (frames [length, H, W, 3], actions [length, A], states [length, S] or None),
        views into the episode's arrays.
    """
    if length < 1 or stride < 1:
        raise ValueError(f"window length and stride must be >= 1, got {length} and {stride}")
    states = episode.states
    for start in range(0, len(episode) - length + 1, stride):
        end = start + length
        yield episode.frames[start:end], episode.actions[start:end], None if states is None else states[start:end]
