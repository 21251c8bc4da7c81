"""Loaders of labelled, un-augmented images for feature extraction (probes during and after training).

Inputs that fail to decode are skipped: the datasets yield ``(None, reason)`` for them and
``collate_eval`` drops them from the batch, handing the reasons on so the caller can count them.
"""

from __future__ import annotations

import random

import torch
from torch.utils.data import DataLoader

from .sampling import EvalImages
from .shards import ShardEvalStream
from .spec import Data
from .transforms import EvalTransform
from .workers import WorkerSafeLoader


def collate_eval(batch: list[tuple[torch.Tensor | None, int | str]]) -> tuple[torch.Tensor | None, torch.Tensor, list[str]]:
    """(images [B, 3, H, W] or None when every input failed, labels [B], reasons for the skipped)."""
    kept = [(x, y) for x, y in batch if x is not None]
    reasons = [str(y) for x, y in batch if x is None]
    if not kept:
        return None, torch.empty(0, dtype=torch.long), reasons
    return torch.stack([x for x, _ in kept]), torch.tensor([int(y) for _, y in kept]), reasons


def eval_loader(data: Data, transform: EvalTransform, limit: int | None, batch_size: int, workers: int,
                subset_seed: int | None = None) -> DataLoader:
    """The first ``limit`` samples of ``data`` (a seeded random ``limit`` of a map-style source when
    ``subset_seed`` is given), in order, batched with ``collate_eval``."""
    if data.is_stream:
        dataset = ShardEvalStream(data.urls, transform, limit)
    else:
        n = len(data.source)
        if limit is not None and subset_seed is not None and limit < n:
            indices = sorted(random.Random(subset_seed).sample(range(n), limit))
        else:
            indices = list(range(n if limit is None else min(limit, n)))
        dataset = EvalImages(data.source, transform, indices)
    return WorkerSafeLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_eval)
