"""Video sources: a folder of videos (class subfolders give labels) or a V-JEPA list file.

A source yields cheap ``VideoRef``s; the clip is decoded by the transform, which knows which frames
it needs (decoding only those), so that the clip's start is drawn from the sample's own seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ...errors import JEPAError

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")
# webdataset keys of encoded video bytes, in the order they are looked for.
VIDEO_KEYS = ("mp4", "webm", "mkv", "avi", "mov", "m4v")


@dataclass(frozen=True)
class VideoRef:
    """An encoded video not decoded yet: a path, or the bytes of a shard sample, and its name."""

    src: str | bytes
    name: str


def _videos_in(folder: str) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.path for e in entries if e.is_file() and e.name.lower().endswith(VIDEO_EXTENSIONS))


def _first_file(folder: str) -> str | None:
    with os.scandir(folder) as entries:
        return next((e.name for e in entries if e.is_file() and not e.name.startswith(".")), None)


def is_video_folder(root: str) -> bool:
    """Whether ``root`` holds videos rather than images, judged by its first file (or, with class
    subfolders, the first file of the first one): a huge image folder is not listed in full."""
    if not os.path.isdir(root):
        return False
    name = _first_file(root)
    if name is None:
        with os.scandir(root) as entries:
            sub = sorted(e.path for e in entries if e.is_dir() and not e.name.startswith("."))
        name = next((n for n in map(_first_file, sub) if n is not None), None)
    return name is not None and name.lower().endswith(VIDEO_EXTENSIONS)


def read_video_list(path: str) -> tuple[list[tuple[str, int | None]], tuple[str, ...] | None]:
    """Entries of a V-JEPA list file: ``path label`` per line (space-separated; a label is an
    integer class index), or ``path`` alone for unlabelled data. Relative paths are relative to the
    list's folder. A line that does not parse ends in one line naming the file and line."""
    if not os.path.isfile(path):
        raise JEPAError(f"video list {path} does not exist")
    base = os.path.dirname(os.path.abspath(path))
    entries: list[tuple[str, int | None]] = []
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            # The label is the last field, so a path may contain spaces.
            parts = text.rsplit(" ", 1) if " " in text else [text]
            video, label = parts[0].strip(), None
            if len(parts) == 2:
                try:
                    label = int(parts[1])
                except ValueError:
                    raise JEPAError(f"{path}:{number}: expected 'path label' with an integer label, got {text!r}") from None
                if label < 0:
                    raise JEPAError(f"{path}:{number}: labels are class indices >= 0, got {label}")
            entries.append((video if os.path.isabs(video) else os.path.normpath(os.path.join(base, video)), label))
    if not entries:
        raise JEPAError(f"video list {path} has no entries")
    labels = [label for _, label in entries]
    if any(label is None for label in labels):
        if any(label is not None for label in labels):
            raise JEPAError(f"{path}: some lines have a label and some do not; label every line or none")
        return entries, None
    count = max(labels) + 1  # type: ignore[type-var]
    return entries, tuple(str(i) for i in range(count))


class VideoListSource:
    """Videos from a folder (``root/<class>/<video>`` gives labels, classes sorted by name; videos
    directly under ``root`` give an unlabelled set) or from a ``.csv``/``.txt`` list.

    ``load(index)`` returns a ``VideoRef`` and the label; a file that is missing or does not decode
    fails later, in the transform, and is skipped and counted there like any undecodable input.
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.classes: tuple[str, ...] | None = None
        if spec.endswith((".csv", ".txt")):
            self.samples, self.classes = read_video_list(spec)
            return
        path = Path(spec)
        if not path.is_dir():
            raise JEPAError(f"data folder {spec} does not exist")
        with os.scandir(spec) as entries:
            class_dirs = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
        class_dirs = [c for c in class_dirs if _videos_in(os.path.join(spec, c))]
        self.samples: list[tuple[str, int | None]] = []
        if class_dirs:
            self.classes = tuple(class_dirs)
            for label, name in enumerate(class_dirs):
                self.samples += [(p, label) for p in _videos_in(os.path.join(spec, name))]
        else:
            self.samples = [(p, None) for p in _videos_in(spec)]
        if not self.samples:
            raise JEPAError(f"data folder {spec} holds no videos (looked for {', '.join(VIDEO_EXTENSIONS)})")

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[VideoRef, int | None]:
        path, label = self.samples[index]
        return VideoRef(path, path), label

    def describe(self, index: int) -> str:
        return self.samples[index][0]
