"""The LightningDataModule for image pretraining: training batches with masks, probe data."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ..errors import JEPAError
from ..grid import patch_grid, to_2tuple
from ..masks.collator import MaskCollator
from ..masks.multiblock import MultiBlockConfig, MultiBlockMasker
from .eval_loader import eval_loader
from .memory import MemoryImages, MemoryTrainBatches
from .sampling import AugmentedImages, ResumableLoader, StepBatchSampler
from .shards import ShardTrainStream, count_samples
from .spec import ImageData, open_image_data
from .transforms import EvalTransform, TrainTransform
from .views import ViewMaker, ViewsConfig


class ImageDataModule(pl.LightningDataModule):
    """Images for I-JEPA pretraining.

    Args:
        train: DATA spec of the training images (folder, shard pattern or builtin:<name>).
        val: DATA spec of held-out labelled images for probe evaluation; ``builtin`` train data
            defaults to its own val split.
        image_size: training resolution, an int or (height, width); the patch size must divide it.
        patch_size: the encoder's patch size (linked from ``model.encoder.patch_size``).
        batch_size: samples per device and step.
        num_workers: data-loader worker processes (masks are drawn in them too); with ``memory_cache``,
            the processes that draw the masks, crops and views of the coming batches.
        crop_scale: RandomResizedCrop area range.
        hflip: random horizontal flips.
        masks: multi-block mask settings.
        seed: seed of the data order, augmentations and masks.
        samples_per_epoch: epoch length for shard data (counted from the shards when unset).
        shuffle_buffer: samples held for shuffling shard streams.
        probe_train_samples: labelled training images that probe evaluation fits on.
        probe_val_samples: held-out images that probe evaluation scores on.
        views: extra global and local crops of every image for cross-view prediction (off by default).
        memory_cache: decode the training data once into a uint8 cache file, hold it in the training
            device's memory and crop, flip and mask whole batches there (small datasets such as
            CIFAR-10; no data workers are used). Refused, with the sizes, when it does not fit.
    """

    def __init__(
        self,
        train: str = "builtin:shapes",
        val: str | None = None,
        image_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        batch_size: int = 64,
        num_workers: int = 4,
        crop_scale: tuple[float, float] = (0.3, 1.0),
        hflip: bool = True,
        masks: MultiBlockConfig | None = None,
        seed: int = 0,
        samples_per_epoch: int | None = None,
        shuffle_buffer: int = 2000,
        probe_train_samples: int = 5000,
        probe_val_samples: int = 2000,
        views: ViewsConfig | None = None,
        memory_cache: bool = False,
    ) -> None:
        super().__init__()
        self.image_size = to_2tuple(image_size)
        try:
            self.grid = patch_grid(self.image_size, patch_size)
        except ValueError as exn:
            raise JEPAError(str(exn)) from None
        if batch_size < 1:
            raise JEPAError(f"data.batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.crop_scale = crop_scale
        self.hflip = hflip
        self.masks = masks or MultiBlockConfig()
        self.seed = seed
        self.samples_per_epoch = samples_per_epoch
        self.shuffle_buffer = shuffle_buffer
        self.probe_train_samples = probe_train_samples
        self.probe_val_samples = probe_val_samples
        self.memory_cache = memory_cache
        views = views or ViewsConfig()
        self.views = ViewMaker(views, self.image_size, patch_size, hflip) if views.enabled else None
        self._memory: MemoryImages | None = None
        resolution = max(self.image_size)
        self.train_data = open_image_data(train, "train", resolution)
        if val is None and train.startswith("builtin:"):
            val = train
        self.val_data: ImageData | None = open_image_data(val, "val", resolution) if val else None

    @property
    def num_classes(self) -> int | None:
        """Number of classes of the training data, or None when it has no labels."""
        return len(self.train_data.classes) if self.train_data.classes else None

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _start_batch(self) -> int:
        # Lightning restores the global step before it asks for the train loader, so a resumed
        # run continues the data stream exactly where the checkpoint was taken.
        trainer = self.trainer
        return trainer.global_step * trainer.accumulate_grad_batches if trainer is not None else 0

    def masker(self) -> MultiBlockMasker:
        return MultiBlockMasker(self.grid, self.masks, seed=self.seed)

    def _device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def memory_loader(self) -> MemoryTrainBatches:
        """Training batches made on the device from the in-memory cache (``memory_cache``)."""
        rank, world = self._rank()
        device = self._device()
        if self._memory is None:
            data = self.train_data
            count = count_samples(data.urls) if data.is_stream else len(data.source)
            self._memory = MemoryImages.load_or_build(data, self.image_size, "train", device, estimate_count=count)
        sampler = StepBatchSampler(len(self._memory), self.batch_size, self.seed, rank, world)
        loader = MemoryTrainBatches(self._memory, sampler, self.masker(), self.image_size, tuple(self.crop_scale),
                                    self.hflip, self.seed, device, views=self.views,
                                    workers=self.num_workers)
        loader.position = self._start_batch()
        return loader

    def train_dataloader(self) -> DataLoader | MemoryTrainBatches:
        if self.memory_cache:
            return self.memory_loader()
        rank, world = self._rank()
        transform = TrainTransform(self.image_size, scale=tuple(self.crop_scale), hflip=self.hflip)
        collator = MaskCollator(self.masker())
        common = dict(num_workers=self.num_workers, pin_memory=torch.cuda.is_available())
        if self.train_data.is_stream:
            urls = self.train_data.urls
            total = self.samples_per_epoch or count_samples(urls)
            per_epoch = total // (world * self.batch_size)
            if per_epoch < 1:
                raise JEPAError(f"{total} samples are fewer than one batch of {self.batch_size} per rank ({world} ranks)")
            stream = ShardTrainStream(
                urls, transform, collator, self.batch_size, per_epoch, self.seed, rank, world, self.shuffle_buffer,
                views=self.views,
            )
            loader = ResumableLoader(stream, batch_size=None, **common)
        else:
            sampler = StepBatchSampler(len(self.train_data.source), self.batch_size, self.seed, rank, world)
            dataset = AugmentedImages(self.train_data.source, transform, self.seed, views=self.views)
            loader = ResumableLoader(
                dataset, batch_sampler=sampler, collate_fn=collator,
                persistent_workers=self.num_workers > 0, **common,
            )
        loader.position = self._start_batch()
        return loader

    def _eval_loader(self, data: ImageData, limit: int, subset_seed: int | None) -> DataLoader:
        return eval_loader(data, EvalTransform(self.image_size), limit, max(self.batch_size, 64), self.num_workers,
                           subset_seed)

    def probe_dataloaders(self) -> tuple[DataLoader, DataLoader] | None:
        """(fit, score) loaders of labelled, un-augmented images for probe evaluation, or None
        when the data has no labels or there is no held-out split."""
        if self.num_classes is None or self.val_data is None:
            return None
        fit = self._eval_loader(self.train_data, self.probe_train_samples, subset_seed=self.seed)
        score = self._eval_loader(self.val_data, self.probe_val_samples, subset_seed=None)
        return fit, score
