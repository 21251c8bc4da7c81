"""Writing webdataset shards from image folders, videos and robot episodes, verified by reading them back.

Every member is the source file's original bytes (no re-encoding). Shards are numbered printf-style
(``out/train-%06d.tar``, as webdataset's ShardWriter), written under hidden temporary names, read back
and checked (keys, sample count, sha256 of every member), and only then renamed into place, so a
failed or interrupted run leaves no partial shard set behind.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import JEPAError
from .folder import ImageFolderSource
from .shard_inputs import (
    Item,
    Sample,
    Skip,
    episodes_in_folder,
    episodes_in_shards,
    existing_folder,
    file_key,
    ordered,
    prepare_episode,
    prepare_image,
    prepare_video,
)
from .shard_sink import ShardPattern, ShardSink, check_output, verify
from .shards import expand_shards, is_shard_spec
from .video.sources import VideoListSource

DEFAULT_MAX_COUNT = 10_000
DEFAULT_MAX_BYTES = 1_000_000_000
MAX_EXAMPLES = 100  # skipped inputs named in a report; ``skipped`` counts them all
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


@dataclass
class ShardReport:
    """What a ``write_*_shards`` call wrote.

    Attributes:
        shards: paths of the shards written, in order.
        samples: samples written.
        bytes: total size of the shard files.
        skipped: inputs left out (unreadable, incomplete or missing).
        skipped_examples: (name, reason) of the first ``MAX_EXAMPLES`` inputs left out.
        classes: class names (index = label) when the source had class subfolders, else None.
        brace_pattern: the shards as a DATA spec, e.g. ``out/train-{000000..000003}.tar``.
        warnings: things written but worth a look (e.g. an episode whose video frame count is not T).
    """

    shards: list[str]
    samples: int
    bytes: int
    skipped: int
    skipped_examples: list[tuple[str, str]]
    classes: tuple[str, ...] | None
    brace_pattern: str
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the ``jepa shards`` command."""
        plural = "" if len(self.shards) == 1 else "s"
        line = f"wrote {self.samples} samples to {len(self.shards)} shard{plural} (DATA spec: {self.brace_pattern})"
        if self.classes:
            line += f", {len(self.classes)} classes in classes.txt"
        line += f"; skipped {self.skipped}"
        if self.skipped_examples:
            shown = ", ".join(f"{name} ({why})" for name, why in self.skipped_examples[:3])
            more = f" and {self.skipped - 3} more" if self.skipped > 3 else ""
            line += f": {shown}{more}"
        return line


