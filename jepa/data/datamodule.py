"""The LightningDataModule for pretraining on images, clips or a mixture: training batches with
masks, probe data."""

from __future__ import annotations

import inspect

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ..errors import JEPAError
from ..grid import clip_grid, patch_grid, to_2tuple, tubelet_for
from ..masks.causal import CausalMaskConfig
from ..masks.collator import MaskCollator
from ..masks.groups import GroupMasker
from ..masks.multiblock import MultiBlockConfig, MultiBlockMasker
from ..masks.multiblock3d import VideoMaskConfig
from ..masks.registry import VIDEO_MASKINGS, video_masker
from ..masks.tube import TubeMaskConfig
from .clip_transforms import ClipEvalTransform, ClipFrames, ClipTrainTransform
from .eval_loader import eval_loader
from .memory import MemoryImages, MemoryTrainBatches
from .mixture import MixedLoader, MixtureSpec
from .sampling import AugmentedImages, ResumableLoader, StepBatchSampler
from .shards import ShardTrainStream, count_samples
from .spec import Data, open_data
from .transforms import EvalTransform, TrainTransform
from .video.clips import ClipSampling
from .views import ViewMaker, ViewsConfig


class PretrainDataModule(pl.LightningDataModule):
    """Images (I-JEPA), clips (V-JEPA) or a mixture of both for pretraining.

    Whether a run is a video run is read from the data: ``builtin:bouncing``, a folder or list of
    videos, or shards of encoded videos. Clips are [3, T, H, W] with ``clips.frames_per_clip``
    frames, masked by V-JEPA's 3-D multi-block masks (two groups) or tubes; images are masked by
    I-JEPA's multi-block masks, or, inside a video run (a mixture), as clips of one tubelet.

    Args:
        train: DATA spec of the training data (folder, shard pattern, video list or builtin:<name>).
        mix: more training sources mixed with ``train``, as ``{spec, weight}`` entries (V-JEPA 2 mixes
            video and image data): each batch comes from one source, drawn with the weights, so
            shapes stay static; the mixture is logged (``data/source``) and resumes exactly. Probes
            (online and evaluation) use ``train`` and ``val`` only.
        train_weight: the weight of ``train`` in a mixture.
        val: DATA spec of held-out labelled data for probe evaluation; ``builtin`` train data
            defaults to its own val split.
        image_size: training resolution, an int or (height, width); the patch size must divide it.
        patch_size: the encoder's patch size (linked from ``model.encoder.patch_size``).
        tubelet_size: frames per token of video encoders (linked from ``model.encoder.tubelet_size``;
            None: 2 for video runs).
        clips: how clips are cut from videos: frames_per_clip (16), frame_step (4) or fps, random
            start, what short videos do (``loop`` or ``pad``; counted in summary.json).
        video_masking: ``multiblock`` (V-JEPA's 3-D blocks, ``video_masks``), ``tube`` (``tube_masks``) or
            ``causal`` (the first frames context, the later ones targets; ``causal_masks``).
        video_masks: the 3-D block groups (V-JEPA: 8 blocks of scale 0.15, 2 of scale 0.7).
        tube_masks: the tube masking ratio (0.9).
        causal_masks: the range of context lengths of causal masks (a quarter to three quarters of the clip).
        decoder: ``auto`` (decord, PyAV when decord fails), ``decord`` or ``pyav``.
        decode_timeout: seconds a video may take to decode before it is skipped.
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
        mix: list[MixtureSpec] | None = None,
        train_weight: float = 1.0,
        val: str | None = None,
        image_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        tubelet_size: int | None = None,
        clips: ClipSampling = ClipSampling(),
        video_masking: str = "multiblock",
        video_masks: VideoMaskConfig | None = None,
        tube_masks: TubeMaskConfig | None = None,
        causal_masks: CausalMaskConfig | None = None,
        decoder: str = "auto",
        decode_timeout: float = 30.0,
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
        if video_masking not in VIDEO_MASKINGS:
            raise JEPAError(f"data.video_masking must be one of {', '.join(VIDEO_MASKINGS)}, got {video_masking!r}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.crop_scale = crop_scale
        self.hflip = hflip
        self.masks = masks or MultiBlockConfig()
        self.clips = clips
        self.video_masking = video_masking
        self.video_masks = video_masks or VideoMaskConfig()
        self.tube_masks = tube_masks or TubeMaskConfig()
        self.causal_masks = causal_masks or CausalMaskConfig()
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
        # Procedural clips are rendered with exactly the frames one clip spans.
        span = clips.span
        components = [MixtureSpec(train, train_weight)] + [
            c if isinstance(c, MixtureSpec) else MixtureSpec(**c) for c in mix or ()]
        self.components = components
        self.train_sources = [open_data(c.spec, "train", resolution, span) for c in components]
        self.modality = "video" if any(d.modality == "video" for d in self.train_sources) else "image"
        self.train_data = self.train_sources[0]
        first = components[0].spec
        if val is None and first.startswith("builtin:"):
            val = first
        self.val_data: Data | None = open_data(val, "val", resolution, span) if val else None
        if self.val_data is not None and self.val_data.modality != self.train_data.modality:
            raise JEPAError(f"data.val {val} holds {self.val_data.modality}s but data.train {first} holds "
                            f"{self.train_data.modality}s: probe on data of the kind the run trains on")
        self.tubelet_size = 1
        self.token_grid: tuple[int, ...] = self.grid
        if decoder not in ("auto", "decord", "pyav"):
            raise JEPAError(f"data.decoder must be auto, decord or pyav, got {decoder!r}")
        self._refuse_unused(tubelet_size, clips, video_masking,
                            {"video_masks": video_masks, "tube_masks": tube_masks, "causal_masks": causal_masks},
                            decoder, decode_timeout, masks, train_weight, mix)
        if self.modality == "video":
            self.tubelet_size = tubelet_for(clips.frames_per_clip, tubelet_size)
            if clips.frames_per_clip < 2:
                raise JEPAError(f"data.clips.frames_per_clip must be at least 2 for video, got {clips.frames_per_clip}")
            try:
                self.token_grid = clip_grid(clips.frames_per_clip, self.image_size, patch_size, self.tubelet_size)
            except ValueError as exn:
                raise JEPAError(f"data.clips: {exn}") from None
            self.frames = ClipFrames(clips, decoder, decode_timeout, min_frames=self.tubelet_size)
            if clips.clips_per_video != 1:
                raise JEPAError("data.clips.clips_per_video must be 1: each training sample is one clip of its "
                                "video (V-JEPA's default), drawn afresh every epoch")
            if memory_cache:
                raise JEPAError("data.memory_cache holds images only; video runs stream their clips (set it false)")
            if self.views is not None:
                raise JEPAError("data.views (multi-view crops) are for images; video runs use the 3-D masks alone")
        elif len(components) > 1 and (memory_cache or self.views is not None):
            raise JEPAError("mixed runs (data.mix) take neither data.memory_cache nor data.views")

    def _refuse_unused(self, tubelet_size: int | None, clips: ClipSampling, video_masking: str,
                       mask_settings: dict[str, object], decoder: str, decode_timeout: float, masks: MultiBlockConfig | None, train_weight: float,
                       mix: list[MixtureSpec] | None) -> None:
        """Settings that would not apply to this run end it in one line: none is silently ignored."""
        first = self.components[0].spec
        if self.modality == "image":
            # Compared with the constructor's own defaults, so the two cannot drift apart.
            default = {n: p.default for n, p in inspect.signature(PretrainDataModule.__init__).parameters.items()}
            given = [f"data.{k}" for k, v in (("clips", clips), ("video_masking", video_masking),
                                              *mask_settings.items(),
                                              ("decoder", decoder), ("decode_timeout", decode_timeout))
                     if v != default[k]]
            if tubelet_size not in (None, 1):
                given.insert(0, "model.encoder.tubelet_size")
            if given:
                raise JEPAError(f"{given[0]} is a video setting, but data.train {first} holds images: use video data "
                                "(a folder or list of videos, video shards, builtin:bouncing) or drop the setting")
        else:
            if masks is not None:
                raise JEPAError("data.masks (I-JEPA's 2-D blocks) does not apply to a video run: set data.video_masks "
                                "(3-D blocks) or data.video_masking: tube with data.tube_masks")
            for name, family in VIDEO_MASKINGS.items():
                if name != video_masking and mask_settings[family.key] is not None:
                    raise JEPAError(f"data.{family.key} is set but data.video_masking is {video_masking}: "
                                    f"set video_masking: {name} or drop data.{family.key}")
        if train_weight != 1.0 and not mix:
            raise JEPAError("data.train_weight weighs data.train against data.mix, which is empty")

    @property
    def num_frames(self) -> int:
        """Frames per training clip (1 for image runs): the model's ``num_frames``."""
        return self.clips.frames_per_clip if self.modality == "video" else 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one training input: (3, H, W) for images, (3, T, H, W) for clips."""
        if self.modality == "video":
            return (3, self.clips.frames_per_clip, *self.image_size)
        return (3, *self.image_size)

    @property
    def num_classes(self) -> int | None:
        """Number of classes of ``train``, or None when it has no labels."""
        return len(self.train_data.classes) if self.train_data.classes else None

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _start_batch(self) -> int:
        # Lightning restores the global step before it asks for the train loader, so a resumed
        # run continues the data stream exactly where the checkpoint was taken.
        trainer = self.trainer
        return trainer.global_step * trainer.accumulate_grad_batches if trainer is not None else 0

    def masker(self, modality: str | None = None, seed: int | None = None) -> MultiBlockMasker | GroupMasker:
        """The masks of this run's batches (of ``modality``: an image component of a video run is
        masked in 3-D as a clip of one tubelet)."""
        seed = self.seed if seed is None else seed
        try:
            if self.modality == "image":
                return MultiBlockMasker(self.grid, self.masks, seed=seed)
            grid = self.token_grid if (modality or self.modality) == "video" else (1, *self.grid)
            settings = getattr(self, VIDEO_MASKINGS[self.video_masking].key)  # self.video_masks, tube_masks, ...
            return video_masker(self.video_masking, grid, settings, seed)
        except ValueError as exn:
            raise JEPAError(f"data masks: {exn}") from None

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

    def _transform(self, modality: str) -> TrainTransform | ClipTrainTransform:
        if modality == "video":
            return ClipTrainTransform(self.image_size, self.frames, scale=tuple(self.crop_scale), hflip=self.hflip)
        return TrainTransform(self.image_size, scale=tuple(self.crop_scale), hflip=self.hflip)

    def _component_loader(self, data: Data, seed: int) -> ResumableLoader:
        """The resumable loader of one training source: augmented, masked batches."""
        rank, world = self._rank()
        transform = self._transform(data.modality)
        collator = MaskCollator(self.masker(data.modality, seed))
        common = dict(num_workers=self.num_workers, pin_memory=torch.cuda.is_available())
        if data.is_stream:
            urls = data.urls
            total = self.samples_per_epoch or count_samples(urls)
            per_epoch = total // (world * self.batch_size)
            if per_epoch < 1:
                raise JEPAError(f"{total} samples are fewer than one batch of {self.batch_size} per rank ({world} ranks)")
            stream = ShardTrainStream(
                urls, transform, collator, self.batch_size, per_epoch, seed, rank, world, self.shuffle_buffer,
                views=self.views,
            )
            return ResumableLoader(stream, batch_size=None, **common)
        sampler = StepBatchSampler(len(data.source), self.batch_size, seed, rank, world)
        dataset = AugmentedImages(data.source, transform, seed, views=self.views)
        return ResumableLoader(dataset, batch_sampler=sampler, collate_fn=collator,
                               persistent_workers=self.num_workers > 0, **common)

    def train_dataloader(self) -> DataLoader | MemoryTrainBatches | MixedLoader:
        if self.memory_cache:
            return self.memory_loader()
        if len(self.train_sources) == 1:
            loader = self._component_loader(self.train_data, self.seed)
        else:
            # Each component draws its crops and masks from a seed of its own.
            loaders = [self._component_loader(d, self.seed + 1000 * k) for k, d in enumerate(self.train_sources)]
            loader = MixedLoader(loaders, [c.weight for c in self.components], self.seed)
        loader.position = self._start_batch()
        return loader

    def _eval_loader(self, data: Data, limit: int, subset_seed: int | None) -> DataLoader:
        transform = ClipEvalTransform(self.image_size, self.frames) if data.modality == "video" else EvalTransform(self.image_size)
        return eval_loader(data, transform, limit, max(self.batch_size, 64), self.num_workers, subset_seed)

    def probe_dataloaders(self) -> tuple[DataLoader, DataLoader] | None:
        """(fit, score) loaders of labelled, un-augmented images or clips for probe evaluation, or None
        when the data has no labels or there is no held-out split."""
        if self.num_classes is None or self.val_data is None:
            return None
        fit = self._eval_loader(self.train_data, self.probe_train_samples, subset_seed=self.seed)
        score = self._eval_loader(self.val_data, self.probe_val_samples, subset_seed=None)
        return fit, score
