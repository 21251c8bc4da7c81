"""Data-loading worker processes that leave stopping to the job, and that report how they died.

Schedulers and terminals signal a whole process group: SLURM at the time limit or with
``--signal=SIGUSR1@90`` (no ``B:``), ``timeout``, container runtimes, Ctrl-C. A DataLoader worker
that took such a signal died of it (or raised KeyboardInterrupt and left), and the training process
then failed with "DataLoader worker ... is killed by signal" before it could save anything. Here
workers ignore the stop signals; the training process alone decides, and shuts them down itself.

A worker that dies by itself (the kernel's out-of-memory killer, a crash in a decoder) ends the
loading with ``DataWorkerDied``, which names the cause. It is raised where the next batch is read,
never in the middle of a training step: PyTorch's SIGCHLD handler, which raises from whatever the
main thread is doing, is replaced, and the death is found by the loader's own liveness check.
"""

from __future__ import annotations

import inspect
import signal
import threading
from collections.abc import Callable
from typing import Any

from torch.utils.data import DataLoader
from torch.utils.data._utils import MP_STATUS_CHECK_INTERVAL
from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

from ..errors import JEPAError
from ..stopping import STOP_SIGNALS

_CAUSES = {
    signal.SIGKILL: "the kernel's out-of-memory killer sends SIGKILL when memory runs out (see dmesg)",
    signal.SIGSEGV: "a crash in native code, e.g. an image or video decoder",
    signal.SIGBUS: "a crash in native code, or shared memory (/dev/shm) too small",
    signal.SIGABRT: "a native library aborted",
}


class DataWorkerDied(JEPAError):
    """A data-loading worker process died of something other than a stop request."""


def describe_exit(pid: int | None, exitcode: int | None, what: str = "data worker") -> str:
    """One phrase for how worker ``pid`` ended (``exitcode`` as multiprocessing reports it); ``what``
    names the kind of worker."""
    who = f"{what} (pid {pid})"
    if exitcode is None:
        return f"{who} stopped responding"
    if exitcode < 0:
        sig = signal.Signals(-exitcode)
        cause = _CAUSES.get(sig)
        return f"{who} was killed by {sig.name}" + (f" ({cause})" if cause else "")
    return f"{who} exited with status {exitcode}"


class _IgnoreStopSignals:
    """worker_init_fn: the stop signals are ignored in the worker, then the user's init runs.

    The workers start with those signals blocked (see ``_GuardedIter``); ignoring them before
    unblocking discards any that arrived in between.
    """

    def __init__(self, init: Callable[[int], Any] | None) -> None:
        self.init = init

    def __call__(self, worker_id: int) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        if self.init is not None:
            self.init(worker_id)


def _torch_sigchld_handler(handler: Any) -> bool:
    return callable(handler) and getattr(handler, "__module__", "") == "torch.utils.data._utils.signal_handling"


def _defer_worker_failures() -> None:
    """Puts back the SIGCHLD handler that PyTorch's raising one wrapped (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGCHLD)
    if _torch_sigchld_handler(current):
        previous = inspect.getclosurevars(current).nonlocals.get("previous_handler")
        signal.signal(signal.SIGCHLD, previous if callable(previous) else signal.SIG_DFL)


class _GuardedIter(_MultiProcessingDataLoaderIter):
    """Starts the workers with the stop signals blocked, and reports a dead worker by its cause."""

    def __init__(self, loader: DataLoader) -> None:
        main = threading.current_thread() is threading.main_thread()
        old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if main else None
        try:
            super().__init__(loader)
        finally:
            if old is not None:
                # Signals that came meanwhile are delivered to this process now.
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        _defer_worker_failures()

    def _try_get_data(self, timeout: float = MP_STATUS_CHECK_INTERVAL) -> tuple[bool, Any]:
        try:
            return super()._try_get_data(timeout)
        except RuntimeError as exn:
            if "exited unexpectedly" not in str(exn):
                raise
            raise DataWorkerDied(self._deaths() or str(exn)) from None
        except (ConnectionError, EOFError):
            # A worker killed after it queued a batch but before its shared memory was handed over:
            # the hand-over's connection is reset. Named like any other death when a worker is gone.
            causes = self._deaths(wait=1.0)
            if not causes:
                raise
            raise DataWorkerDied(causes) from None

    def _deaths(self, wait: float = 0.0) -> str:
        """How the workers that have ended did (after waiting up to ``wait`` s for one to be reaped)."""
        for w in self._workers:
            if wait and w.exitcode is None:
                w.join(timeout=wait / len(self._workers))
        return "; ".join(describe_exit(w.pid, w.exitcode) for w in self._workers if w.exitcode is not None)

    def _shutdown_workers(self) -> None:
        super()._shutdown_workers()
        # PyTorch's last resort is SIGTERM, which these workers ignore.
        for w in getattr(self, "_workers", []):
            if w.is_alive():
                w.kill()
                w.join(timeout=5)


class WorkerSafeLoader(DataLoader):
    """A DataLoader whose workers ignore stop signals and whose worker deaths are named.

    Every loader of the package (training, probe evaluation, ``jepa probe`` features) is one.
    """

    def __init__(self, *args: Any, worker_init_fn: Callable[[int], Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, worker_init_fn=_IgnoreStopSignals(worker_init_fn), **kwargs)

    def _get_iterator(self) -> Any:
        if self.num_workers == 0:
            return super()._get_iterator()
        self.check_worker_number_rationality()
        return _GuardedIter(self)
