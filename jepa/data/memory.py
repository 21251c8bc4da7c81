"""Training data held in memory as uint8 tensors, augmented and masked in batches on the device.

Small datasets (CIFAR-10 is 150 MB as uint8) are decoded once into a cache file (safetensors,
written atomically next to the data, or in the user cache when that folder is read-only) whose
name carries a key of the spec's content: the shard or image files' names, sizes and modification
times, and the stored resolution. A cache whose key no longer matches is rebuilt. The images are
then loaded to the training device once, and every step crops, flips and normalises a whole batch
there in one ``grid_sample`` call: no decoding, no per-image Python, no workers.

Crops, flips and masks are drawn per (seed, step, index) exactly as the streaming path draws them,
so a resumed run sees the same batches.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import logging
import multiprocessing as mp
import os
import stat
import weakref
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from safetensors import safe_open

from ..atomic import save_safetensors_atomic
from ..errors import JEPAError
from ..masks.multiblock import MultiBlockMasker
from .device_crops import crop_boxes, resized_crops
from .sampling import StepBatchSampler
from .shards import SkipLog, decode_image, raw_samples
from .spec import Data

log = logging.getLogger("jepa")
CACHE_VERSION = 1


def _files_of(data: Data) -> list[Path]:
    if data.is_stream:
        return [Path(u) for u in data.urls or []]
    samples = getattr(data.source, "samples", None)  # a folder: (path, label) pairs
    return [Path(p) for p, _ in samples] if samples is not None else []


def content_key(data: Data, size: tuple[int, int]) -> str:
    """A key that changes when the data or the stored resolution changes: names, sizes and
    modification times of the files (builtin data: its name and length, it is generated in code)."""
    files = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in _files_of(data)]
    desc = {"v": CACHE_VERSION, "spec": data.spec, "files": files, "size": list(size),
            "n": None if data.is_stream else len(data.source)}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:20]


def _writable(folder: Path) -> bool:
    # A folder without write bits is read-only by intent, even to root (who may write anyway).
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & stat.S_IWUSR)


def cache_path(data: Data, size: tuple[int, int], split: str) -> Path:
    """Next to the data when that folder is writable, else in the user cache."""
    files = _files_of(data)
    stem = f"{split}-{size[0]}x{size[1]}.jepa-cache.safetensors"
    if files and _writable(files[0].parent):
        return files[0].parent / stem
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha256(data.spec.encode()).hexdigest()[:12]
    return Path(root) / "jepa" / "data" / f"{digest}-{stem}"


def available_memory(device: torch.device) -> int:
    """Bytes free for the cache on ``device`` (MemAvailable for the CPU)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def _fit(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Short side resized to the stored size, centre crop: [H, W, 3] uint8."""
    if (img.height, img.width) != size:
        img = TF.center_crop(TF.resize(img, min(size), antialias=True), list(size))
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _decode_all(data: Data, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    images, labels, skipped = [], [], []
    if data.is_stream:
        skips = SkipLog()
        for url in data.urls or []:
            for raw in raw_samples(url, skips):
                try:
                    img, label = decode_image(raw)
                except Exception as exn:  # undecodable: skipped, counted, reported
                    skipped.append(f"{url}:{raw.get('__key__')}: {type(exn).__name__}: {exn}")
                    continue
                images.append(_fit(img, size))
                labels.append(-1 if label is None else int(label))
        skipped += skips.reasons
    else:
        for i in range(len(data.source)):
            try:
                img, label = data.source.load(i)
            except Exception as exn:
                skipped.append(f"{data.source.describe(i)}: {type(exn).__name__}: {exn}")
                continue
            images.append(_fit(img, size))
            labels.append(-1 if label is None else int(label))
    if not images:
        raise JEPAError(f"{data.spec} holds no decodable images")
    return np.stack(images), np.asarray(labels, dtype=np.int64), skipped


class MemoryImages:
    """The decoded training images [N, 3, H, W] uint8 and labels [N] (-1: unlabelled)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, skipped: list[str], path: Path) -> None:
        self.images, self.labels, self.skipped, self.path = images, labels, skipped, path

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def nbytes(self) -> int:
        return self.images.numel()

    @classmethod
    def load_or_build(cls, data: Data, size: tuple[int, int], split: str, device: torch.device,
                      estimate_count: int | None = None) -> MemoryImages:
        """Reads the cache of ``data`` at ``size``, building it first when missing or stale; refuses
        a dataset that does not fit in the memory of ``device``."""
        path = cache_path(data, size, split)
        key = content_key(data, size)
        if estimate_count is not None:
            need = estimate_count * 3 * size[0] * size[1]
            free = available_memory(device)
            if need > 0.8 * free:
                raise JEPAError(
                    f"data.memory_cache: {data.spec} decodes to {need / 2**30:.1f} GiB at {size[0]}x{size[1]} but "
                    f"{free / 2**30:.1f} GiB of {device.type} memory is available: set data.memory_cache false to "
                    "stream it from disk instead"
                )
        if path.is_file():
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            if meta.get("key") == key:
                return cls._read(path, meta)
            log.warning("data cache %s is stale (the data or the resolution changed): rebuilding it", path)
        images, labels, skipped = _decode_all(data, size)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"images": torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), "labels": torch.from_numpy(labels)}
        # Atomic: a reader never sees half a cache.
        save_safetensors_atomic(path, tensors, metadata={"key": key, "spec": data.spec, "skipped": json.dumps(skipped)})
        log.info("cached %d images of %s at %dx%d in %s", len(labels), data.spec, size[0], size[1], path)
        return cls(tensors["images"], tensors["labels"], skipped, path)

    @classmethod
    def _read(cls, path: Path, meta: dict[str, str]) -> MemoryImages:
        with safe_open(str(path), "pt") as f:
            images, labels = f.get_tensor("images"), f.get_tensor("labels")
        return cls(images, labels, json.loads(meta.get("skipped", "[]")), path)


