"""How a job is asked to stop: a signal becomes a request that the job acts on at a safe point.

SIGTERM (``kill``, ``timeout``, SLURM at the time limit or on ``scancel``, Kubernetes), SIGUSR1 and
SIGUSR2 (SLURM's ``--signal`` warning before the time limit) and the first Ctrl-C (SIGINT) all do
the same: the handler only records the request. The job finishes the work in hand (an optimizer
step), saves what it has, and exits with 128 + the signal number (143, 138, 140, 130). A second
Ctrl-C aborts at once (``RunAborted``): nothing more is written, the last complete checkpoint stays
as it was. Data-loading worker processes ignore all four signals (``jepa.data.workers``): the job
alone decides, and shuts its workers down itself.

This module is neutral (no torch, no Lightning) so that data loading, training and evaluation can
all use it; ``jepa.train.graceful_stop`` acts on the request inside a Lightning run.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

# The signals a job treats as "stop at the next safe point", and that data workers ignore.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


class RunAborted(BaseException):
    """A second Ctrl-C: stop now, write nothing more.

    A BaseException (as KeyboardInterrupt is), so that ``except Exception`` clauses on the way out
    do not swallow it.
    """


class StopRequested(Exception):
    """Raised by ``raise_if_stop_requested`` in jobs that have nothing to checkpoint (probes)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal_name(signum)}")
        self.signum = signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def exit_code(signum: int) -> int:
    """The shell's convention for a process ended by signal ``signum``."""
    return 128 + int(signum)


class StopRequests:
    """The stop request of this process, set by signal handlers and read at safe points.

    ``on_abort`` callables run (in the main thread) when a second Ctrl-C aborts, before
    ``RunAborted`` is raised: e.g. killing rank processes this one started.
    """

    def __init__(self, action: str = "stopping at the end of the current step") -> None:
        self.action = action
        self.signum: int | None = None
        self.interrupts = 0
        self.on_abort: list[Callable[[], None]] = []
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def install(self) -> StopRequests:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            if signal.getsignal(sig) == self._handle:  # only ours (bound methods compare equal, not identical)
                signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            self.interrupts += 1
            if self.interrupts > 1:
                # A third Ctrl-C is the kernel's: it ends the process whatever it is doing.
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                print("second Ctrl-C: aborting now, without saving (the last complete checkpoint is kept)",
                      file=sys.stderr, flush=True)
                for fn in self.on_abort:
                    fn()
                raise RunAborted("aborted by a second Ctrl-C")
        if self.signum is None:
            self.signum = signum
            hint = " (Ctrl-C again aborts without saving)" if signum == signal.SIGINT else ""
            print(f"{signal_name(signum)} received: {self.action}{hint}",
                  file=sys.stderr, flush=True)


_active: StopRequests | None = None


def active_stop_requests() -> StopRequests | None:
    """The requests of the ``stop_signals()`` block this process is in, if any."""
    return _active


@contextlib.contextmanager
def stop_signals(action: str = "stopping at the end of the current step") -> Iterator[StopRequests]:
    """Turns SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 into stop requests for the duration of the block.

    ``action`` is what the job says it will do when the first signal comes. Nested blocks share the
    outer one's requests. Outside the main thread (where Python cannot set
    signal handlers) the block yields requests that no signal sets.
    """
    global _active
    if _active is not None:
        yield _active
        return
    requests = StopRequests(action)
    if threading.current_thread() is threading.main_thread():
        requests.install()
    _active = requests
    try:
        yield requests
    finally:
        _active = None
        requests.restore()


def raise_if_stop_requested() -> None:
    """For loops with nothing to checkpoint: ends the job at this point if a stop was asked for."""
    if _active is not None and _active.signum is not None:
        raise StopRequested(_active.signum)
