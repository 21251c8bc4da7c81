"""One writer per output folder: a lock file that a second ``jepa`` command refuses, in one line.

Every command that writes a folder (``jepa pretrain`` and ``jepa world`` run folders, ``jepa export``,
probe and plan outputs, ``jepa plan pipeline``) holds ``<folder>/.jepa-lock.json`` from before its
first write to after its last. What it relies on, so that it holds on the filesystems clusters use:

- Taking the lock is one ``open(O_CREAT | O_EXCL)``: atomic on local disks, on NFS from version 3 on
  (an exclusive CREATE the server decides) and on Lustre. ``flock``/``fcntl`` locks are not used:
  on some NFS and Lustre mounts they are local to one client or silently do nothing.
- The file names its holder (host, pid, command, start time, and what tells a live process from a
  reused pid). A holder on THIS machine (same host name, boot and pid namespace) is alive while its
  pid runs the process that wrote the lock: a SIGKILLed or power-lost run leaves a lock that the
  next command takes over at once. A holder on another machine cannot be asked: it renews the
  file's modification time every ``HEARTBEAT_S`` seconds, and its lock expires ``EXPIRY_S`` seconds
  after the last renewal (large against the heartbeat so that clock skew between nodes and a slow
  filesystem do not expire a live run).
- Taking over a stale lock is serialised by a second exclusive file (``.jepa-lock.json.break``), so
  two commands that both find the same stale lock cannot both take it.

Distributed runs take it once: only the launching process (global rank 0) locks; the other ranks
never touch the file. Locks are re-entrant within one process (``jepa plan pipeline`` holds its
folder while its stages hold theirs).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import JEPAError

LOCK_NAME = ".jepa-lock.json"
HEARTBEAT_S = 30.0
EXPIRY_S = 600.0
_BREAK_EXPIRY_S = 60.0  # a takeover lasts milliseconds; a break file older than this was left by a crash
_POLL_S = 1.0


class FolderInUse(JEPAError):
    """Another live process holds the folder."""


@dataclass(frozen=True)
class Holder:
    """Who holds a folder, as written in its lock file."""

    host: str
    pid: int
    command: str
    since: str  # UTC, for people
    boot: str | None = None  # the kernel's boot id: a pid means nothing across reboots
    pidns: str | None = None  # the pid namespace: containers on one host share its host name
    start_ticks: int | None = None  # the process's start time: tells a reused pid from the holder

    def here(self) -> bool:
        """Whether this machine can judge the holder's pid (same host, boot and pid namespace)."""
        me = this_process("")
        return (self.host, self.boot, self.pidns) == (me.host, me.boot, me.pidns)

    def alive(self) -> bool:
        """On this machine: whether the holder's pid still runs the process that took the lock."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's live process
            return True
        return self.start_ticks is None or _start_ticks(self.pid) in (None, self.start_ticks)

    def describe(self) -> str:
        return f"{self.command} (pid {self.pid} on {self.host}, since {self.since})"


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks after boot); None where there is no /proc."""
    text = _read(Path(f"/proc/{pid}/stat"))
    if text is None:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: split after its last ')'
        return int(text.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def this_process(command: str) -> Holder:
    boot = _read(Path("/proc/sys/kernel/random/boot_id"))
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = None
    return Holder(host=socket.gethostname(), pid=os.getpid(), command=command,
                  since=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                  boot=boot.strip() if boot else None, pidns=pidns, start_ticks=_start_ticks(os.getpid()))


def launching_rank_is_zero() -> bool:
    """Whether this process is the one that locks for a distributed run: global rank 0, read from the
    variables launchers set (torchrun's RANK, Lightning's LOCAL_RANK and NODE_RANK for the processes
    it starts, srun's SLURM_PROCID) in the order Lightning reads them."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key) is not None:
            return int(os.environ[key]) == 0 and int(os.environ.get("NODE_RANK", "0") or 0) == 0
    return int(os.environ.get("NODE_RANK", "0") or 0) == 0


def read_holder(folder: str | Path) -> tuple[Holder, float] | None:
    """The holder named in ``folder``'s lock and the seconds since it was last renewed; None if unlocked."""
    path = Path(folder) / LOCK_NAME
    text = _read(path)
    if text is None:
        return None
    try:
        age = time.time() - path.stat().st_mtime
        data = json.loads(text)
        return Holder(**{k: data.get(k) for k in Holder.__dataclass_fields__}), age
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):  # cut short by a crash between create and write: judged by age alone
        return Holder(host="?", pid=-1, command="an unreadable lock", since="?"), age


def is_stale(holder: Holder, age_s: float, expiry_s: float = EXPIRY_S) -> bool:
    """A lock is stale when its holder is known dead (this machine) or has not renewed it for
    ``expiry_s`` seconds (another machine, or a lock that cannot be read)."""
    if holder.pid > 0 and holder.here():
        return not holder.alive()
    return age_s > expiry_s


