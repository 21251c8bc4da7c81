"""The inputs of ``jepa shards``: finding images, videos and episodes, and checking each one as
training would read it (every frame of a video decoded) before it is written."""

from __future__ import annotations

import io
import os
import random
import re
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from webdataset.tariterators import tarfile_samples

from ..errors import JEPAError
from .shards import IMAGE_KEYS, decode_image
from .video.decode import one_line
from .video.sources import VIDEO_KEYS


@dataclass
class Item:
    """One input: ``members`` maps a member suffix to a file path or to bytes (episodes); ``error``
    says why it cannot be used before it is read."""

    key: str
    name: str
    label: int | None = None
    path: str | None = None
    members: dict[str, str | bytes] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Sample:
    key: str
    members: list[tuple[str, bytes]]
    warning: str | None = None


@dataclass
class Skip:
    name: str
    reason: str


def existing_folder(src: str | os.PathLike, kind: str) -> Path:
    path = Path(src)
    if not path.exists():
        raise JEPAError(f"{kind} source {src} does not exist")
    if not path.is_dir():
        raise JEPAError(f"{kind} source {src} is not a folder")
    return path


def ordered(entries: list, shuffle: bool, seed: int) -> list:
    entries = list(entries)
    if shuffle:
        random.Random(seed).shuffle(entries)
    return entries


def unique_key(name: str, used: set[str], alternative: str | None = None) -> str:
    """A webdataset key from a name: no dots (webdataset splits a member name at its first dot), no
    slashes, no leading underscores (``__x__`` names are skipped as metadata), unique: a taken key
    becomes ``<key>_<alternative>``, then ``<key>_1``, ``<key>_2``, ..."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", name).lstrip("_") or "sample"
    candidates = [base] + ([f"{base}_{alternative}"] if alternative else [])
    key = next((c for c in candidates if c not in used), None)
    n = 1
    while key is None or key in used:
        key, n = f"{base}_{n}", n + 1
    used.add(key)
    return key


def file_key(relpath: str, used: set[str]) -> str:
    """``cat/001.jpg`` -> ``cat_001``; a second ``clip.avi`` beside ``clip.mp4`` -> ``clip_avi``."""
    stem, ext = os.path.splitext(relpath)
    return unique_key(stem, used, ext.lstrip(".").lower() or None)


def episodes_in_folder(root: Path) -> list[Item]:
    used: set[str] = set()
    items = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in sub.iterdir() if p.is_file())
        videos = [p for p in files if p.suffix.lower() == ".mp4"]
        arrays = {p.name[:-4].rsplit(".", 1)[-1] + ".npy": str(p) for p in files if p.name.endswith(".npy")}
        if not videos and not arrays:
            continue  # not an episode
        members: dict[str, str | bytes] = {"mp4": str(videos[0])} if len(videos) == 1 else {}
        error = f"holds {len(videos)} .mp4 files, expected one" if len(videos) > 1 else None
        items.append(Item(unique_key(sub.name, used), str(sub), members={**members, **arrays}, error=error))
    names = sorted(p.name for p in root.iterdir() if p.is_file())
    for name in names:
        if not name.lower().endswith(".mp4"):
            continue
        stem = name[:-4]
        members = {"mp4": str(root / name)}
        for other in names:
            field_name = other[len(stem) + 1:-4]
            if other.startswith(stem + ".") and other.endswith(".npy") and field_name and "." not in field_name:
                members[field_name + ".npy"] = str(root / other)
        items.append(Item(unique_key(stem, used), str(root / name), members=members))
    if not items:
        raise JEPAError(f"episode folder {root} holds no episodes (<name>.mp4 + <name>.action.npy + "
                        "<name>.state.npy, or subfolders holding one .mp4, action.npy and state.npy)")
    return items


def episodes_in_shards(urls: list[str]) -> Iterator[Item]:
    used: set[str] = set()
    for url in urls:
        try:
            for sample in tarfile_samples([{"url": url}]):
                members = {k: v for k, v in sample.items() if not k.startswith("__")}
                name = f"{url}:{sample['__key__']}"
                yield Item(unique_key(os.path.basename(sample["__key__"]), used), name, members=members)
        except (OSError, tarfile.TarError, ValueError) as exn:
            raise JEPAError(f"cannot read episode shard {url}: {one_line(exn)}") from exn


def read_source(source: str | bytes) -> bytes:
    return source if isinstance(source, bytes) else Path(source).read_bytes()


def count_video_frames(data: bytes) -> int:
    """Decodes every frame of the first video stream of an in-memory video file.

    Args:
        data: the bytes of a video file (any container PyAV reads).

    Returns:
        The number of frames decoded; raises ValueError or a PyAV error when it does not decode.
    """
    with av.open(io.BytesIO(data)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        frames = sum(1 for _ in container.decode(container.streams.video[0]))
    if frames == 0:
        raise ValueError("no decodable frames")
    return frames


def prepare_image(item: Item) -> Sample | Skip:
    ext = Path(item.path).suffix.lower().lstrip(".")
    if ext not in IMAGE_KEYS:
        return Skip(item.name, f".{ext} is not read by training shards ({'/'.join(IMAGE_KEYS)}): convert it")
    try:
        data = read_source(item.path)
        # No warnings.catch_warnings() here: this runs on worker threads, and that context manager
        # swaps the process-wide filter list, so threads exiting in another order left "ignore" in
        # place and the writer's own skip warnings vanished.
        decode_image({ext: data})
    except Exception as exn:  # any decoder error means training could not use it: skip and say why
        return Skip(item.name, one_line(exn))
    return Sample(item.key, [(ext, data), *label_member(item.label)])


def prepare_video(item: Item) -> Sample | Skip:
    if not os.path.isfile(item.path):
        return Skip(item.name, "does not exist")
    ext = Path(item.path).suffix.lower().lstrip(".")
    if ext not in VIDEO_KEYS:
        return Skip(item.name, f".{ext} is not read by training shards ({'/'.join(VIDEO_KEYS)}): convert it")
    try:
        data = read_source(item.path)
        count_video_frames(data)
    except Exception as exn:  # any demuxer/decoder error: the file is unusable for training
        return Skip(item.name, one_line(exn))
    return Sample(item.key, [(ext, data), *label_member(item.label)])


def label_member(label: int | None) -> list[tuple[str, bytes]]:
    return [] if label is None else [("cls", str(label).encode())]


# np.load parses each .npy header with ast.literal_eval, and on Python 3.11 the ast module's
# recursion-depth bookkeeping is shared by all threads (CPython gh-106905): header parses on the
# writer's decoding threads at once can fail with "AST constructor recursion depth mismatch", which
# skipped a good episode. The headers are parsed one at a time; the video decoding stays parallel.
_NPY_LOCK = threading.Lock()


def load_npy(data: bytes) -> np.ndarray:
    """An .npy file's array from its bytes (never unpickled), safe to call from several threads."""
    with _NPY_LOCK:
        return np.load(io.BytesIO(data), allow_pickle=False)


