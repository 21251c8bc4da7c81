"""Scores of surprise on violation-of-expectation pairs, as the intuitive-physics evaluations report them.

- relative accuracy: the share of pairs whose impossible clip is the more surprising one (a tie
  counts half), with the clip's surprise taken as the mean or the maximum over its windows;
- a bootstrap 95% interval over pairs for each;
- absolute accuracy: one threshold for all clips of an event, the 90th percentile of the possible
  clips' surprise, calls a clip impossible above it;
- AUROC: the probability that an impossible clip is more surprising than a possible one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def relative_accuracy(possible: np.ndarray, impossible: np.ndarray) -> float:
    """Share of pairs (possible[i], impossible[i]) where the impossible clip scores higher; ties half."""
    return float(np.mean((impossible > possible) + 0.5 * (impossible == possible)))


def bootstrap_interval(possible: np.ndarray, impossible: np.ndarray, draws: int = 1000,
                       seed: int = 0) -> tuple[float, float]:
    """95% interval of the relative accuracy over pairs resampled with replacement."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(possible), (draws, len(possible)))
    wins = (impossible > possible) + 0.5 * (impossible == possible)
    means = wins[index].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def auroc(possible: np.ndarray, impossible: np.ndarray) -> float:
    """P(a random impossible clip scores above a random possible one), ties half (Mann-Whitney)."""
    diff = impossible[:, None] - possible[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def absolute_accuracy(possible: np.ndarray, impossible: np.ndarray, quantile: float = 0.9) -> float:
    """Accuracy over all clips of calling a clip impossible when it scores above the ``quantile`` of
    the possible clips' scores."""
    threshold = np.quantile(possible, quantile)
    correct = np.concatenate([possible <= threshold, impossible > threshold])
    return float(correct.mean())


@dataclass
class EventScore:
    """One event's scores for one model (fractions in [0, 1])."""

    pairs: int
    mean_accuracy: float
    mean_interval: tuple[float, float]
    max_accuracy: float
    max_interval: tuple[float, float]
    absolute_accuracy: float
    auroc: float


def score_event(possible: list[np.ndarray], impossible: list[np.ndarray], draws: int = 1000,
                seed: int = 0) -> EventScore:
    """Scores the pairs of one event from each clip's surprise series."""
    means = np.array([s.mean() for s in possible]), np.array([s.mean() for s in impossible])
    maxes = np.array([s.max() for s in possible]), np.array([s.max() for s in impossible])
    return EventScore(
        pairs=len(possible),
        mean_accuracy=relative_accuracy(*means), mean_interval=bootstrap_interval(*means, draws, seed),
        max_accuracy=relative_accuracy(*maxes), max_interval=bootstrap_interval(*maxes, draws, seed),
        absolute_accuracy=absolute_accuracy(*means), auroc=auroc(*means),
    )
