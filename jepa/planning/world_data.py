"""The world model's data: episodes encoded once by the frozen encoder, then windows of
(representations, actions) drawn per training step.

Every frame goes through the encoder once and the representations are cached on disk (keyed by the
encoder's checksum, the pooling and the data), so training never runs the encoder. Batches are a
pure function of (seed, step): a resumed run draws exactly the batches it would have drawn.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, IterableDataset

from ..atomic import save_safetensors_atomic, write_text_atomic
from ..data.shards import expand_shards
from ..errors import JEPAError
from ..seeding import mix_seed
from .perception import Perception, cache_key
from .trajectories import read_episodes

log = logging.getLogger(__name__)


@dataclass
class EncodedEpisodes:
    """Episodes as representations: ``reps[i]`` [T_i, D], ``actions[i]`` [T_i, A], ``states[i]`` [T_i, S] or
    None, ``keys[i]`` the episode's key."""

    keys: list[str]
    reps: list[torch.Tensor]
    actions: list[torch.Tensor]
    states: list[torch.Tensor | None]

    @property
    def action_dim(self) -> int:
        return int(self.actions[0].shape[-1])

    def split(self, val_fraction: float) -> tuple[EncodedEpisodes, EncodedEpisodes]:
        """The last ``val_fraction`` of the episodes (at least one) are held out."""
        n_val = max(1, round(len(self.keys) * val_fraction)) if len(self.keys) > 1 else 0
        cut = len(self.keys) - n_val

        def part(s: slice) -> EncodedEpisodes:
            return EncodedEpisodes(self.keys[s], self.reps[s], self.actions[s], self.states[s])

        return part(slice(0, cut)), part(slice(cut, None))

    def window_starts(self, length: int) -> torch.Tensor:
        """[M, 2] (episode, start) of every window of ``length`` steps."""
        rows = [(i, s) for i, r in enumerate(self.reps) for s in range(len(r) - length + 1)]
        if not rows:
            longest = max((len(r) for r in self.reps), default=0)
            raise JEPAError(f"no episode is {length} steps long (the longest has {longest}): shorten "
                            "model.history / rollout_steps or give longer episodes")
        return torch.tensor(rows)

    def windows(self, rows: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        reps = torch.stack([self.reps[i][s:s + length] for i, s in rows.tolist()])
        acts = torch.stack([self.actions[i][s:s + length] for i, s in rows.tolist()])
        return reps, acts


def read_converted(spec: str, convert: Callable[[np.ndarray], torch.Tensor],
                   max_episodes: int | None = None) -> EncodedEpisodes:
    """Episodes of ``spec`` with each one's frames (uint8 [T, H, W, 3]) replaced by ``convert(frames)``:
    representations for ``jepa world``, the encoder's pictures for ``jepa world encoder``."""
    keys, reps, acts, states = [], [], [], []
    for ep in read_episodes(spec, max_episodes):
        keys.append(ep.key)
        reps.append(convert(ep.frames))
        acts.append(torch.as_tensor(ep.actions, dtype=torch.float32))
        states.append(torch.as_tensor(ep.states, dtype=torch.float32) if ep.states is not None else None)
    if not keys:
        raise JEPAError(f"{spec} holds no episodes")
    dims = {a.shape[-1] for a in acts}
    if len(dims) > 1:
        raise JEPAError(f"the episodes of {spec} have actions of different sizes ({sorted(dims)})")
    return EncodedEpisodes(keys, reps, acts, states)


def encode_episodes(spec: str, perception: Perception, cache_dir: str | Path | None = None,
                    max_episodes: int | None = None) -> EncodedEpisodes:
    """Reads the episode shards ``spec`` and encodes every frame (from the cache when present)."""
    # Shards rewritten in place (jepa world episodes --overwrite) must not reuse the old encodings.
    files = [(u, os.stat(u).st_size, os.stat(u).st_mtime_ns) for u in expand_shards(spec) if os.path.isfile(u)]
    extra = {"max_episodes": max_episodes, "files": files}
    path = Path(cache_dir) / f"episodes-{cache_key(perception, spec, extra)}.safetensors" if cache_dir else None
    if path is not None and path.is_file():
        t = load_file(str(path))
        n = int(t["count"].item())
        keys = (path.with_suffix(".keys").read_text().splitlines())
        return EncodedEpisodes(keys, [t[f"rep{i}"] for i in range(n)], [t[f"act{i}"] for i in range(n)],
                               [t.get(f"state{i}") for i in range(n)])
    out = read_converted(spec, lambda frames: perception.encode(frames).float(), max_episodes)
    keys, reps, acts, states = out.keys, out.reps, out.actions, out.states
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"count": torch.tensor(len(keys))}
        for i in range(len(keys)):
            tensors[f"rep{i}"], tensors[f"act{i}"] = reps[i].contiguous(), acts[i].contiguous()
            if states[i] is not None:
                tensors[f"state{i}"] = states[i].contiguous()
        write_text_atomic(path.with_suffix(".keys"), "\n".join(keys))
        save_safetensors_atomic(path, tensors)  # last: the cache exists only once both files are whole
    return out


