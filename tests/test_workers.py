"""Episodes in worker processes (jepa.planning.workers): the same results in the same order as one
process, errors surfaced in one line, torch threads shared out, workers gone when the caller stops."""

import multiprocessing
import os
import signal
import time

import pytest
import torch

from jepa.errors import JEPAError
from jepa.planning.agent import AgentSettings
from jepa.planning.envs import make_env
from jepa.planning.evaluate import evaluate
from jepa.planning.planners import CEM, CEMSettings
from jepa.planning.workers import can_fork, map_in_workers, usable_workers, worker_threads
from jepa.stopping import StopRequested, stop_signals

needs_fork = pytest.mark.skipif(not can_fork(), reason="worker processes are forked")


def _where(x: int) -> tuple[int, int, int]:
    return x * x, os.getpid(), torch.get_num_threads()


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise JEPAError("episode 3: no start clear of the keep-out region")
    return x


@needs_fork
def test_results_come_back_in_order_from_other_processes_on_a_share_of_the_threads():
    threads = torch.get_num_threads()
    out = list(map_in_workers(_where, range(7), 2))
    assert [o[0] for o in out] == [x * x for x in range(7)]
    assert all(pid != os.getpid() for _, pid, _ in out)  # really played elsewhere
    assert {t for _, _, t in out} == {worker_threads(2)} == {max(1, threads // 2)}
    assert torch.get_num_threads() == threads  # the parent's own threads untouched
    assert [o[1] for o in map_in_workers(_where, range(3), 1)] == [os.getpid()] * 3  # one worker: in this process


@needs_fork
def test_an_error_in_a_worker_is_raised_here_and_the_workers_end():
    with pytest.raises(JEPAError, match="episode 3: no start clear"):
        list(map_in_workers(_fails_on_three, range(6), 2))
    assert multiprocessing.active_children() == []
    stopped = map_in_workers(_where, range(50), 2)  # a caller that stops after the first result
    next(stopped)
    stopped.close()
    assert multiprocessing.active_children() == []


def test_worker_count_is_checked():
    assert usable_workers(3) == (3 if can_fork() else 1)
    assert usable_workers(0) >= 1
    with pytest.raises(JEPAError, match=r"--workers must be >= 0 \(0: one per CPU core\), got -1"):
        usable_workers(-1)


@needs_fork
def test_evaluate_gives_the_same_episodes_with_workers():
    env = make_env("four-rooms")
    planner = lambda: CEM(CEMSettings(samples=16, iterations=2, elites=4))  # noqa: E731
    runs = [evaluate(env, range(3), ["random", "simulator"], planner, AgentSettings(step_budget=6), workers=w)
            for w in (1, 2)]
    for arm in ("random", "simulator"):
        one, two = runs[0][arm]["episodes"], runs[1][arm]["episodes"]
        assert [e.seed for e in two] == [0, 1, 2]
        for a, b in zip(one, two):
            assert a.steps == b.steps and a.success == b.success
            torch.testing.assert_close(a.path, b.path)


def _dies_on_two(x: int) -> int:
    if x == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer would
    return x


@needs_fork
def test_a_worker_that_dies_is_named_in_one_line():
    with pytest.raises(JEPAError, match=r"planning worker \(pid \d+\) was killed by SIGKILL .*before its episodes"):
        list(map_in_workers(_dies_on_two, range(6), 2))
    assert multiprocessing.active_children() == []


@needs_fork
def test_a_stop_request_ends_the_map_and_its_workers():
    def slow(x: int) -> int:
        time.sleep(0.2)
        return x

    with stop_signals("stopping"):
        out = map_in_workers(slow, range(40), 2)
        assert next(out) == 0
        os.kill(os.getpid(), signal.SIGTERM)  # the whole group would get it; workers ignore it
        with pytest.raises(StopRequested):
            list(out)
    assert multiprocessing.active_children() == []


def _quits_on_one(x: int) -> int:
    if x == 1:
        os._exit(0)  # ends the worker "cleanly" without sending the episode back
    return x


@needs_fork
def test_a_worker_that_quits_without_its_episodes_is_an_error_not_a_hang():
    with pytest.raises(JEPAError, match="planning workers ended before episode 2 of 4 was done"):
        list(map_in_workers(_quits_on_one, range(4), 2))