class BatchPlanner:
    """The CPU half of a memory-path batch: which images, their crops, flips, view crops, colours and
    masks, all pure functions of (seed, step, index). Small and picklable, so that worker processes
    can draw plans while the device trains (the masks and views are per-sample Python loops: about
    7,000 images/s on one core, slower than a GPU's ViT-tiny step)."""

    def __init__(self, hw: tuple[int, int], masker: MultiBlockMasker | None, scale: tuple[float, float],
                 hflip: bool, seed: int, views: Any = None) -> None:
        self.hw, self.masker, self.scale, self.hflip, self.seed, self.views = hw, masker, scale, hflip, seed, views

    def __call__(self, pairs: list[tuple[int, int]]) -> dict[str, Any]:
        indices = [i for i, _ in pairs]
        step = pairs[0][1]
        h, w = self.hw
        plan: dict[str, Any] = {"step": step, "idx": torch.tensor(indices, dtype=torch.long),
                                "crops": crop_boxes(h, w, self.seed, step, indices, self.scale, (3 / 4, 4 / 3), self.hflip)}
        if self.views is not None:
            plan["views"] = self.views.boxes(h, w, self.seed, step, indices)
        if self.masker is not None:
            plan["masks"] = self.masker.batch(step, indices)
        return plan


_WORKER_PLANNER: BatchPlanner | None = None


def _start_planner(planner: BatchPlanner) -> None:
    global _WORKER_PLANNER
    torch.set_num_threads(1)  # plans are small; the trainer keeps the cores' threads
    _WORKER_PLANNER = planner


def _map_tensors(obj: Any, fn: Any) -> Any:
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj


def to_device(obj: Any, device: torch.device) -> Any:
    """The tensors in ``obj`` (nested dicts, lists, tuples) on ``device``. To a GPU through pinned
    memory without blocking: a plain copy of a pageable tensor makes the host wait until the GPU has
    finished all queued work, and a batch has a dozen small tensors."""
    if device.type != "cuda":
        return _map_tensors(obj, lambda t: t.to(device))
    return _map_tensors(obj, lambda t: t.pin_memory().to(device, non_blocking=True))


def _plan_in_worker(pairs: list[tuple[int, int]]) -> dict[str, Any]:
    assert _WORKER_PLANNER is not None
    # As numpy arrays: pickled by value, where torch would pass tensors through shared-memory file
    # descriptors (a few per plan, soon too many).
    return _map_tensors(_WORKER_PLANNER(pairs), lambda t: t.numpy())


def _from_worker(future: Future) -> dict[str, Any]:
    return _map_tensors(future.result(), torch.from_numpy)