def parse_size(text: str) -> int:
    """Parses a shard size such as ``1GB``, ``500MB``, ``64MiB`` or ``1000000`` into bytes.

    Args:
        text: a number with an optional unit: k/M/G/T (powers of 1000) or Ki/Mi/Gi/Ti (powers of 1024),
            optionally followed by ``B``.

    Returns:
        The size in bytes.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*", str(text), flags=re.IGNORECASE)
    if match is None:
        raise JEPAError(f"size {text!r} is not a size like 1GB, 500MB, 64MiB or a number of bytes")
    size = int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])
    if size <= 0:
        raise JEPAError(f"size {text!r} must be more than 0 bytes")
    return size


def write_image_shards(
    src_folder: str | os.PathLike,
    out_pattern: str,
    max_count: int = DEFAULT_MAX_COUNT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    overwrite: bool = False,
    shuffle: bool = True,
    seed: int = 0,
    workers: int | None = None,
) -> ShardReport:
    """Writes an image folder as ``<key>.<ext>`` (+ ``<key>.cls``) shards that training reads.

    Class subfolders give labels (classes sorted by name, as ``jepa.data.folder``) and a
    ``classes.txt`` beside the shards; a flat folder gives unlabelled samples. Each image must
    decode as training decodes it, and be jpg/jpeg/png/webp (what training shards read);
    others are skipped, counted and named in the report.

    Args:
        src_folder: the image folder.
        out_pattern: shard paths with one printf number, e.g. ``out/train-%06d.tar``.
        max_count: most samples in one shard.
        max_bytes: most bytes in one shard file (a single larger sample gets a shard of its own).
        overwrite: replace shards already matching ``out_pattern`` (and remove surplus old ones).
        shuffle: write samples in a seeded random order, so that no shard holds only one class
            (training draws whole shards into a limited shuffle buffer).
        seed: seed of that order.
        workers: threads reading and checking inputs (default: up to 4).

    Returns:
        A ShardReport.
    """
    pattern, old = check_output(out_pattern, max_count, max_bytes, overwrite)
    root = existing_folder(src_folder, "image")
    source = ImageFolderSource(str(root))
    used: set[str] = set()
    items = [Item(file_key(os.path.relpath(path, root), used), path, label=label, path=path)
             for path, label in source.samples]
    items = ordered(items, shuffle, seed)  # after the keys, so keys do not depend on the order
    return _write(items, prepare_image, pattern, old, max_count, max_bytes, overwrite, source.classes, workers)


def write_video_shards(
    src: str | os.PathLike,
    out_pattern: str,
    max_count: int = DEFAULT_MAX_COUNT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    overwrite: bool = False,
    shuffle: bool = True,
    seed: int = 0,
    workers: int | None = None,
) -> ShardReport:
    """Writes videos as ``<key>.<ext>`` (mp4/webm/mkv/avi/mov/m4v original bytes) + ``<key>.cls`` shards.

    ``src`` is read as training reads it (``jepa.data.video.sources.VideoListSource``): a folder of
    videos (class subfolders give labels and ``classes.txt``; a flat folder gives none) or a V-JEPA
    list file (``.csv``/``.txt``, ``path label`` per line, separated by a space; relative paths are
    relative to the list's folder). Every frame of every video is decoded with PyAV, because a
    damaged file can decode its first frames and fail later; files that do not decode, that do not
    exist or whose container training shards do not read are skipped, counted and named in the report.

    Args:
        src: a folder of videos or a ``.csv``/``.txt`` list.
        out_pattern: shard paths with one printf number, e.g. ``out/train-%06d.tar``.
        max_count: most samples in one shard.
        max_bytes: most bytes in one shard file (a single larger sample gets a shard of its own).
        overwrite: replace shards already matching ``out_pattern`` (and remove surplus old ones).
        shuffle: write samples in a seeded random order (see ``write_image_shards``).
        seed: seed of that order.
        workers: threads reading and decoding inputs (default: up to 4).

    Returns:
        A ShardReport.
    """
    pattern, old = check_output(out_pattern, max_count, max_bytes, overwrite)
    is_list = str(src).endswith((".csv", ".txt"))
    source = VideoListSource(str(src) if is_list else str(existing_folder(src, "video")))
    used: set[str] = set()
    items = []
    for file, label in source.samples:
        # Keys name their source: the path inside a folder (class/name), the file name for a list.
        name = os.path.basename(file) if is_list else os.path.relpath(file, src)
        items.append(Item(file_key(name, used), str(file), label=label, path=str(file)))
    items = ordered(items, shuffle, seed)
    return _write(items, prepare_video, pattern, old, max_count, max_bytes, overwrite, source.classes, workers)


def write_episode_shards(
    src: str | os.PathLike,
    out_pattern: str,
    max_count: int = DEFAULT_MAX_COUNT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    overwrite: bool = False,
    workers: int | None = None,
) -> ShardReport:
    """Writes robot episodes as Push-T format shards: ``<key>.mp4``, ``<key>.action.npy``,
    ``<key>.state.npy`` and any other ``<key>.<name>.npy``.

    ``src`` is a folder of episodes or existing episode shards (a ``.tar`` path or brace pattern,
    to re-shard them; their keys are kept). In a folder, an episode is either a subfolder holding
    one ``.mp4``, ``action.npy``, ``state.npy`` and optional other ``.npy`` files, or the files
    ``<name>.mp4``, ``<name>.action.npy``, ``<name>.state.npy`` (+ ``<name>.<other>.npy``).
    Episodes are skipped when action/state are missing, unreadable or of different lengths T
    (first dimension), or when the video does not decode; an episode whose video has a frame
    count other than T is written and named in ``report.warnings``. Episodes keep their order.

    Args:
        src: a folder of episodes, or episode shards.
        out_pattern: shard paths with one printf number, e.g. ``out/pusht-%06d.tar``.
        max_count: most episodes in one shard.
        max_bytes: most bytes in one shard file (a single larger episode gets a shard of its own).
        overwrite: replace shards already matching ``out_pattern`` (and remove surplus old ones).
        workers: threads reading and decoding episodes (default: up to 4).

    Returns:
        A ShardReport.
    """
    pattern, old = check_output(out_pattern, max_count, max_bytes, overwrite)
    if is_shard_spec(str(src)):
        items: Iterable[Item] = episodes_in_shards(expand_shards(str(src)))  # names a missing shard now
    else:
        items = episodes_in_folder(existing_folder(src, "episode"))
    return _write(items, prepare_episode, pattern, old, max_count, max_bytes, overwrite, None, workers)


def _ordered_map(fn: Callable[[Item], Sample | Skip], items: Iterable[Item],
                 workers: int) -> Iterator[Sample | Skip]:
    """``map(fn, items)`` on threads (decoders release the GIL), in order, with few items in flight
    so memory stays bounded however many inputs there are."""
    if workers <= 1:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(workers)
    window: deque[Future] = deque()
    try:
        for item in items:
            window.append(pool.submit(fn, item))
            if len(window) >= 2 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _write(items: Iterable[Item], prepare: Callable[[Item], Sample | Skip], pattern: ShardPattern,
           old: list[str], max_count: int, max_bytes: int, overwrite: bool, classes: tuple[str, ...] | None,
           workers: int | None) -> ShardReport:
    classes_path = os.path.join(pattern.dir, "classes.txt")
    classes_text = "".join(f"{c}\n" for c in classes) if classes else None
    if classes_text and os.path.isfile(classes_path) and not overwrite \
            and Path(classes_path).read_text() != classes_text:
        raise JEPAError(f"{classes_path} already exists with other class names: pass --overwrite to replace it")
    os.makedirs(pattern.dir, exist_ok=True)

    sink = ShardSink(pattern, max_count, max_bytes)
    skipped: list[Skip] = []
    notes: list[str] = []
    try:
        for result in _ordered_map(prepare, items, workers or min(4, os.cpu_count() or 1)):
            if isinstance(result, Skip):
                skipped.append(result)
                continue
            sink.add(result)
            if result.warning:
                notes.append(result.warning)
        shards = sink.finish()
        if not shards:
            first = f" (first: {skipped[0].name}: {skipped[0].reason})" if skipped else ""
            raise JEPAError(f"nothing to write: all {len(skipped)} inputs were skipped{first}")
        for shard in shards:
            verify(shard)
        # Only complete, verified shards get their real names.
        for shard in shards:
            os.replace(shard.tmp, shard.path)
    except BaseException:
        sink.discard()
        raise
    if classes_text:
        write_text_atomic(classes_path, classes_text)
    written = {os.path.normpath(s.path) for s in shards}
    for stale in old:  # overwrite: old shards numbered past the new set would still match the pattern
        if os.path.normpath(stale) not in written:
            os.remove(stale)

    notes += [f"sample larger than the max size, written alone: {o}" for o in sink.oversize]
    if skipped:
        warnings.warn(f"skipped {len(skipped)} inputs (first: {skipped[0].name}: {skipped[0].reason})",
                      stacklevel=3)
    for note in notes:
        warnings.warn(note, stacklevel=3)
    return ShardReport(
        shards=[s.path for s in shards],
        samples=sum(len(s.expected) for s in shards),
        bytes=sum(os.path.getsize(s.path) for s in shards),
        skipped=len(skipped),
        skipped_examples=[(s.name, s.reason) for s in skipped[:MAX_EXAMPLES]],
        classes=classes,
        brace_pattern=pattern.brace(len(shards)),
        warnings=notes,
    )