class FolderLock:
    """An exclusive lock on an output folder; see the module's docstring for what it relies on."""

    def __init__(self, folder: str | Path, command: str, *, wait_s: float = 0.0, heartbeat_s: float = HEARTBEAT_S,
                 expiry_s: float = EXPIRY_S, hint: str = "give another output folder") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command
        self.wait_s, self.heartbeat_s, self.expiry_s = wait_s, heartbeat_s, expiry_s
        self.hint = hint
        self._made_folder = False
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._content = ""

    # Taking and giving back.
    def acquire(self) -> FolderLock:
        if not self.folder.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            self._made_folder = True
        deadline = time.monotonic() + self.wait_s
        said = False
        while True:
            if self._try_create():
                break
            found = read_holder(self.folder)
            if found is None:
                continue  # released between our attempt and the read: try again
            holder, age = found
            if is_stale(holder, age, self.expiry_s):
                self._break(holder, age)
                continue
            if time.monotonic() >= deadline:
                self._forget_folder()
                raise FolderInUse(self._refusal(holder, age))
            if not said:
                print(f"waiting up to {self.wait_s:g} s for {holder.describe()} to release {self.folder}",
                      flush=True)
                said = True
            time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
        self._beat = threading.Thread(target=self._renew, name=f"jepa-lock {self.folder}", daemon=True)
        self._beat.start()
        return self

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        if _read(self.path) == self._content:  # never remove a lock someone took over from us
            self.path.unlink(missing_ok=True)
        self._forget_folder()

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # Internals.
    def _try_create(self) -> bool:
        self._content = json.dumps(asdict(this_process(self.command)), indent=2) + "\n"
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except FileNotFoundError:  # a holder that made the folder removed it, empty, as it let go
            self.folder.mkdir(parents=True, exist_ok=True)
            return self._try_create()
        with os.fdopen(fd, "w") as f:
            f.write(self._content)
            f.flush()
            os.fsync(f.fileno())
        return True

    def _break(self, judged: Holder, age: float) -> None:
        """Removes the stale lock judged so, unless another process is already taking it over."""
        breaker = self.path.with_name(LOCK_NAME + ".break")
        try:
            os.close(os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                if time.time() - breaker.stat().st_mtime > _BREAK_EXPIRY_S:
                    breaker.unlink()
            time.sleep(0.05)
            return
        try:
            again = read_holder(self.folder)
            if again is not None and again[0] == judged and is_stale(*again, self.expiry_s):
                self.path.unlink(missing_ok=True)
                print(f"took over {self.folder} from {judged.describe()}: "
                      f"{'that process is gone' if judged.here() else f'its lock expired {age:.0f} s after its last renewal'}",
                      flush=True)
        finally:
            breaker.unlink(missing_ok=True)

    def _renew(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                os.utime(self.path)
            except OSError:  # the folder went away or was taken over: nothing more to renew
                return

    def _forget_folder(self) -> None:
        # A command refused (or one that wrote nothing) leaves no empty folder it made itself.
        if self._made_folder:
            with contextlib.suppress(OSError):
                self.folder.rmdir()

    def _refusal(self, holder: Holder, age: float) -> str:
        where = "" if holder.here() else (f"; a lock from another machine expires {self.expiry_s:.0f} s after its "
                                          f"holder last renewed it ({age:.0f} s ago)")
        return (f"{self.folder} is in use by {holder.describe()}: wait for it to end or stop it, or {self.hint}"
                f"{where} (lock file {self.path})")


_HELD: dict[Path, list] = {}  # folder -> [lock, depth]: re-entrant within one process
_TAKEN: list[Path] = []  # every take, in order, for folders_released_after
_HELD_GUARD = threading.Lock()


@contextlib.contextmanager
def hold_folder(folder: str | Path, command: str, *, wait_s: float = 0.0,
                hint: str = "give another output folder") -> Iterator[FolderLock | None]:
    """Holds ``folder`` for the block (re-entrant in one process; only rank 0 of a distributed run
    locks, the other ranks get None)."""
    lock = take_folder(folder, command, wait_s=wait_s, hint=hint)
    try:
        yield lock
    finally:
        if lock is not None:
            _release(Path(folder).resolve())


def take_folder(folder: str | Path, command: str, *, wait_s: float = 0.0,
                hint: str = "give another output folder") -> FolderLock | None:
    """Takes ``folder`` until the innermost ``folders_released_after`` block ends (or the process
    does, for a caller outside any); see ``hold_folder``."""
    if not launching_rank_is_zero():
        return None
    key = Path(folder).resolve()
    with _HELD_GUARD:
        if key in _HELD:
            _HELD[key][1] += 1
            _TAKEN.append(key)
            return _HELD[key][0]
    lock = FolderLock(folder, command, wait_s=wait_s, hint=hint).acquire()
    with _HELD_GUARD:
        _HELD[key] = [lock, 1]
        _TAKEN.append(key)
    return lock


@contextlib.contextmanager
def folders_released_after() -> Iterator[None]:
    """Gives back, when the block ends however it ends, every folder ``take_folder`` took inside it:
    for commands whose folder is known only once their configuration is parsed."""
    mark = len(_TAKEN)
    try:
        yield
    finally:
        while len(_TAKEN) > mark:
            _release(_TAKEN[-1])


def _release(key: Path) -> None:
    """Ends the newest take of ``key``; the lock goes with the outermost one."""
    with _HELD_GUARD:
        if key in _TAKEN:
            del _TAKEN[len(_TAKEN) - 1 - _TAKEN[::-1].index(key)]
        held = _HELD.get(key)
        if held is None:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del _HELD[key]
    held[0].release()


@atexit.register
def _release_all() -> None:
    # A caller outside any folders_released_after block still leaves no lock behind on a normal exit.
    while _TAKEN:
        _release(_TAKEN[-1])
