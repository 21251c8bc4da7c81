"""``jepa world perception``: which representation to plan in, measured before any world model is
trained. For every (grid, blur) it reports how well the agent's position can be read from the frozen
representation (a ridge probe fitted on some episodes, judged on the others) and how well the
distance between two representations orders the distance between the positions they show (what
``jepa plan --energy latent`` relies on). Where the states also hold an object's pose (Push-T: block
x, y and angle in columns 2-4), a second ridge probe reads it: the block's position error and its
angle error in degrees (the angle probed as its cosine and sine).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import JEPAError
from ..export import load_encoder
from .costs import PositionProbe
from .perception import Perception
from .trajectories import read_episodes


@dataclass
class PerceptionScore:
    """One (grid, blur): held-out probe error (world units), rank correlation of distances, and the
    encoding time of its blur (all grids of one blur share one encoder pass)."""

    grid: int
    blur: float
    dim: int
    probe_mean: float
    probe_q99: float
    distance_spearman: float
    ms_per_frame: float
    block_mean: float | None = None  # Push-T: the block's position error, mean over held-out frames
    angle_mean_deg: float | None = None  # and its angle error in degrees


def _ranks(x: torch.Tensor) -> torch.Tensor:
    return x.argsort().argsort().double()


def score_perceptions(encoder_dir: str, episodes: str, grids: Sequence[int], blurs: Sequence[float],
                      max_episodes: int = 100, held_out: float = 0.2, pairs: int = 4000,
                      seed: int = 0) -> list[PerceptionScore]:
    """Scores every (grid, blur) on the same frames.

    Args:
        encoder_dir: a ``jepa export`` folder.
        episodes: episode shards with ``state.npy`` (positions are the first two state values).
        grids, blurs: the settings to compare.
        max_episodes: episodes read (frames of the last ``held_out`` share judge the probe).
        held_out: share of episodes held out.
        pairs: random frame pairs for the distance correlation.
        seed: seeds the pairs.

    Returns:
        one score per setting, in the order grids x blurs.
    """
    eps = list(read_episodes(episodes, max_episodes=max_episodes))
    if len(eps) < 2 or any(e.states is None for e in eps):
        raise JEPAError(f"{episodes}: comparing perceptions needs at least 2 episodes with state.npy (positions)")
    cut = max(1, min(len(eps) - 1, round(len(eps) * (1 - held_out))))
    frames = np.concatenate([e.frames for e in eps])
    states = torch.as_tensor(np.concatenate([e.states for e in eps]), dtype=torch.float64)
    pos = states[:, :2]
    # The block's pose, its angle on a lever of 100 (pixels in Push-T) so that no column dominates the ridge fit.
    pose = (torch.cat([states[:, 2:4], 100 * torch.cos(states[:, 4:5]), 100 * torch.sin(states[:, 4:5])], dim=1)
            if states.shape[1] >= 5 else None)
    train = torch.zeros(len(frames), dtype=torch.bool)
    train[: sum(len(e) for e in eps[:cut])] = True
    gen = torch.Generator().manual_seed(seed)
    i, j = torch.randint(len(frames), (2, pairs), generator=gen)
    true_rank = _ranks((pos[i] - pos[j]).norm(dim=1))
    encoder = load_encoder(encoder_dir)
    scores: dict[tuple[int, float], PerceptionScore] = {}
    for blur in blurs:
        # The encoder runs once per blur; every grid pools the same tokens.
        perception = Perception(encoder, grids[0], blur)
        t0 = time.perf_counter()
        pooled = perception.encode_grids(frames, grids)
        ms = (time.perf_counter() - t0) * 1e3 / len(frames)
        for grid, reps in zip(grids, pooled):
            reps = reps.double()
            probe = PositionProbe().fit(reps[train], pos[train])
            err = (probe(reps[~train]) - pos[~train]).norm(dim=1)
            z = (reps - reps[train].mean(0)) / reps[train].std(0).clamp_min(1e-6)
            rep_rank = _ranks((z[i] - z[j]).square().mean(1))
            spearman = float(torch.corrcoef(torch.stack([rep_rank, true_rank]))[0, 1])
            scores[grid, blur] = PerceptionScore(grid, float(blur), reps.shape[1], float(err.mean()),
                                                 float(torch.quantile(err, 0.99)), spearman, ms,
                                                 *(_pose_errors(reps, pose, train) if pose is not None else ()))
    return [scores[g, b] for g in grids for b in blurs]


def _pose_errors(reps: torch.Tensor, pose: torch.Tensor, train: torch.Tensor) -> tuple[float, float]:
    """Held-out mean errors of a ridge probe of the pose: position (state units) and angle (degrees)."""
    guess = PositionProbe().fit(reps[train], pose[train])(reps[~train])
    true = pose[~train]
    position = (guess[:, :2] - true[:, :2]).norm(dim=1).mean()
    turn = torch.atan2(guess[:, 3], guess[:, 2]) - torch.atan2(true[:, 3], true[:, 2])
    angle = torch.rad2deg(torch.remainder(turn + math.pi, 2 * math.pi) - math.pi).abs().mean()
    return float(position), float(angle)


def table(scores: Sequence[PerceptionScore]) -> str:
    pose = any(s.block_mean is not None for s in scores)
    extra = f" {'block mean':>10} {'angle deg':>9}" if pose else ""
    rows = [f"{'grid':>4} {'blur':>5} {'dim':>6} {'probe mean':>10} {'probe q99':>9} {'spearman':>8} {'ms/frame':>8}" + extra]
    rows += [f"{s.grid:>4} {s.blur:>5g} {s.dim:>6} {s.probe_mean:>10.4f} {s.probe_q99:>9.4f} "
             f"{s.distance_spearman:>8.3f} {s.ms_per_frame:>8.2f}"
             + (f" {s.block_mean:>10.4f} {s.angle_mean_deg:>9.1f}" if pose else "") for s in scores]
    return "\n".join(rows)
