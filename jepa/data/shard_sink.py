"""Writing samples into numbered tar shards under temporary names, and checking each shard by
reading it back as webdataset (and so training) groups it."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from dataclasses import dataclass, field

from webdataset.tariterators import tarfile_samples

from ..errors import JEPAError
from .shard_inputs import Sample
from .video.decode import one_line

_MTIME = 0  # fixed member times: the same input gives byte-identical shards
_SLOT = r"%(?:0\d+)?d"  # %d or zero-padded %06d: numbers that brace-expand back to the same names


class ShardPattern:
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
class Shard:
    path: str
    tmp: str
    expected: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (key, {suffix: sha256})


def _round_up(n: int, block: int) -> int:
    return -(-n // block) * block


class ShardSink:
    """Appends samples to temporary shards, starting a new one before ``max_count`` or ``max_bytes``
    would be passed; the file size is predicted exactly (headers, 512-byte blocks, tar's end padding)."""

    def __init__(self, pattern: ShardPattern, max_count: int, max_bytes: int) -> None:
        self.pattern, self.max_count, self.max_bytes = pattern, max_count, max_bytes
        self.shards: list[Shard] = []
        self.oversize: list[str] = []
        self._tar: tarfile.TarFile | None = None
        self._offset = 0

    def add(self, sample: Sample) -> None:
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
        self.shards[-1].expected.append((sample.key, {s: sha256(d) for s, d in sample.members}))
        if len(self.shards[-1].expected) == 1 and self._file_size(size) > self.max_bytes:
            self.oversize.append(f"{sample.key} ({self._file_size(size)} bytes in {self.shards[-1].path})")

    def finish(self) -> list[Shard]:
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
        self.shards.append(Shard(path, tmp))
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


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_back(path: str) -> list[tuple[str, dict[str, str]]]:
    """(key, {suffix: sha256}) of each sample, as webdataset (and so training) groups them."""
    return [(s["__key__"], {k: sha256(v) for k, v in s.items() if not k.startswith("__")})
            for s in tarfile_samples([{"url": path}])]


def verify(shard: Shard) -> None:
    try:
        got = read_back(shard.tmp)
    except Exception as exn:  # the shard is unreadable: report it as a failed check
        raise JEPAError(f"verifying {shard.path} failed: cannot read it back ({one_line(exn)})") from exn
    if len(got) != len(shard.expected):
        raise JEPAError(f"verifying {shard.path} failed: read {len(got)} samples back, wrote {len(shard.expected)}")
    for (key, hashes), (want_key, want) in zip(got, shard.expected):
        if key != want_key or hashes != want:
            bad = sorted(s for s in set(hashes) | set(want) if hashes.get(s) != want.get(s))
            raise JEPAError(f"verifying {shard.path} failed: sample {want_key} read back as {key} "
                            f"with different {', '.join(bad) or 'key'}")


def check_output(out_pattern: str, max_count: int, max_bytes: int, overwrite: bool) -> tuple[ShardPattern, list[str]]:
    """Checks the output settings before any input is read: the pattern, the limits, old shards."""
    pattern = ShardPattern(str(out_pattern))
    if max_count < 1 or max_bytes < 1:
        raise JEPAError(f"max count ({max_count}) and max size ({max_bytes} bytes) must be at least 1")
    old = pattern.existing()
    if old and not overwrite:
        raise JEPAError(f"{old[0]} already exists ({len(old)} shards match {out_pattern}): "
                        "pass --overwrite to replace them")
    return pattern, old
