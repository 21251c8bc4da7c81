"""Turning a DATA spec string into a data source.

A spec is one of: ``builtin:<name>`` (procedural data generated in code), a webdataset shard
pattern (``shards/train-{000000..000009}.tar``), or a folder of images (class subfolders give labels).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import JEPAError
from .builtin import ShapesDataset
from .folder import ImageFolderSource
from .sampling import ImageSource
from .shards import expand_shards, is_shard_spec, read_classes_file

BUILTIN = {"shapes": ShapesDataset}


@dataclass
class ImageData:
    """A resolved spec: a map-style ``source`` or a list of shard ``urls``, and the class names."""

    spec: str
    source: ImageSource | None = None
    urls: list[str] | None = None
    classes: tuple[str, ...] | None = None

    @property
    def is_stream(self) -> bool:
        return self.urls is not None


def open_image_data(spec: str, split: str = "train", resolution: int = 64) -> ImageData:
    """Resolves ``spec`` for ``split`` (train or val, used by builtin data); raises JEPAError on bad specs."""
    if not isinstance(spec, str) or not spec:
        raise JEPAError(f"data spec must be a non-empty string, got {spec!r}")
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        if name not in BUILTIN:
            raise JEPAError(f"unknown builtin data {spec!r}: available are {', '.join('builtin:' + k for k in BUILTIN)}")
        source = BUILTIN[name](split=split, resolution=resolution)
        return ImageData(spec, source=source, classes=tuple(source.classes))
    if is_shard_spec(spec):
        urls = expand_shards(spec)
        return ImageData(spec, urls=urls, classes=read_classes_file(urls))
    if spec.endswith((".csv", ".txt")):
        raise JEPAError(f"{spec}: video lists are not image data; give a folder, shards or builtin:<name>")
    source = ImageFolderSource(spec)
    return ImageData(spec, source=source, classes=source.classes)