def prepare_episode(item: Item) -> Sample | Skip:
    if item.error:
        return Skip(item.name, item.error)
    missing = [m for m in ("mp4", "action.npy", "state.npy") if m not in item.members]
    if missing:
        return Skip(item.name, f"no {', '.join(missing)}")
    try:
        data = {suffix: read_source(source) for suffix, source in item.members.items()
                if suffix == "mp4" or suffix.endswith(".npy")}
        arrays = {suffix: load_npy(b) for suffix, b in data.items() if suffix.endswith(".npy")}
    except Exception as exn:  # unreadable file or not an .npy array
        return Skip(item.name, one_line(exn))
    action, state = arrays["action.npy"], arrays["state.npy"]
    if action.ndim == 0 or state.ndim == 0 or len(action) != len(state) or len(action) == 0:
        return Skip(item.name, f"action {action.shape} and state {state.shape} need the same length T > 0")
    try:
        frames = count_video_frames(data["mp4"])
    except Exception as exn:  # the video is unusable
        return Skip(item.name, f"mp4: {one_line(exn)}")
    dropped = sorted(set(item.members) - set(data))
    notes = [f"video has {frames} frames but T = {len(action)}"] if frames != len(action) else []
    notes += [f"members not in the episode format dropped: {', '.join(dropped)}"] if dropped else []
    order = ["mp4", "action.npy", "state.npy"] + sorted(set(data) - {"mp4", "action.npy", "state.npy"})
    return Sample(item.key, [(s, data[s]) for s in order], f"{item.name}: {'; '.join(notes)}" if notes else None)
