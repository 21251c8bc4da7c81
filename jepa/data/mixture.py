"""Mixed runs: several training sources (e.g. video shards and image shards, as V-JEPA 2), each
batch from one of them so shapes stay static, the source of batch ``j`` a pure function of
(seed, j) drawn with the mixture's weights, so a resumed run continues the same mixture."""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import JEPAError
from ..seeding import mix_seed


@dataclass
class MixtureSpec:
    """One component of a mixed run (``data.mix``).

    Args:
        spec: a DATA spec (folder, shards, list, builtin:<name>).
        weight: its share of the batches, relative to the other components.
    """

    spec: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise JEPAError(f"the mixture weight of {self.spec} must be positive, got {self.weight}")


def source_of_batch(seed: int, batch: int, cumulative: list[float]) -> int:
    """The component that makes global batch ``batch``: drawn with probabilities proportional to the
    weights (``cumulative``: their running sums)."""
    u = random.Random(mix_seed(seed, batch, 0x313C)).random() * cumulative[-1]
    return min(bisect.bisect_right(cumulative, u), len(cumulative) - 1)


class MixedLoader:
    """Interleaves the batches of one loader per component.

    Global batch ``j`` comes from component ``source_of_batch(seed, j)``; that component's loader is
    at its own batch number (how many of batches 0..j-1 were its), which ``position`` restores on
    resume. Each batch dict gains ``source`` (the component's index); batches of components other
    than the first lose their labels, which belong to other class sets than the probes'.

    Args:
        loaders: one resumable loader per component (each with ``position`` and ``len``).
        weights: the components' weights.
        seed: seed of the mixture draw.
    """

    def __init__(self, loaders: list[Any], weights: list[float], seed: int) -> None:
        if len(loaders) != len(weights) or not loaders:
            raise JEPAError("a mixture needs one loader per weight")
        self.loaders = loaders
        self.cumulative = list(itertools.accumulate(weights))
        self.seed = seed
        self.position = 0

    def __len__(self) -> int:
        return sum(len(loader) for loader in self.loaders)

    def counts_before(self, batch: int) -> list[int]:
        """How many of global batches 0..batch-1 each component made."""
        counts = [0] * len(self.loaders)
        for j in range(batch):
            counts[source_of_batch(self.seed, j, self.cumulative)] += 1
        return counts

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # Like ResumableLoader: a resumed epoch ends at the epoch boundary, not a full length later.
        start = self.position
        end = (start // len(self) + 1) * len(self)
        self.position = end
        for loader, count in zip(self.loaders, self.counts_before(start)):
            loader.position = count
        iterators: list[Iterator[dict[str, Any]] | None] = [None] * len(self.loaders)
        for j in range(start, end):
            k = source_of_batch(self.seed, j, self.cumulative)
            batch = None
            for _ in range(2):  # a component at the end of its epoch starts its next one
                if iterators[k] is None:
                    iterators[k] = iter(self.loaders[k])
                batch = next(iterators[k], None)
                if batch is not None:
                    break
                iterators[k] = None
            if batch is None:
                raise JEPAError(f"component {k} of the mixture yields no batches")
            batch["source"] = k
            if k:
                batch.pop("labels", None)
            yield batch

    # Resumed from the restored global step, as ResumableLoader.
    def state_dict(self) -> dict[str, int]:
        return {}

    def load_state_dict(self, state: dict[str, int]) -> None:
        pass
