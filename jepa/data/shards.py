"""WebDataset shards: ``<key>.jpg`` (or png/webp) images, or ``<key>.mp4`` (webm/mkv/avi/mov)
encoded videos, plus an optional ``<key>.cls`` label.

Training reads *resampled* shards with a fixed number of batches per epoch, so no rank ever waits
for another; each rank draws from its own disjoint subset of the shards.
"""

from __future__ import annotations

import io
import os
import random
import tarfile
import warnings
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from braceexpand import braceexpand
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.tariterators import tarfile_samples

from ..errors import JEPAError
from ..masks.collator import MaskCollator
from ..seeding import mix_seed
from .failures import MAX_FAILURES_IN_A_ROW, is_config_error
from .transforms import EvalTransform, TrainTransform
from .video.sources import VIDEO_KEYS, VideoRef

if TYPE_CHECKING:
    from .views import ViewMaker

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")


def is_shard_spec(spec: str) -> bool:
    return spec.endswith(".tar") or (".tar" in spec and "{" in spec)


def expand_shards(pattern: str) -> list[str]:
    """Brace-expands ``pattern`` and checks every shard exists."""
    urls = list(braceexpand(pattern))
    missing = [u for u in urls if not os.path.isfile(u)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise JEPAError(f"shard {missing[0]} does not exist{more}")
    return urls


def decode_image(sample: dict[str, Any]) -> tuple[Image.Image | VideoRef, int | None]:
    """Decodes one raw webdataset sample into (RGB image, label or None); raises on bad bytes. A
    video sample gives a ``VideoRef`` to its bytes instead (the clip transform decodes the frames
    it uses)."""
    label = sample.get("cls")
    label = int(label.decode().strip()) if label is not None else None
    video = next((k for k in VIDEO_KEYS if k in sample), None)
    if video is not None:
        return VideoRef(sample[video], f"{sample.get('__url__')}:{sample.get('__key__')}.{video}"), label
    key = next((k for k in IMAGE_KEYS if k in sample), None)
    if key is None:
        raise ValueError(f"sample {sample.get('__key__')} has no image ({'/'.join(IMAGE_KEYS)}) or video "
                         f"({'/'.join(VIDEO_KEYS)})")
    with Image.open(io.BytesIO(sample[key])) as img:
        img = img.convert("RGB")
    return img, label


def count_samples(urls: list[str]) -> int:
    """Number of distinct sample keys in local shards (reads tar headers only)."""
    total = 0
    for url in urls:
        with tarfile.open(url) as tar:
            total += len({m.name.split(".", 1)[0] for m in tar.getmembers() if m.isreg()})
    return total


def read_classes_file(urls: list[str]) -> tuple[str, ...] | None:
    """Class names from a ``classes.txt`` beside the shards, when there is one."""
    path = os.path.join(os.path.dirname(urls[0]), "classes.txt")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return tuple(line.strip() for line in f if line.strip())


class SkipLog:
    """Collects why samples were skipped, to be attached to the next batch."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def handler(self, exn: Exception) -> bool:
        self.reasons.append(f"unreadable shard data: {exn}")
        return True  # keep going


def raw_samples(url: str, skips: SkipLog) -> Iterator[dict[str, Any]]:
    yield from tarfile_samples([{"url": url}], handler=skips.handler)


class ShardTrainStream(IterableDataset):
    """Batches of augmented, masked training samples from resampled shards.

    Batch ``j`` of epoch ``e`` is produced by one worker from its own shuffled stream, seeded by
    (seed, epoch, rank, role). ``start`` (a global batch number, set by the loader before each
    epoch) makes a resumed run skip the raw samples already used, so it continues the same stream.
    """

    def __init__(
        self,
        urls: list[str],
        transform: TrainTransform,
        collator: MaskCollator,
        batch_size: int,
        batches_per_epoch: int,
        seed: int,
        rank: int,
        world_size: int,
        shuffle_buffer: int = 2000,
        views: ViewMaker | None = None,
    ) -> None:
        super().__init__()
        self.views = views
        if len(urls) >= world_size:
            self.urls = urls[rank::world_size]
        else:
            warnings.warn(f"{len(urls)} shards for {world_size} ranks: ranks share shards", stacklevel=2)
            self.urls = urls
        self.transform = transform
        self.collator = collator
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.seed = seed
        self.rank = rank
        self.shuffle_buffer = shuffle_buffer
        self.start = 0

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # Read ``start`` now: with workers this runs on the worker's copy, without them before the
        # loader moves ``start`` on to the next epoch.
        return self._batches(self.start)

    def _stream(self, epoch: int, role: int, skips: SkipLog) -> Iterator[dict[str, Any]]:
        rng = random.Random(mix_seed(self.seed, epoch, self.rank, role))
        buffer: list[dict[str, Any]] = []
        empty_shards = 0
        while True:
            got_any = False
            for sample in raw_samples(rng.choice(self.urls), skips):
                got_any = True
                if len(buffer) < self.shuffle_buffer:
                    buffer.append(sample)
                    continue
                k = rng.randrange(len(buffer))
                yield buffer[k]
                buffer[k] = sample
            empty_shards = 0 if got_any else empty_shards + 1
            if empty_shards > 10 * len(self.urls):
                raise JEPAError(f"no readable samples in shards {self.urls[0]} ...: check the files")

    def _batches(self, start: int) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        epoch, offset = divmod(start, self.batches_per_epoch)
        # Worker ``wid`` continues the stream of the worker that made batch ``offset + wid`` in an
        # uninterrupted epoch, after skipping the raw samples that worker had already used.
        role = (wid + offset) % nw
        skips = SkipLog()
        stream = self._stream(epoch, role, skips)
        for _ in range(len(range(role, offset, nw)) * self.batch_size):
            next(stream)
        for j in range(offset + wid, self.batches_per_epoch, nw):
            step = epoch * self.batches_per_epoch + j
            samples = []
            failures = 0
            while len(samples) < self.batch_size:
                if failures >= MAX_FAILURES_IN_A_ROW:
                    raise JEPAError(f"{failures} inputs in a row failed to load, last: {skips.reasons[-1]}")
                raw = next(stream)
                index = self.rank * self.batch_size + len(samples)
                rng = random.Random(mix_seed(self.seed, step, index, 1))
                try:
                    img, label = decode_image(raw)
                    x = self.transform(img, rng)
                except Exception as exn:  # a bad image or video is skipped, counted and reported
                    if is_config_error(exn):
                        raise
                    skips.reasons.append(f"{raw.get('__url__')}:{raw.get('__key__')}: {exn}")
                    failures += 1
                    continue
                failures = 0
                sample = {"input": x, "label": label, "index": index, "step": step,
                          "short": [img.name] if getattr(self.transform, "last_short", False) else []}
                if self.views is not None:
                    sample["views"] = self.views.pil(img, self.seed, step, index)
                samples.append(sample)
            samples[0]["skipped"], skips.reasons = skips.reasons, []
            yield self.collator(samples)


class ShardEvalStream(IterableDataset):
    """The first ``limit`` decodable samples of ``urls`` in order, as (image tensor, label) pairs.
    Shards are split across workers; an undecodable sample yields (None, why), which
    ``eval_loader.collate_eval`` drops and reports."""

    def __init__(self, urls: list[str], transform: EvalTransform, limit: int | None = None) -> None:
        super().__init__()
        self.urls = urls
        self.transform = transform
        self.limit = limit

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        limit = None if self.limit is None else -(-self.limit // nw)
        produced = 0
        skips = SkipLog()
        for url in self.urls[wid::nw]:
            for raw in raw_samples(url, skips):
                if limit is not None and produced >= limit:
                    return
                if "cls" not in raw:
                    raise JEPAError(f"shards {self.urls[0]} ... have no labels (.cls): probes need labelled data")
                try:
                    img, label = decode_image(raw)
                    # The clip's start is fixed by the sample's key, whatever the worker count.
                    x = self.transform(img, zlib.crc32(str(raw.get("__key__")).encode()))
                except Exception as exn:  # skipped; collate_eval hands the reason on to be counted
                    yield None, f"{raw.get('__url__')}:{raw.get('__key__')}: {type(exn).__name__}: {exn}"
                    continue
                produced += 1
                yield x, label