class MemoryTrainBatches:
    """Training batches from ``MemoryImages`` on one device: the same batch dicts as the streaming
    loader (images, labels, index, step, masks), made on the device.

    ``position`` (a global batch number) says where the next ``iter()`` begins, as for
    ``ResumableLoader``; each ``iter()`` runs to the end of that epoch. With ``workers`` > 0 the
    plans are drawn in that many processes (kept for the whole run), several batches ahead; with 0
    in one thread, one batch ahead. Either way a batch is the same.
    """

    def __init__(self, memory: MemoryImages, sampler: StepBatchSampler, masker: MultiBlockMasker | None,
                 image_size: tuple[int, int], scale: tuple[float, float], hflip: bool, seed: int,
                 device: torch.device, views: Any = None, workers: int = 0) -> None:
        self.memory, self.sampler = memory, sampler
        self.image_size, self.device, self.views = image_size, device, views
        self.planner = BatchPlanner(tuple(memory.images.shape[-2:]), masker, scale, hflip, seed, views)
        self.workers = workers
        self.position = 0
        self._images: torch.Tensor | None = None
        self._pool: Executor | None = None

    def __len__(self) -> int:
        return len(self.sampler)

    def _on_device(self) -> torch.Tensor:
        if self._images is None or self._images.device != self.device:
            self._images = self.memory.images.to(self.device)
        return self._images

    def plan(self, pairs: list[tuple[int, int]]) -> dict[str, Any]:
        """The CPU half of a batch (see ``BatchPlanner``)."""
        return self.planner(pairs)

    def make(self, plan: dict[str, Any]) -> dict[str, Any]:
        """The device half: gather the images and crop, flip, normalise them there."""
        images = self._on_device()
        labels = self.memory.labels[plan["idx"]]
        host = {k: plan[k] for k in ("idx", "crops", "views", "masks") if k in plan}
        if bool((labels >= 0).all()):
            host["labels"] = labels
        dev = to_device(host, images.device)
        src = images[dev["idx"]]
        out: dict[str, Any] = {"inputs": resized_crops(src, *dev["crops"], self.image_size), "index": plan["idx"],
                               "step": plan["step"], "skipped": []}
        if "labels" in dev:
            out["labels"] = dev["labels"]
        if "views" in dev:
            out["views"] = self.views.apply(src, dev["views"])
        if "masks" in dev:
            out["masks"] = [dev["masks"]]
        return out

    def _executor(self) -> tuple[Executor, Any, Any, int]:
        """(pool, what it runs on a batch's pairs, how a finished plan is read back, batches ahead)."""
        if self.workers <= 0:
            return ThreadPoolExecutor(max_workers=1, thread_name_prefix="jepa-plan"), self.plan, Future.result, 1
        if self._pool is None:
            # Forked like DataLoader workers (the children touch no CUDA); spawn would re-import the
            # user's __main__.
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context(method),
                                             initializer=_start_planner, initargs=(self.planner,))
            weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool, _plan_in_worker, _from_worker, 2 * self.workers

    def __iter__(self) -> Iterator[dict[str, Any]]:
        per_epoch = len(self)
        self.sampler.start = self.position
        batches = iter(self.sampler)
        first_of_run = self.position == 0
        self.position = (self.position // per_epoch + 1) * per_epoch
        pool, plan_fn, receive, ahead_n = self._executor()
        ahead: collections.deque[Future] = collections.deque()
        try:
            for pairs in itertools.islice(batches, ahead_n):
                ahead.append(pool.submit(plan_fn, pairs))
            while ahead:
                plan = receive(ahead.popleft())
                pairs = next(batches, None)
                if pairs is not None:
                    ahead.append(pool.submit(plan_fn, pairs))
                batch = self.make(plan)
                if first_of_run:  # inputs that failed to decode into the cache are counted once
                    batch["skipped"], first_of_run = list(self.memory.skipped), False
                yield batch
        finally:
            for future in ahead:
                future.cancel()
            if self.workers <= 0:
                pool.shutdown(wait=True)

    # Lightning saves and restores loaders with these without warning; the position comes from the step.
    def state_dict(self) -> dict[str, int]:
        return {}

    def load_state_dict(self, state: dict[str, int]) -> None:
        pass
