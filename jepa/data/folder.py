"""A folder of images: class subfolders (ImageFolder layout) or a flat folder without labels."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from ..errors import JEPAError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm")


def _images_in(folder: str) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.path for e in entries if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))


class ImageFolderSource:
    """Images under ``root``: ``root/<class>/<image>`` gives labels (classes sorted by name);
    images directly under ``root`` give an unlabelled set."""

    def __init__(self, root: str) -> None:
        path = Path(root)
        if not path.exists():
            raise JEPAError(f"data folder {root} does not exist")
        if not path.is_dir():
            raise JEPAError(f"data path {root} is neither a folder, a .tar shard pattern nor builtin:<name>")
        with os.scandir(root) as entries:
            class_dirs = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
        self.samples: list[tuple[str, int | None]] = []
        self.classes: tuple[str, ...] | None = None
        if class_dirs:
            self.classes = tuple(class_dirs)
            for label, name in enumerate(class_dirs):
                self.samples += [(p, label) for p in _images_in(os.path.join(root, name))]
        else:
            self.samples = [(p, None) for p in _images_in(root)]
        if not self.samples:
            raise JEPAError(
                f"data folder {root} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)} "
                "in it and in its class subfolders)"
            )

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[Image.Image, int | None]:
        path, label = self.samples[index]
        with Image.open(path) as img:
            return img.convert("RGB"), label

    def describe(self, index: int) -> str:
        return self.samples[index][0]
