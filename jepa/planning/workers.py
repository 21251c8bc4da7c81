"""Episodes in worker processes: ``jepa plan`` plays its seeded episodes on every core (and ``jepa
plan pipeline`` trains the members of a slow-model ensemble the same way).

Why processes and not torch's threads alone: a planner's work is many small matrix products (300 CEM
candidates x a width-128 model), where two threads make a step only 1.4-1.6 times faster than one
(measured on 2 cores: a 5-step rollout of 300; the flat Four-Rooms arm's ms per step); two episodes
at once, one thread each, keep both cores busy (4 flat tasks: 178 s in one process, 144 s in two).
Episodes are independent (each builds its own planner from a fixed seed), so the results do not
depend on how they are split.

Workers are forked, so they share the parent's models and environment without pickling them; each
runs torch on its share of the parent's threads (as PyTorch's DataLoader workers do, so that no
OpenMP pool crosses the fork). As data-loading workers do (``jepa.data.workers``), they ignore the
stop signals that schedulers and terminals send to the whole process group: the parent alone
decides, checks for a stop request while it waits, and kills its workers on the way out. A worker
that dies by itself ends the map in one line naming how. Off Linux (no fork on Windows; on macOS
not fork-safe), or with one worker, episodes run in this process.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

import torch

from ..data.workers import describe_exit
from ..errors import JEPAError
from ..stopping import STOP_SIGNALS, raise_if_stop_requested

T = TypeVar("T")
R = TypeVar("R")

POLL_S = 0.5  # how often the parent looks for a stop request while its workers play


def can_fork() -> bool:
    # Linux only: macOS offers fork, but its system libraries are not fork-safe (Python and PyTorch's
    # DataLoader default to spawn there), and Windows has none.
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def usable_workers(requested: int) -> int:
    """``requested`` workers, or with 0 one per CPU core this process may use (1 where fork is unavailable)."""
    if requested < 0:
        raise JEPAError(f"--workers must be >= 0 (0: one per CPU core), got {requested}")
    if not can_fork():
        return 1
    if requested:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores)


def worker_threads(workers: int) -> int:
    """torch threads each of ``workers`` workers runs on: its share of this process's."""
    return max(1, torch.get_num_threads() // max(1, workers))


def _play(job: Callable[[Any], Any], share: list[tuple[int, Any]], threads: int, conn: Connection) -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    torch.set_num_threads(threads)
    for index, item in share:
        # Plain pickle, not the connection's own: torch's reductions there hand tensors over as shared
        # memory that lives only as long as this process, which ends after its last episode.
        try:
            conn.send_bytes(pickle.dumps((index, True, job(item))))
        except Exception as exn:  # the parent raises it; one that does not pickle goes as its text
            try:
                conn.send_bytes(pickle.dumps((index, False, exn)))
            except Exception:
                conn.send_bytes(pickle.dumps((index, False, RuntimeError(f"{type(exn).__name__}: {exn}"))))
            break
    conn.close()


def map_in_workers(job: Callable[[T], R], items: Iterable[T], workers: int, label: str = "planning worker",
                   unit: str = "episode") -> Iterator[R]:
    """``job`` over ``items`` in ``workers`` forked processes (item i in worker i mod ``workers``),
    results yielded in the items' order as they are ready (in this process when ``workers`` <= 1 or
    fork is unavailable). An exception raised by a job is raised here; a stop request ends the map
    (``StopRequested``); closing the iterator early ends the workers. ``label`` and ``unit`` name a
    worker and an item in the one-line errors."""
    items = list(items)
    workers = min(workers, len(items))
    if workers <= 1 or not can_fork():
        yield from map(job, items)
        return
    context = multiprocessing.get_context("fork")
    threads = worker_threads(workers)
    procs, conns = [], []
    try:
        for k in range(workers):
            receive, send = context.Pipe(duplex=False)
            share = [(i, items[i]) for i in range(k, len(items), workers)]
            proc = context.Process(target=_play, args=(job, share, threads, send), daemon=True)
            proc.start()
            send.close()  # the worker holds the sending end; EOF here means it is gone
            procs.append(proc)
            conns.append(receive)
        ready: dict[int, Any] = {}
        nxt, open_conns = 0, dict(zip(conns, procs))
        while nxt < len(items):
            if nxt in ready:
                yield ready.pop(nxt)
                nxt += 1
                continue
            raise_if_stop_requested()
            if not open_conns:  # every worker ended cleanly, yet an episode never came back
                raise JEPAError(f"{label}s ended before {unit} {nxt + 1} of {len(items)} was done")
            for conn in wait(list(open_conns), timeout=POLL_S):
                try:
                    index, ok, value = pickle.loads(conn.recv_bytes())
                except EOFError:  # the worker closed its end: done, or dead before it finished
                    proc = open_conns.pop(conn)
                    proc.join(timeout=5)
                    if proc.exitcode != 0:  # a worker that played its share exits 0 (errors come as messages)
                        raise JEPAError(f"{describe_exit(proc.pid, proc.exitcode, label)} before its {unit}s were "
                                        "done") from None
                    continue
                if not ok:
                    raise value
                ready[index] = value
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()  # it ignores SIGTERM, as the stop signals
            proc.join(timeout=5)
        for conn in conns:
            conn.close()
