"""Open-loop evaluation of a world model in representation space: from true frames, imagine
``horizons`` steps under the true actions and compare with the true representations, against two
baselines: copying the last representation (nothing moves) and the same model fed the actions of
other windows (does it use the actions at all?)."""

from __future__ import annotations

from typing import Any

import torch

from .world_data import EncodedEpisodes
from .world_model import WorldModel


@torch.no_grad()
def open_loop_errors(model: WorldModel, episodes: EncodedEpisodes, horizons: int = 8, stride: int = 4,
                     max_windows: int = 4096, seed: int = 0, batch_size: int = 512) -> dict[str, Any]:
    """Mean L1 error (in the model's standard units) per horizon 1..``horizons`` (lists of floats) for ``model``, ``copy_last`` and
    ``shuffled_actions``, over windows taken every ``stride`` steps of ``episodes``."""
    h = model.config.history
    length = h + horizons
    starts = episodes.window_starts(length)
    starts = starts[starts[:, 1] % stride == 0]
    gen = torch.Generator().manual_seed(seed)
    if len(starts) > max_windows:
        starts = starts[torch.randperm(len(starts), generator=gen)[:max_windows]]
    reps, acts = episodes.windows(starts, length)
    # Another window's actions for each window (a derangement: never its own).
    shift = torch.randint(1, len(starts), (1,), generator=gen).item() if len(starts) > 1 else 0
    shuffled = acts.roll(shifts=int(shift), dims=0)
    sums = {"model": torch.zeros(horizons), "copy_last": torch.zeros(horizons), "shuffled_actions": torch.zeros(horizons)}
    model = model.eval()
    for i in range(0, len(starts), batch_size):
        r, a, s = reps[i:i + batch_size], acts[i:i + batch_size], shuffled[i:i + batch_size]
        target = r[:, h:]
        for name, actions in (("model", a), ("shuffled_actions", s)):
            imagined = model.unroll(r[:, :h], actions[:, :h - 1], actions[:, h - 1:h - 1 + horizons])
            sums[name] += (model.normalize(imagined) - model.normalize(target)).abs().mean(dim=2).sum(0)
        sums["copy_last"] += (model.normalize(r[:, h - 1:h]) - model.normalize(target)).abs().mean(dim=2).sum(0)
    out: dict[str, Any] = {k: [round(float(v) / len(starts), 5) for v in t] for k, t in sums.items()}
    out["windows"] = int(len(starts))
    out["episodes"] = len(episodes.keys)
    return out
