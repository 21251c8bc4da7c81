"""Decode chosen frames of one video: decord first, PyAV when decord cannot, every attempt time-bounded.

decord 0.6 cannot open some files (a webm without a duration, AV1, which its bundled FFmpeg lacks),
fails on others part-way, and seeks to wrong frames in a few (see ``_DecordReader`` for the guards);
PyAV decodes those. ``backend="auto"`` tries decord and, on any failure (opening or reading), starts
over with PyAV. Frames come out upright: decord turns them by the container's display matrix itself,
PyAV frames are turned here by ``VideoFrame.rotation``, and both backends give the same pixels.

Each backend attempt runs in a daemon thread and is abandoned after ``timeout`` seconds: a decoder that
loops on a file claiming more frames than it holds cannot stop training. Python cannot kill a thread
that is inside native code, so an abandoned decoder keeps its thread (and a core) until it returns or
the process exits; the file is reported as failed meanwhile. A separate process per file would be
killable but costs far more than decoding a clip.
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from ...errors import JEPAError

BACKENDS = ("auto", "decord", "pyav")

Source = str | bytes
# A plan maps (num_frames, fps) of a video to the frame indices wanted from it.
Plan = Callable[[int, float], Sequence[int]]
T = TypeVar("T")


class VideoDecodeError(JEPAError):
    """No backend could decode the file; the message names it and why each backend failed."""


@dataclass(frozen=True)
class VideoInfo:
    """What a backend found in a video.

    Attributes:
        num_frames: frames in the chosen video stream, as counted by the backend (packets; a file may
            still decode fewer, see ``read_frames``).
        fps: average frame rate, 0.0 when the container does not say.
        height: height of the upright frames that ``read_frames`` returns.
        width: width of the upright frames.
        rotation: degrees clockwise the stored frames are turned to be shown upright (0, 90, 180 or 270;
            the convention of the old ``rotate`` tag: a portrait phone clip says 90).
        backend: ``"decord"`` or ``"pyav"``, the backend that opened the file.
    """

    num_frames: int
    fps: float
    height: int
    width: int
    rotation: int
    backend: str


class _Reader(Protocol):
    num_frames: int
    fps: float

    def info(self) -> VideoInfo: ...

    def read(self, indices: list[int]) -> tuple[dict[int, np.ndarray], int | None]: ...


class _BackendFailed(Exception):
    """One backend could not decode the file; the message is already one line."""


def source_name(src: Source | os.PathLike, name: str | None = None) -> str:
    """How messages name a video: ``name`` if given, else the path, else ``<N bytes>``.

    Args:
        src: a path or the encoded bytes.
        name: what to call it instead (e.g. the key of a webdataset sample).
    """
    if name:
        return name
    if isinstance(src, bytes | bytearray | memoryview):
        return f"<{len(src)} bytes of video>"
    return os.fspath(src)


def _open_arg(src: Source) -> Any:
    # Both libraries take a path or a file-like object; each open needs its own stream position.
    if isinstance(src, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(src))
    return os.fspath(src)


def one_line(err: BaseException) -> str:
    """An exception as one short line (decord's source prefixes and stack traces removed)."""
    text = str(err) or type(err).__name__
    # decord prefixes "[hh:mm:ss] /github/workspace/src/...cc:123: " and may append a stack trace.
    text = re.sub(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ", "", text.split("Stack trace")[0])
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


def _upright(arr: np.ndarray, frame_rotation: int) -> np.ndarray:
    # PyAV's VideoFrame.rotation is counter-clockwise and so is np.rot90; display matrices that are not
    # a multiple of 90 degrees are rounded to the nearest one.
    k = round(frame_rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(arr, k)) if k else arr


class _PyAVReader:
    """Sequential PyAV decoding of the best video stream; keeps only wanted frames, stops after the last."""

    def __init__(self, src: Source) -> None:
        import av

        self.src = src
        with av.open(_open_arg(src)) as container:
            stream = container.streams.best("video")
            if stream is None:
                raise _BackendFailed("no video stream")
            self.stream_index = stream.index
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else 0.0
            # stream.frames is the header's word (0 for webm/mkv); counting packets is what decord does.
            self.num_frames = stream.frames if stream.frames > 0 else self._count_packets(container, stream)
        if self.num_frames <= 0:
            raise _BackendFailed("no decodable frames")

    @staticmethod
    def _count_packets(container: Any, stream: Any) -> int:
        return sum(1 for packet in container.demux(stream) if packet.size > 0)

    def _frames(self) -> Any:
        import av

        container = av.open(_open_arg(self.src))
        stream = container.streams[self.stream_index]
        stream.thread_type = "AUTO"
        return container, container.decode(stream)

    def info(self) -> VideoInfo:
        container, frames = self._frames()
        with container:
            first = next(iter(frames), None)
        if first is None:
            raise _BackendFailed("no decodable frames")
        turned = first.rotation % 180 != 0
        return VideoInfo(num_frames=self.num_frames, fps=self.fps,
                         height=first.width if turned else first.height,
                         width=first.height if turned else first.width,
                         rotation=int(-round(first.rotation / 90) * 90) % 360, backend="pyav")

    def read(self, indices: list[int]) -> tuple[dict[int, np.ndarray], int | None]:
        wanted = {i for i in indices if i >= 0}
        out: dict[int, np.ndarray] = {}
        if not wanted:
            return out, None
        last = max(wanted)
        container, frames = self._frames()
        with container:
            decoded = 0
            for i, frame in enumerate(frames):
                decoded = i + 1
                if i in wanted:
                    if frame.is_corrupt:
                        raise _BackendFailed(f"frame {i} is corrupt")
                    out[i] = _upright(frame.to_ndarray(format="rgb24"), frame.rotation)
                if i >= last:
                    return out, None
        # The stream ended before the last wanted frame: the container claimed more frames than it holds.
        return out, decoded


def _packet_order(src: Source) -> tuple[int, bool]:
    """Packets of the best video stream, and whether each keyframe's place in decode order is its place
    in presentation order (false too when a packet has no or a repeated timestamp)."""
    import av

    with av.open(_open_arg(src)) as container:
        stream = container.streams.best("video")
        if stream is None:
            return 0, False
        pts: list[int] = []
        keys: list[tuple[int, int]] = []
        for packet in container.demux(stream):
            if packet.size:
                if packet.pts is None:
                    return len(pts), False
                if packet.is_keyframe:
                    keys.append((len(pts), packet.pts))
                pts.append(packet.pts)
    rank = {p: i for i, p in enumerate(sorted(pts))}
    return len(pts), len(rank) == len(pts) and all(rank[p] == i for i, p in keys)


class _DecordReader:
    """decord's random access (get_batch over sorted unique indices); decord rotates frames itself.

    decord 0.6 returns wrong frames in two cases found on the shared clips, guarded here: it locates
    keyframes by decode order but frames by presentation order, so where the two differ (open-GOP
    HEVC with B-frames) every seek lands a frame late; and on some h264 files its first seek after
    opening returns grey garbage, which decoding frame 0 first prevents.
    """

    def __init__(self, src: Source) -> None:
        import decord

        self.src = src
        self.vr = decord.VideoReader(_open_arg(src), ctx=decord.cpu(0))
        self.num_frames = len(self.vr)
        self.fps = float(self.vr.get_avg_fps() or 0.0)
        if self.num_frames <= 0:
            raise _BackendFailed("no decodable frames")
        try:
            packets, in_order = _packet_order(src)
        except Exception:
            return  # PyAV cannot check this file; decord may still read it.
        if not in_order:
            raise _BackendFailed("keyframes out of presentation order, where decord 0.6 seeks to wrong frames")
        if packets != self.num_frames:
            raise _BackendFailed(f"counts {self.num_frames} frames where the stream has {packets} packets")

    def info(self) -> VideoInfo:
        # decord does not expose the rotation; PyAV reads it from the first frame's display matrix.
        try:
            peek = _PyAVReader(self.src).info()
            height, width, rotation = peek.height, peek.width, peek.rotation
        except Exception:
            height, width = self.vr[0].shape[:2]
            rotation = 0
        return VideoInfo(num_frames=self.num_frames, fps=self.fps, height=int(height), width=int(width),
                         rotation=rotation, backend="decord")

    def read(self, indices: list[int]) -> tuple[dict[int, np.ndarray], int | None]:
        order = sorted({i for i in indices if 0 <= i < self.num_frames})
        if not order:
            return {}, None
        # Decoding frame 0 first keeps the first seek honest (see the class docstring).
        out = {0: self.vr.next().asnumpy()}
        rest = [i for i in order if i != 0]
        if rest:
            batch = self.vr.get_batch(rest).asnumpy()
            if batch.ndim != 4 or batch.shape[0] != len(rest):
                raise _BackendFailed(f"get_batch returned shape {tuple(batch.shape)} for {len(rest)} frames")
            out.update(zip(rest, batch))
        if 0 not in order:
            del out[0]
        return out, None


@dataclass(frozen=True)
class Decoded:
    """Frames decoded for a plan.

    Attributes:
        frames: uint8 H×W×3 upright frames by index; indices past the frames that exist are absent.
        num_frames: the frame count the plan was last given (smaller than the container's claim when
            the stream ended early).
        fps: average frame rate, 0.0 when the container does not say.
        backend: ``"decord"`` or ``"pyav"``, the backend that decoded them.
    """

    frames: dict[int, np.ndarray]
    num_frames: int
    fps: float
    backend: str


_READERS: dict[str, Callable[[Source], _Reader]] = {"decord": _DecordReader, "pyav": _PyAVReader}


def _bounded(fn: Callable[[], T], timeout: float | None) -> T:
    if timeout is None:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # re-raised in the calling thread
            box["error"] = err

    worker = threading.Thread(target=target, name="jepa-video-decode", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise _BackendFailed(f"timed out after {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _decode(backend: str, src: Source, plan: Plan) -> Decoded:
    reader = _READERS[backend](src)
    frames, available = reader.read(list(plan(reader.num_frames, reader.fps)))
    num_frames = reader.num_frames
    if available is not None:
        # The stream ended before frames the container claimed: plan again over those that exist, and
        # decode whichever of the new picks the first pass did not keep.
        if available <= 0:
            raise _BackendFailed("no decodable frames")
        num_frames = available
        wanted = [i for i in plan(available, reader.fps) if 0 <= i < available]
        missing = [i for i in wanted if i not in frames]
        if missing:
            more, _ = reader.read(missing)
            frames.update(more)
    return Decoded(frames=frames, num_frames=num_frames, fps=reader.fps, backend=backend)


def _first_success(src: Source, backend: str, timeout: float | None, name: str | None,
                   work: Callable[[str], T]) -> T:
    if backend not in BACKENDS:
        raise JEPAError(f"unknown video backend {backend!r}; use one of {', '.join(BACKENDS)}")
    reasons = []
    for candidate in ("decord", "pyav") if backend == "auto" else (backend,):
        try:
            return _bounded(lambda b=candidate: work(b), timeout)
        except ImportError:
            reasons.append(f"{candidate}: not installed")
        except Exception as err:
            reasons.append(f"{candidate}: {one_line(err)}")
    raise VideoDecodeError(f"{source_name(src, name)}: cannot decode video ({'; '.join(reasons)})")


def decode_planned(src: Source, plan: Plan, backend: str = "auto", timeout: float | None = 30.0, *,
                   name: str | None = None) -> Decoded:
    """Open a video, ask ``plan`` which frames it needs given (num_frames, fps), decode only those.

    ``plan`` may be called more than once: again by PyAV after decord failed, and again with a smaller
    frame count when the stream ends before the frames its container claimed. A plan that draws random
    numbers should restore its generator's state on each call so that it picks the same frames.

    Args:
        src: a path, or the encoded bytes (a webdataset sample).
        plan: maps (num_frames, fps) to the frame indices wanted.
        backend: ``"auto"`` (decord, then PyAV on any failure), ``"decord"`` or ``"pyav"``.
        timeout: seconds allowed to each backend attempt (``"auto"`` may take twice that); None: unbounded.
        name: what error messages call the video (default: the path, or the byte count).

    Raises:
        VideoDecodeError: every backend failed, timed out, or found no video stream or no frames.
    """
    return _first_success(src, backend, timeout, name, lambda b: _decode(b, src, plan))


def probe_video(src: Source, backend: str = "auto", timeout: float | None = 30.0, *,
                name: str | None = None) -> VideoInfo:
    """Frame count, frame rate, upright size and rotation of a video, and which backend opens it.

    Args:
        src: a path, or the encoded bytes.
        backend: ``"auto"`` (decord, then PyAV), ``"decord"`` or ``"pyav"``.
        timeout: seconds allowed to each backend attempt; None: unbounded.
        name: what error messages call the video.

    Raises:
        VideoDecodeError: no backend could open it.
    """
    return _first_success(src, backend, timeout, name, lambda b: _READERS[b](src).info())


def read_frames(src: Source, indices: Sequence[int], backend: str = "auto", timeout: float | None = 30.0, *,
                name: str | None = None) -> np.ndarray:
    """Decode the frames at ``indices`` (and no others), upright, as uint8 [T, H, W, 3].

    Indices past the frames that really exist (a container can claim more than it holds) are left out,
    so T can be smaller than ``len(indices)``; a repeated index repeats its frame.

    Args:
        src: a path, or the encoded bytes.
        indices: frame indices, in the order wanted.
        backend: ``"auto"`` (decord, then PyAV on any failure), ``"decord"`` or ``"pyav"``.
        timeout: seconds allowed to each backend attempt; None: unbounded.
        name: what error messages call the video.

    Raises:
        VideoDecodeError: no backend could decode the frames, or none of the wanted frames exists.
    """
    wanted = [int(i) for i in indices]
    if not wanted:
        info = probe_video(src, backend, timeout, name=name)
        return np.zeros((0, info.height, info.width, 3), np.uint8)
    decoded = decode_planned(src, lambda n, fps: wanted, backend, timeout, name=name)
    kept = [decoded.frames[i] for i in wanted if i in decoded.frames]
    if not kept:
        raise VideoDecodeError(f"{source_name(src, name)}: has {decoded.num_frames} frames, "
                               f"none at the indices asked for ({min(wanted)}..{max(wanted)})")
    return np.stack(kept)
