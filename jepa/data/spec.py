"""Turning a DATA spec string into a data source.

A spec is one of: ``builtin:<name>`` (procedural data generated in code: ``shapes`` images,
``bouncing`` and ``physics`` clips), a webdataset shard pattern (``shards/train-{000000..000009}.tar``) of images
or of encoded videos, a folder of images or of videos (class subfolders give labels), or a V-JEPA
video list (``.csv``/``.txt``, ``path label`` per line).
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import JEPAError
from .bouncing import BouncingDataset, PhysicsDataset
from .builtin import ShapesDataset
from .folder import ImageFolderSource
from .sampling import ImageSource
from .shards import expand_shards, is_shard_spec, read_classes_file
from .video.sources import VIDEO_KEYS, VideoListSource, is_video_folder

BUILTIN = {"shapes": ShapesDataset, "bouncing": BouncingDataset, "physics": PhysicsDataset}
VIDEO_BUILTINS = ("bouncing", "physics")


@dataclass
class Data:
    """A resolved spec: a map-style ``source`` or a list of shard ``urls``, the class names, and
    whether it holds images or videos."""

    spec: str
    source: ImageSource | None = None
    urls: list[str] | None = None
    classes: tuple[str, ...] | None = None
    modality: str = "image"

    @property
    def is_stream(self) -> bool:
        return self.urls is not None


def shard_modality(url: str) -> str:
    """``video`` when the first sample of a shard holds encoded video bytes, else ``image`` (all the
    members of the first sample are looked at: writers order them by name, ``cls`` before ``mp4``)."""
    first = None
    try:
        with tarfile.open(url) as tar:
            for member in tar:
                if not member.isreg():
                    continue
                key, _, ext = member.name.partition(".")
                if first is not None and key != first:
                    break
                first = key
                if ext.rsplit(".", 1)[-1].lower() in VIDEO_KEYS:
                    return "video"
    except (tarfile.TarError, OSError) as exn:
        raise JEPAError(f"shard {url} is not a readable tar file ({exn})") from None
    return "image"


def open_data(spec: str, split: str = "train", resolution: int = 64, num_frames: int = 16) -> Data:
    """Resolves ``spec`` for ``split`` (train or val, used by builtin data); raises JEPAError on bad
    specs. ``num_frames`` is the length of the clips procedural video data renders."""
    if not isinstance(spec, str) or not spec:
        raise JEPAError(f"data spec must be a non-empty string, got {spec!r}")
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        if name not in BUILTIN:
            raise JEPAError(f"unknown builtin data {spec!r}: available are {', '.join('builtin:' + k for k in BUILTIN)}")
        if name in VIDEO_BUILTINS:
            source = BUILTIN[name](split=split, resolution=resolution, num_frames=num_frames)
            return Data(spec, source=source, classes=tuple(source.classes), modality="video")
        source = BUILTIN[name](split=split, resolution=resolution)
        return Data(spec, source=source, classes=tuple(source.classes))
    if is_shard_spec(spec):
        urls = expand_shards(spec)
        return Data(spec, urls=urls, classes=read_classes_file(urls), modality=shard_modality(urls[0]))
    if spec.endswith((".csv", ".txt")) or is_video_folder(spec):
        source = VideoListSource(spec)
        return Data(spec, source=source, classes=source.classes, modality="video")
    if not Path(spec).exists():
        raise JEPAError(f"data folder {spec} does not exist")
    source = ImageFolderSource(spec)
    return Data(spec, source=source, classes=source.classes)


def open_image_data(spec: str, split: str = "train", resolution: int = 64) -> Data:
    """``open_data`` for callers that take images only; refuses video data in one line."""
    data = open_data(spec, split, resolution)
    if data.modality != "image":
        raise JEPAError(f"{spec} holds videos, but images are expected here")
    return data
