"""Writing webdataset shards from image folders, videos and robot episodes, verified by reading them back.

Every member is the source file's original bytes (no re-encoding). Shards are numbered printf-style
(``out/train-%06d.tar``, as webdataset's ShardWriter), written under hidden temporary names, read back
and checked (keys, sample count, sha256 of every member), and only then renamed into place, so a
failed or interrupted run leaves no partial shard set behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import tarfile
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from webdataset.tariterators import tarfile_samples

from ..errors import JEPAError
from .folder import ImageFolderSource
from .shards import IMAGE_KEYS, decode_image, expand_shards, is_shard_spec
from .video.decode import one_line
from .video.sources import VIDEO_KEYS, VideoListSource

DEFAULT_MAX_COUNT = 10_000
DEFAULT_MAX_BYTES = 1_000_000_000
MAX_EXAMPLES = 100  # skipped inputs named in a report; ``skipped`` counts them all
_MTIME = 0  # fixed member times: the same input gives byte-identical shards
_SLOT = r"%(?:0\d+)?d"  # %d or zero-padded %06d: numbers that brace-expand back to the same names
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
    pattern, old = _output(out_pattern, max_count, max_bytes, overwrite)
    root = _existing_folder(src_folder, "image")
    source = ImageFolderSource(str(root))
    used: set[str] = set()
    items = [_Item(_file_key(os.path.relpath(path, root), used), path, label=label, path=path)
             for path, label in source.samples]
    items = _ordered(items, shuffle, seed)  # after the keys, so keys do not depend on the order
    return _write(items, _prepare_image, pattern, old, max_count, max_bytes, overwrite, source.classes, workers)


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
    pattern, old = _output(out_pattern, max_count, max_bytes, overwrite)
    is_list = str(src).endswith((".csv", ".txt"))
    source = VideoListSource(str(src) if is_list else str(_existing_folder(src, "video")))
    used: set[str] = set()
    items = []
    for file, label in source.samples:
        # Keys name their source: the path inside a folder (class/name), the file name for a list.
        name = os.path.basename(file) if is_list else os.path.relpath(file, src)
        items.append(_Item(_file_key(name, used), str(file), label=label, path=str(file)))
    items = _ordered(items, shuffle, seed)
    return _write(items, _prepare_video, pattern, old, max_count, max_bytes, overwrite, source.classes, workers)


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
    pattern, old = _output(out_pattern, max_count, max_bytes, overwrite)
    if is_shard_spec(str(src)):
        items: Iterable[_Item] = _episodes_in_shards(expand_shards(str(src)))  # names a missing shard now
    else:
        items = _episodes_in_folder(_existing_folder(src, "episode"))
    return _write(items, _prepare_episode, pattern, old, max_count, max_bytes, overwrite, None, workers)


# --- inputs ---------------------------------------------------------------------------------------


@dataclass
class _Item:
    """One input: ``members`` maps a member suffix to a file path or to bytes (episodes); ``error``
    says why it cannot be used before it is read."""

    key: str
    name: str
    label: int | None = None
    path: str | None = None
    members: dict[str, str | bytes] = field(default_factory=dict)
    error: str | None = None


@dataclass
class _Sample:
    key: str
    members: list[tuple[str, bytes]]
    warning: str | None = None


@dataclass
class _Skip:
    name: str
    reason: str


def _existing_folder(src: str | os.PathLike, kind: str) -> Path:
    path = Path(src)
    if not path.exists():
        raise JEPAError(f"{kind} source {src} does not exist")
    if not path.is_dir():
        raise JEPAError(f"{kind} source {src} is not a folder")
    return path


def _ordered(entries: list, shuffle: bool, seed: int) -> list:
    entries = list(entries)
    if shuffle:
        random.Random(seed).shuffle(entries)
    return entries


def _unique_key(name: str, used: set[str], alternative: str | None = None) -> str:
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


def _file_key(relpath: str, used: set[str]) -> str:
    """``cat/001.jpg`` -> ``cat_001``; a second ``clip.avi`` beside ``clip.mp4`` -> ``clip_avi``."""
    stem, ext = os.path.splitext(relpath)
    return _unique_key(stem, used, ext.lstrip(".").lower() or None)


def _episodes_in_folder(root: Path) -> list[_Item]:
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
        items.append(_Item(_unique_key(sub.name, used), str(sub), members={**members, **arrays}, error=error))
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
        items.append(_Item(_unique_key(stem, used), str(root / name), members=members))
    if not items:
        raise JEPAError(f"episode folder {root} holds no episodes (<name>.mp4 + <name>.action.npy + "
                        "<name>.state.npy, or subfolders holding one .mp4, action.npy and state.npy)")
    return items


def _episodes_in_shards(urls: list[str]) -> Iterator[_Item]:
    used: set[str] = set()
    for url in urls:
        try:
            for sample in tarfile_samples([{"url": url}]):
                members = {k: v for k, v in sample.items() if not k.startswith("__")}
                name = f"{url}:{sample['__key__']}"
                yield _Item(_unique_key(os.path.basename(sample["__key__"]), used), name, members=members)
        except (OSError, tarfile.TarError, ValueError) as exn:
            raise JEPAError(f"cannot read episode shard {url}: {one_line(exn)}") from exn


# --- checking one input ---------------------------------------------------------------------------


def _read(source: str | bytes) -> bytes:
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


def _prepare_image(item: _Item) -> _Sample | _Skip:
    ext = Path(item.path).suffix.lower().lstrip(".")
    if ext not in IMAGE_KEYS:
        return _Skip(item.name, f".{ext} is not read by training shards ({'/'.join(IMAGE_KEYS)}): convert it")
    try:
        data = _read(item.path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. PIL's decompression-bomb warning: the check decides
            decode_image({ext: data})
    except Exception as exn:  # any decoder error means training could not use it: skip and say why
        return _Skip(item.name, one_line(exn))
    return _Sample(item.key, [(ext, data), *_label_member(item.label)])


def _prepare_video(item: _Item) -> _Sample | _Skip:
    if not os.path.isfile(item.path):
        return _Skip(item.name, "does not exist")
    ext = Path(item.path).suffix.lower().lstrip(".")
    if ext not in VIDEO_KEYS:
        return _Skip(item.name, f".{ext} is not read by training shards ({'/'.join(VIDEO_KEYS)}): convert it")
    try:
        data = _read(item.path)
        count_video_frames(data)
    except Exception as exn:  # any demuxer/decoder error: the file is unusable for training
        return _Skip(item.name, one_line(exn))
    return _Sample(item.key, [(ext, data), *_label_member(item.label)])


def _label_member(label: int | None) -> list[tuple[str, bytes]]:
    return [] if label is None else [("cls", str(label).encode())]


def _prepare_episode(item: _Item) -> _Sample | _Skip:
    if item.error:
        return _Skip(item.name, item.error)
    missing = [m for m in ("mp4", "action.npy", "state.npy") if m not in item.members]
    if missing:
        return _Skip(item.name, f"no {', '.join(missing)}")
    try:
        data = {suffix: _read(source) for suffix, source in item.members.items()
                if suffix == "mp4" or suffix.endswith(".npy")}
        arrays = {suffix: np.load(io.BytesIO(b), allow_pickle=False) for suffix, b in data.items()
                  if suffix.endswith(".npy")}
    except Exception as exn:  # unreadable file or not an .npy array
        return _Skip(item.name, one_line(exn))
    action, state = arrays["action.npy"], arrays["state.npy"]
    if action.ndim == 0 or state.ndim == 0 or len(action) != len(state) or len(action) == 0:
        return _Skip(item.name, f"action {action.shape} and state {state.shape} need the same length T > 0")
    try:
        frames = count_video_frames(data["mp4"])
    except Exception as exn:  # the video is unusable
        return _Skip(item.name, f"mp4: {one_line(exn)}")
    dropped = sorted(set(item.members) - set(data))
    notes = [f"video has {frames} frames but T = {len(action)}"] if frames != len(action) else []
    notes += [f"members not in the episode format dropped: {', '.join(dropped)}"] if dropped else []
    order = ["mp4", "action.npy", "state.npy"] + sorted(set(data) - {"mp4", "action.npy", "state.npy"})
    return _Sample(item.key, [(s, data[s]) for s in order], f"{item.name}: {'; '.join(notes)}" if notes else None)


# --- writing --------------------------------------------------------------------------------------


class _Pattern:
    """``dir/name-%06d.tar``: the one printf number is the shard index."""

    def __init__(self, pattern: str) -> None:
        slots = re.findall(_SLOT, pattern)
        if len(slots) != 1 or pattern.count("%") != 1 or "{" in pattern or not pattern.endswith(".tar"):
            raise JEPAError(f"output pattern {pattern!r} must be a .tar path with one printf shard number, "
                            "e.g. out/train-%06d.tar")
        self.pattern = pattern
        self.dir = os.path.dirname(pattern) or "."
        head, tail = os.path.basename(pattern).split(slots[0])
        self.width = int(slots[0][1:-1] or 0)
        self._name = re.compile(re.escape(head) + r"\d+" + re.escape(tail))

    def path(self, index: int) -> str:
        return self.pattern % index

    def existing(self) -> list[str]:
        if not os.path.isdir(self.dir):
            return []
        return sorted(os.path.join(os.path.dirname(self.pattern), n) for n in os.listdir(self.dir)
                      if self._name.fullmatch(n))

    def brace(self, count: int) -> str:
        if count == 1:
            return self.path(0)
        span = f"{{{0:0{self.width}d}..{count - 1:0{self.width}d}}}"
        return re.sub(_SLOT, span, self.pattern)


@dataclass
class _Shard:
    path: str
    tmp: str
    expected: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (key, {suffix: sha256})


def _round_up(n: int, block: int) -> int:
    return -(-n // block) * block


class _ShardSink:
    """Appends samples to temporary shards, starting a new one before ``max_count`` or ``max_bytes``
    would be passed; the file size is predicted exactly (headers, 512-byte blocks, tar's end padding)."""

    def __init__(self, pattern: _Pattern, max_count: int, max_bytes: int) -> None:
        self.pattern, self.max_count, self.max_bytes = pattern, max_count, max_bytes
        self.shards: list[_Shard] = []
        self.oversize: list[str] = []
        self._tar: tarfile.TarFile | None = None
        self._offset = 0

    def add(self, sample: _Sample) -> None:
        infos = []
        for suffix, data in sample.members:
            info = tarfile.TarInfo(f"{sample.key}.{suffix}")
            info.size, info.mtime, info.mode = len(data), _MTIME, 0o644
            infos.append(info)
        size = sum(self._header_size(i) + _round_up(i.size, tarfile.BLOCKSIZE) for i in infos)
        if self._tar is not None and (len(self.shards[-1].expected) >= self.max_count
                                      or self._file_size(self._offset + size) > self.max_bytes):
            self._close()
        if self._tar is None:
            self._open()
        for info, (_, data) in zip(infos, sample.members):
            self._tar.addfile(info, io.BytesIO(data))
        self._offset += size
        self.shards[-1].expected.append((sample.key, {s: _sha256(d) for s, d in sample.members}))
        if len(self.shards[-1].expected) == 1 and self._file_size(size) > self.max_bytes:
            self.oversize.append(f"{sample.key} ({self._file_size(size)} bytes in {self.shards[-1].path})")

    def finish(self) -> list[_Shard]:
        if self._tar is not None:
            self._close()
        return self.shards

    def discard(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        for shard in self.shards:
            if os.path.exists(shard.tmp):
                os.remove(shard.tmp)

    def _open(self) -> None:
        path = self.pattern.path(len(self.shards))
        tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp{os.getpid()}")
        self.shards.append(_Shard(path, tmp))
        self._tar = tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT)
        self._offset = 0

    def _close(self) -> None:
        self._tar.close()
        self._tar = None

    def _header_size(self, info: tarfile.TarInfo) -> int:
        return len(info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"))

    @staticmethod
    def _file_size(offset: int) -> int:
        # tar ends with two zero blocks and is padded to whole 10 KiB records
        return _round_up(offset + 2 * tarfile.BLOCKSIZE, tarfile.RECORDSIZE)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_back(path: str) -> list[tuple[str, dict[str, str]]]:
    """(key, {suffix: sha256}) of each sample, as webdataset (and so training) groups them."""
    return [(s["__key__"], {k: _sha256(v) for k, v in s.items() if not k.startswith("__")})
            for s in tarfile_samples([{"url": path}])]


def _verify(shard: _Shard) -> None:
    try:
        got = _read_back(shard.tmp)
    except Exception as exn:  # the shard is unreadable: report it as a failed check
        raise JEPAError(f"verifying {shard.path} failed: cannot read it back ({one_line(exn)})") from exn
    if len(got) != len(shard.expected):
        raise JEPAError(f"verifying {shard.path} failed: read {len(got)} samples back, wrote {len(shard.expected)}")
    for (key, hashes), (want_key, want) in zip(got, shard.expected):
        if key != want_key or hashes != want:
            bad = sorted(s for s in set(hashes) | set(want) if hashes.get(s) != want.get(s))
            raise JEPAError(f"verifying {shard.path} failed: sample {want_key} read back as {key} "
                            f"with different {', '.join(bad) or 'key'}")


def _ordered_map(fn: Callable[[_Item], _Sample | _Skip], items: Iterable[_Item],
                 workers: int) -> Iterator[_Sample | _Skip]:
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


def _output(out_pattern: str, max_count: int, max_bytes: int, overwrite: bool) -> tuple[_Pattern, list[str]]:
    """Checks the output settings before any input is read: the pattern, the limits, old shards."""
    pattern = _Pattern(str(out_pattern))
    if max_count < 1 or max_bytes < 1:
        raise JEPAError(f"max count ({max_count}) and max size ({max_bytes} bytes) must be at least 1")
    old = pattern.existing()
    if old and not overwrite:
        raise JEPAError(f"{old[0]} already exists ({len(old)} shards match {out_pattern}): "
                        "pass --overwrite to replace them")
    return pattern, old


def _write(items: Iterable[_Item], prepare: Callable[[_Item], _Sample | _Skip], pattern: _Pattern,
           old: list[str], max_count: int, max_bytes: int, overwrite: bool, classes: tuple[str, ...] | None,
           workers: int | None) -> ShardReport:
    classes_path = os.path.join(pattern.dir, "classes.txt")
    classes_text = "".join(f"{c}\n" for c in classes) if classes else None
    if classes_text and os.path.isfile(classes_path) and not overwrite \
            and Path(classes_path).read_text() != classes_text:
        raise JEPAError(f"{classes_path} already exists with other class names: pass --overwrite to replace it")
    os.makedirs(pattern.dir, exist_ok=True)

    sink = _ShardSink(pattern, max_count, max_bytes)
    skipped: list[_Skip] = []
    notes: list[str] = []
    try:
        for result in _ordered_map(prepare, items, workers or min(4, os.cpu_count() or 1)):
            if isinstance(result, _Skip):
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
            _verify(shard)
        # Only complete, verified shards get their real names.
        for shard in shards:
            os.replace(shard.tmp, shard.path)
    except BaseException:
        sink.discard()
        raise
    if classes_text:
        tmp = f"{classes_path}.tmp{os.getpid()}"
        Path(tmp).write_text(classes_text)
        os.replace(tmp, classes_path)
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