class Steps(IterableDataset):
    """Yields step numbers forever: the module draws each step's batch itself, from (seed, step)."""

    def __iter__(self):
        step = 0
        while True:
            yield step
            step += 1


class WorldDataModule(pl.LightningDataModule):
    """Episode shards -> encoded windows for ``jepa world``.

    Args:
        train: episode shards (a ``.tar`` path or brace pattern) in the format of ``jepa shards episodes``.
        encoder: folder written by ``jepa export``: the frozen encoder whose representations the
            world model predicts.
        grid: the representation is the encoder's tokens average-pooled to ``grid x grid``.
        blur: Gaussian sigma (pixels) the frames are low-passed with before the encoder (see
            ``jepa.planning.perception``; 0: none).
        batch_size: windows per step.
        val_fraction: share of episodes held out for the open-loop validation error.
        max_episodes: read at most this many episodes (None: all).
        cache_dir: where encoded episodes are cached (default: ``<encoder>/world-cache``).
    """

    def __init__(self, train: str, encoder: str, grid: int = 2, blur: float = 0.0, batch_size: int = 64,
                 val_fraction: float = 0.1, max_episodes: int | None = None, cache_dir: str | None = None) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise JEPAError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        self.train_spec, self.encoder_dir = train, encoder
        self.batch_size, self.val_fraction, self.max_episodes = batch_size, val_fraction, max_episodes
        self.cache_dir = cache_dir or str(Path(encoder) / "world-cache")
        self.perception = Perception.load(encoder, grid, blur)
        # Read and encoded now, once: a bad shard or a missing action.npy is named before anything runs.
        self.episodes = encode_episodes(train, self.perception, self.cache_dir, max_episodes)
        log.info("encoded %d episodes of %s", len(self.episodes.keys), train)
        self.train_part, self.val_part = self.episodes.split(val_fraction)
        self._stats: dict[str, tuple[list[float], list[float]]] = {}

    @property
    def rep_dim(self) -> int:
        return self.perception.rep_dim

    @property
    def encoder_id(self) -> str:
        return self.perception.encoder_id

    @property
    def action_dim(self) -> int:
        return self.episodes.action_dim

    def parts(self) -> tuple[EncodedEpisodes, EncodedEpisodes]:
        """(training, held-out) episodes."""
        return self.train_part, self.val_part

    def stats(self, what: str) -> tuple[list[float], list[float]]:
        """Mean and standard deviation per dimension of the training episodes' ``actions`` or ``reps``
        (what the world model standardises by), computed once."""
        if what not in self._stats:
            x = torch.cat(self.train_part.actions if what == "actions" else self.train_part.reps)
            self._stats[what] = (x.mean(0).tolist(), x.std(0).tolist())
        return self._stats[what]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(Steps(), batch_size=None)


def draw_windows(episodes: EncodedEpisodes, starts: torch.Tensor, length: int, batch_size: int, seed: int,
                 step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows of optimizer step ``step``: a pure function of (seed, step)."""
    gen = torch.Generator().manual_seed(mix_seed(seed, step))
    rows = starts[torch.randint(len(starts), (batch_size,), generator=gen)]
    return episodes.windows(rows, length)
