"""Map-style training data: a step-aware batch sampler, the augmenting dataset, and a loader that
continues where a resumed run stopped."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from ..errors import JEPAError
from ..seeding import mix_seed
from .failures import is_config_error
from .transforms import EvalTransform, TrainTransform

if TYPE_CHECKING:
    from .views import ViewMaker
from .workers import WorkerSafeLoader


class ImageSource(Protocol):
    """What a map-style image source provides (folders, builtin data)."""

    def __len__(self) -> int: ...

    def load(self, index: int) -> tuple[Image.Image, int | None]: ...

    def describe(self, index: int) -> str: ...


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields batches of (sample index, global batch number) pairs for one rank.

    Each epoch is a fresh permutation seeded by (seed, epoch); rank ``r`` takes every
    ``world_size``-th element, so ranks see disjoint samples. ``start`` (a global batch number)
    says where the next ``iter()`` begins: mid-epoch after a resume, at an epoch start otherwise.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.per_rank = num_samples // world_size
        self.batches_per_epoch = self.per_rank // batch_size
        if self.batches_per_epoch < 1:
            raise JEPAError(
                f"the training data has {num_samples} samples: fewer than one batch of {batch_size} "
                f"per rank ({world_size} ranks); lower data.batch_size"
            )
        self.start = 0

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return self._batches(self.start)

    def _batches(self, start: int) -> Iterator[list[tuple[int, int]]]:
        epoch, offset = divmod(start, self.batches_per_epoch)
        g = torch.Generator().manual_seed(mix_seed(self.seed, epoch) >> 1)
        perm = torch.randperm(self.num_samples, generator=g)
        mine = perm[self.rank : self.per_rank * self.world_size : self.world_size]
        for j in range(offset, self.batches_per_epoch):
            step = epoch * self.batches_per_epoch + j
            yield [(i, step) for i in mine[j * self.batch_size : (j + 1) * self.batch_size].tolist()]


class AugmentedImages(Dataset):
    """Loads ``source[index]`` and augments it with randomness drawn from (seed, step, index).

    An input that fails to load is replaced by the next loadable one (a fixed probe sequence, so
    the replacement is deterministic) and named in the sample's ``skipped`` list.
    """

    def __init__(self, source: ImageSource, transform: TrainTransform, seed: int, max_replacements: int = 16,
                 views: ViewMaker | None = None) -> None:
        self.source = source
        self.transform = transform
        self.seed = seed
        self.max_replacements = max_replacements
        self.views = views

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, step = key
        skipped: list[str] = []
        n = len(self.source)
        for k in range(self.max_replacements):
            candidate = (index + k * 7919) % n
            rng = random.Random(mix_seed(self.seed, step, index, 1))
            try:
                img, label = self.source.load(candidate)
                x = self.transform(img, rng)  # a clip is decoded here: its failures are skipped too
                break
            except Exception as exn:  # decode errors of any kind: skip, count, report
                if is_config_error(exn):
                    raise
                skipped.append(f"{self.source.describe(candidate)}: {type(exn).__name__}: {exn}")
        else:
            raise JEPAError(f"{self.max_replacements} inputs in a row failed to load, last: {skipped[-1]}")
        short = [self.source.describe(candidate)] if getattr(self.transform, "last_short", False) else []
        sample = {"input": x, "label": label, "index": index, "step": step, "skipped": skipped, "short": short}
        if self.views is not None:
            sample["views"] = self.views.pil(img, self.seed, step, index)
        return sample


class EvalImages(Dataset):
    """Deterministic (image or clip tensor, label) pairs for feature extraction; refuses unlabelled data.
    Batch them with ``eval_loader.collate_eval``."""

    def __init__(self, source: ImageSource, transform: EvalTransform, indices: list[int] | None = None) -> None:
        self.source = source
        self.transform = transform
        self.indices = indices if indices is not None else list(range(len(source)))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, int | str]:
        """(image, label), or (None, why) for an input that failed to load (see collate_eval)."""
        index = self.indices[i]
        try:
            img, label = self.source.load(index)
            if label is not None:
                x = self.transform(img, index)
        except Exception as exn:  # decode errors of any kind: skipped, counted by the caller
            return None, f"{self.source.describe(index)}: {type(exn).__name__}: {exn}"
        if label is None:
            raise JEPAError(f"{self.source.describe(index)} has no label: probes need labelled data")
        return x, label


class ResumableLoader(WorkerSafeLoader):
    """A DataLoader whose batches continue from a global batch number ``position``.

    ``position`` is set from the restored trainer step when the loader is built; every ``iter()``
    starts there and moves it to the next epoch start. The batch sampler (map-style data) or the
    dataset (shard streams) holds the ``start`` that its iterator reads.
    """

    position: int = 0

    def __iter__(self):  # type: ignore[override]
        holder = self.batch_sampler if isinstance(self.batch_sampler, StepBatchSampler) else self.dataset
        per_epoch = len(self)
        holder.start = self.position
        iterator = super().__iter__()
        self.position = (self.position // per_epoch + 1) * per_epoch
        return iterator

    # Lightning saves and restores loaders that have these two methods without warning that the
    # loader is not resumable. The position itself is derived from the restored global step.
    def state_dict(self) -> dict[str, int]:
        return {}

    def load_state_dict(self, state: dict[str, int]) -> None:
        pass
