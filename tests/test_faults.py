"""Fault injection: real `jepa pretrain` processes stopped the ways schedulers and people stop them.

Every stop signal, to the process alone and to its whole process group (as SLURM, `timeout`,
container runtimes and terminals send them), with and without data workers; Ctrl-C in a real
pseudo-terminal; kills in the middle of a checkpoint write; a full disk; a data worker killed by
the kernel; two DDP ranks signalled together. Each case checks the exit status, the checkpoint,
summary.json, and that a resume gives the same per-step losses as a run that was never stopped.

The runs pause at a known step (helpers.PauseAt) while the signals are delivered, so the stop
step is deterministic and the data workers are alive when the group is signalled.
"""

from __future__ import annotations

import json
import os
import pty
import resource
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch

from jepa.cli import main
from jepa.runlock import read_holder

from conftest import write_tiny_config
from helpers import read_records

pytestmark = pytest.mark.slow

MAX_STEPS = 12  # every run has the same schedules; runs end earlier through StopAt
PAUSE = 3


def plugin_yaml(kind: str, class_path: str, **init_args) -> str:
    args = ", ".join(f"{k}: {json.dumps(v)}" for k, v in init_args.items())
    return f"    - class_path: {class_path}\n      init_args: {{{args}}}\n"


def fault_config(path: Path, workers: int, *, ckpt_every: int = 100, stop_at: int | None = None,
                 pause: bool = True, plugins: str = "", run_dir: Path | None = None) -> Path:
    """The tiny config with a step recorder, an optional pause at step PAUSE and an early stop."""
    cfg = write_tiny_config(path, steps=MAX_STEPS, workers=workers, ckpt_every=ckpt_every, run_dir=run_dir)
    callbacks = "  callbacks:\n" + plugin_yaml("cb", "helpers.Record", path=str(path / "rec.jsonl"))
    if pause:
        callbacks += plugin_yaml("cb", "helpers.PauseAt", step=PAUSE, ready=str(path / "ready"), go=str(path / "go"))
    if stop_at is not None:
        callbacks += plugin_yaml("cb", "helpers.StopAt", step=stop_at)
    if plugins:
        callbacks += "  plugins:\n" + plugins
    text = cfg.read_text().replace("  enable_model_summary: false\n", "  enable_model_summary: false\n" + callbacks)
    cfg.write_text(text)
    return cfg


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "LOCAL_RANK", "WORLD_SIZE"))}


def start(cfg: Path, *args: str, **popen) -> subprocess.Popen:
    """`jepa pretrain` in a process group of its own (the test runner is not signalled with it).

    Its output goes to files beside the config, not to pipes: nobody reads a pipe while a test waits
    for the pause, and a run that wrote more than a pipe holds would block there. Python's fault
    handler is on, so that a run that hangs can be made to print every thread's stack (see ``hung``).
    """
    env = popen.pop("env", clean_env())
    env["PYTHONFAULTHANDLER"] = "1"
    popen["preexec_fn"] = _no_core_files(popen.get("preexec_fn"))
    files = {}
    for name in ("stdout", "stderr"):
        if name not in popen:
            log = cfg.parent / f"job.{name}"
            log.write_text("")
            # Appending, so that lines ``hung`` adds are not written over by the processes.
            files[name] = popen[name] = open(log, "a")
    try:
        job = subprocess.Popen([sys.executable, "-m", "jepa.cli", "pretrain", "--config", str(cfg),
                                "--probe.enabled", "false", *args], env=env, text=True, start_new_session=True,
                               **popen)
    finally:
        for f in files.values():
            f.close()  # the child holds its own copies
    job.logs = {name: Path(f.name) for name, f in files.items()}
    return job


def _no_core_files(then=None):
    """preexec_fn: a SIGABRT from ``hung`` writes no core file (where core dumps are enabled), then ``then``."""
    def run() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if then is not None:
            then()
    return run


def log_of(job: subprocess.Popen, name: str = "stderr") -> Path | None:
    """The file ``start`` sent ``job``'s stderr (or stdout) to; None where the caller chose (a terminal)."""
    return getattr(job, "logs", {}).get(name)


def output(job: subprocess.Popen, name: str = "stderr", start_at: int = 0) -> str:
    """What ``job`` has written to its stderr (or stdout) file so far, from byte ``start_at``."""
    path = log_of(job, name)
    if path is None or not path.exists():
        return ""
    return path.read_bytes()[start_at:].decode(errors="replace")


def end_group(job: subprocess.Popen) -> None:
    """Kills whatever is left of ``job``'s process group (ranks, data workers), quietly."""
    try:
        os.killpg(job.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    job.wait(timeout=30)


def finish(job: subprocess.Popen, timeout: float) -> str:
    """Waits up to ``timeout`` s for ``job`` to end, cleans up its group; its stderr."""
    try:
        job.wait(timeout=timeout)
    finally:
        end_group(job)
    return output(job)


class RunHung(AssertionError):
    """A run that did not reach its pause in time; the message holds its processes' stacks."""


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...); None once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    pids = [int(p.name) for p in Path("/proc").glob("[0-9]*")]
    return [pid for pid in pids if (st := proc_stat(pid)) is not None and int(st[2]) == pgid and st[0] != "Z"]


def hung(job: subprocess.Popen) -> str:
    """Makes each process of a hung ``job`` print its threads' stacks (SIGABRT with the fault handler
    on); ends the group; returns the stacks.

    The group is frozen first (SIGSTOP), then each process in turn is aborted and let go until it has
    died: the dumps do not interleave, and no process reacts to another's death before its own dump
    (Lightning's watcher in rank 0 would SIGKILL it when rank 1 dies).
    """
    log = log_of(job)
    start_at = log.stat().st_size if log is not None else 0
    try:
        os.killpg(job.pid, signal.SIGSTOP)
    except ProcessLookupError:
        return output(job, start_at=start_at)
    for pid in sorted(group_members(job.pid), reverse=True):  # data workers and later ranks first
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
            if log is not None:
                with open(log, "a") as f:
                    f.write(f"\n== process {pid}: {cmd}\n")
            os.kill(pid, signal.SIGABRT)
            os.kill(pid, signal.SIGCONT)
        except (ProcessLookupError, FileNotFoundError):
            continue
        deadline = time.time() + 10
        while (st := proc_stat(pid)) is not None and st[0] != "Z" and time.time() < deadline:
            time.sleep(0.02)
    end_group(job)
    lines = output(job, start_at=start_at).splitlines()
    return "\n".join(line for line in lines if not line.startswith("Extension modules:"))


def wait_for(paths: list[Path], job: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not all(p.exists() for p in paths):
        if job.poll() is not None:
            pytest.fail(f"the run ended (status {job.returncode}) before it reached the pause:\n{output(job)[-3000:]}")
        if time.time() > deadline:
            missing = [p.name for p in paths if not p.exists()]
            raise RunHung(f"the run did not reach the pause in {timeout:.0f} s ({missing} missing); the stacks "
                          f"of its processes:\n{hung(job)}")
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def losses(path: Path, rank: int = 0) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_records(str(path / "rec.jsonl"), rank) if "loss" in r}


def step_of(ckpt: Path) -> int:
    return torch.load(ckpt, weights_only=True, map_location="cpu")["global_step"]


def summary_of(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def resume(path: Path, workers: int, stop_at: int, run_dir: Path) -> dict[int, float]:
    """Continues ``run_dir`` with --ckpt_path auto (in this process) up to ``stop_at``; its losses."""
    Path(f"{path / 'rec.jsonl'}.rank0").unlink(missing_ok=True)
    cfg = fault_config(path, workers, stop_at=stop_at, pause=False, run_dir=run_dir)
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false", "--ckpt_path", "auto"]) == 0
    return losses(path)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[int, dict[int, float]]:
    """Per-step losses of uninterrupted runs of MAX_STEPS steps, with 0 and 2 data workers."""
    out = {}
    for workers in (0, 2):
        path = tmp_path_factory.mktemp(f"reference{workers}")
        cfg = fault_config(path, workers, pause=False)
        assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false"]) == 0
        out[workers] = losses(path)
        assert sorted(out[workers]) == list(range(1, MAX_STEPS + 1))
    return out


def no_traceback(err: str) -> None:
    assert "Traceback" not in err and "killed by signal" not in err, err[-3000:]


CASES = [(sig, to_group, workers) for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
         for to_group in (False, True) for workers in (0, 2)] + [(signal.SIGUSR2, True, 2)]


@pytest.mark.parametrize("sig, to_group, workers", CASES,
                         ids=[f"{s.name}-{'group' if g else 'process'}-{w}" for s, g, w in CASES])
def test_a_stop_signal_saves_the_step_and_the_resume_is_exact(tmp_path, reference, sig, to_group, workers):
    cfg = fault_config(tmp_path, workers)
    run = tmp_path / "run"
    job = start(cfg)
    try:
        wait_for([tmp_path / "ready.rank0"], job)
        if workers:
            assert len(children(job.pid)) == workers  # the group signal reaches them too
        if to_group:
            os.killpg(job.pid, sig)
        else:
            job.send_signal(sig)
        time.sleep(0.3)  # let the signal land while the run is paused
        (tmp_path / "go").touch()
        err = finish(job, timeout=180)
    finally:
        end_group(job)
    assert job.returncode == 128 + sig, err[-3000:]
    no_traceback(err)
    status = f"stopped by {sig.name} at step {PAUSE}"
    assert f"{status}: {run}/checkpoints/last.ckpt holds that step" in err
    assert step_of(run / "checkpoints" / "last.ckpt") == PAUSE
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    summary = summary_of(run)
    assert summary["status"] == status and summary["steps"] == PAUSE
    assert summary["stop"]["signal"] == sig.name and summary["stop"]["exit_code"] == 128 + sig
    assert summary["continue_with"].endswith("--ckpt_path auto")
    assert sorted(losses(tmp_path)) == [1, 2, 3]
    # The resumed run continues exactly: bit-identical losses to the uninterrupted run's.
    resumed = resume(tmp_path, workers, PAUSE + 3, run)
    assert sorted(resumed) == [4, 5, 6]
    assert resumed == {s: reference[workers][s] for s in (4, 5, 6)}


class Terminal:
    """A pseudo-terminal whose foreground process group is a `jepa pretrain` run: bytes typed at
    it go through the terminal's line discipline, so ^C sends SIGINT to the whole group."""

    def __init__(self, cfg: Path) -> None:
        master, slave = pty.openpty()
        self.master = master
        self.output = b""

        def controlling_terminal() -> None:  # runs in the child after setsid()
            import fcntl
            import termios

            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.job = start(cfg, stdin=slave, stdout=slave, stderr=slave, preexec_fn=controlling_terminal)
        os.close(slave)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        fd = self.master  # close() may clear the attribute while this thread is still in a read
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: every process holding the terminal has ended
                return
            if not chunk:
                return
            self.output += chunk

    def wait_for_pause(self, path: Path) -> None:
        """``wait_for`` the pause; the stacks of a hang are printed to the terminal, so they are added."""
        try:
            wait_for([path], self.job)
        except RunHung as exn:
            time.sleep(1)  # the reader thread takes what is left
            raise RunHung(f"{exn}{self.text()[-60000:]}") from None

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def text(self) -> str:
        return self.output.decode(errors="replace")

    def wait(self, timeout: float = 180) -> int:
        try:
            return self.job.wait(timeout=timeout)
        finally:
            self.close()

    def close(self) -> None:
        """Ends the job's group and the reader; closes the terminal (once)."""
        end_group(self.job)
        self.reader.join(timeout=10)
        if self.master is not None:
            os.close(self.master)
            self.master = None


def test_ctrl_c_in_a_terminal_stops_with_a_checkpoint_and_exit_130(tmp_path, reference):
    cfg = fault_config(tmp_path, workers=2)
    term = Terminal(cfg)
    try:
        term.wait_for_pause(tmp_path / "ready.rank0")
        term.type(b"\x03")
        deadline = time.time() + 30
        while "SIGINT received" not in term.text() and time.time() < deadline:
            time.sleep(0.05)
        (tmp_path / "go").touch()
        assert term.wait() == 130, term.text()[-3000:]
    finally:
        term.close()
    out = term.text()
    assert f"stopped by SIGINT at step {PAUSE}" in out and "Ctrl-C again aborts" in out
    no_traceback(out)
    assert "Detected KeyboardInterrupt" not in out
    run = tmp_path / "run"
    assert step_of(run / "checkpoints" / "last.ckpt") == PAUSE
    assert summary_of(run)["status"] == f"stopped by SIGINT at step {PAUSE}"
    assert resume(tmp_path, 2, PAUSE + 2, run) == {s: reference[2][s] for s in (4, 5)}


def test_a_second_ctrl_c_aborts_at_once_and_keeps_the_previous_checkpoint(tmp_path, reference):
    cfg = fault_config(tmp_path, workers=2, ckpt_every=2)  # last.ckpt at step 2, the pause at 3
    term = Terminal(cfg)
    run = tmp_path / "run"
    try:
        term.wait_for_pause(tmp_path / "ready.rank0")
        saved = (run / "checkpoints" / "last.ckpt").read_bytes()
        term.type(b"\x03")
        deadline = time.time() + 30
        while "SIGINT received" not in term.text() and time.time() < deadline:
            time.sleep(0.05)
        t0 = time.time()
        term.type(b"\x03")  # the run is still paused: it never gets to its stop step
        assert term.wait(timeout=60) == 130, term.text()[-3000:]
        assert time.time() - t0 < 20
    finally:
        term.close()
    out = term.text()
    assert "second Ctrl-C: aborting now" in out
    no_traceback(out)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == saved and step_of(run / "checkpoints" / "last.ckpt") == 2
    status = summary_of(run)["status"]
    assert status.startswith(f"aborted by a second Ctrl-C at step {PAUSE}; the last checkpoint is"), status
    assert resume(tmp_path, 2, 4, run) == {s: reference[2][s] for s in (3, 4)}


def test_sigkill_in_the_middle_of_a_save_leaves_the_previous_checkpoint(tmp_path, reference):
    slow = plugin_yaml("plugin", "helpers.SlowCheckpointIO", slow_at=2, ready=str(tmp_path / "saving"))
    cfg = fault_config(tmp_path, workers=0, ckpt_every=2, pause=False, plugins=slow)
    job = start(cfg)
    try:
        wait_for([tmp_path / "saving"], job)  # the second save (step 4) is half written
        os.killpg(job.pid, signal.SIGKILL)
        finish(job, timeout=60)
    finally:
        end_group(job)
    ckpts = tmp_path / "run" / "checkpoints"
    assert (ckpts / "last.ckpt.tmp").is_file()  # the half-written file, beside the whole one
    assert step_of(ckpts / "last.ckpt") == 2
    assert read_holder(tmp_path / "run")[0].pid == job.pid  # the dead run's lock is left ...
    assert resume(tmp_path, 0, 5, tmp_path / "run") == {s: reference[0][s] for s in (3, 4, 5)}
    assert read_holder(tmp_path / "run") is None  # ... taken over by the resume, and let go at its end
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt"]  # the next save removed it
    assert step_of(ckpts / "last.ckpt") == 5


def test_a_full_disk_ends_the_run_in_one_line_and_keeps_the_previous_checkpoint(tmp_path):
    full = plugin_yaml("plugin", "helpers.FailingCheckpointIO", fail_at=2)
    cfg = fault_config(tmp_path, workers=0, ckpt_every=2, pause=False, plugins=full)
    job = start(cfg)
    err = finish(job, timeout=300)
    assert job.returncode == 1, err[-3000:]
    no_traceback(err)
    last_line = err.strip().splitlines()[-1]
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert last_line.startswith(f"error: failed at step 4: could not write the checkpoint {ckpt}: "
                                f"No space left on device; the previous {ckpt} (step 2) is whole"), last_line
    assert "continue with: jepa pretrain" in last_line and last_line.endswith("--ckpt_path auto")
    assert step_of(ckpt) == 2 and sorted(p.name for p in ckpt.parent.iterdir()) == ["last.ckpt"]
    summary = summary_of(tmp_path / "run")
    assert summary["status"].startswith("failed at step 4: could not write the checkpoint")
    assert resume(tmp_path, 0, 3, tmp_path / "run") and step_of(ckpt) == 3


def test_a_data_worker_killed_by_the_kernel_is_named_and_the_steps_are_kept(tmp_path, reference):
    cfg = fault_config(tmp_path, workers=2)
    job = start(cfg)
    try:
        wait_for([tmp_path / "ready.rank0"], job)
        victim = children(job.pid)[0]
        os.kill(victim, signal.SIGKILL)  # what the out-of-memory killer does
        (tmp_path / "go").touch()
        err = finish(job, timeout=180)
    finally:
        end_group(job)
    assert job.returncode == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    last_line = err.strip().splitlines()[-1]
    run = tmp_path / "run"
    step = step_of(run / "checkpoints" / "last.ckpt")
    assert step >= PAUSE
    assert last_line.startswith(f"error: failed at step {step}: data worker (pid {victim}) was killed by SIGKILL "
                                "(the kernel's out-of-memory killer"), last_line
    assert f"{run}/checkpoints/last.ckpt holds step {step}; continue with: jepa pretrain" in last_line
    summary = summary_of(run)
    assert f"data worker (pid {victim}) was killed by SIGKILL" in summary["status"]
    assert summary["continue_with"].endswith("--ckpt_path auto") and summary["steps"] == step
    # Nothing done before the death is lost: the resume continues from that step, exactly.
    end = min(step + 2, MAX_STEPS)
    resumed = resume(tmp_path, 2, end, run)
    assert resumed == {s: reference[2][s] for s in range(step + 1, end + 1)}


def test_two_ddp_ranks_signalled_as_a_group_stop_at_the_same_step(tmp_path):
    # In one CI run of five the two-rank job never reached its pause (300 s), and nothing of the cause
    # was kept; in 37 runs here (alone, beside two busy processes, after the rest of this file) it
    # always did, in about 10 s. A first hang is now reported with every process's stack (a warning
    # in the test summary) and the job starts again once in a fresh folder; a second one fails the
    # test with the stacks.
    for attempt in (1, 2):
        path = tmp_path / f"attempt{attempt}"
        cfg = fault_config(path, workers=2)
        job = start(cfg, "--trainer.devices", "2", "--trainer.strategy", "ddp")
        try:
            wait_for([path / "ready.rank0", path / "ready.rank1"], job, timeout=120)
            break
        except RunHung as exn:
            if attempt == 2:
                raise
            warnings.warn(f"first attempt: {exn}", stacklevel=1)
        except BaseException:
            end_group(job)  # a rank that died leaves the other and the workers running
            raise
    # One lock for the two ranks, held by the launching process (rank 1 would have been refused).
    assert read_holder(path / "run")[0].pid == job.pid
    try:
        os.killpg(job.pid, signal.SIGTERM)  # both ranks and their four data workers
        time.sleep(0.3)
        (path / "go").touch()
        err = finish(job, timeout=180)
    finally:
        end_group(job)
    assert job.returncode == 143, err[-3000:]
    no_traceback(err)
    last = [max(losses(path, r)) for r in (0, 1)]
    assert last == [PAUSE, PAUSE]
    assert step_of(path / "run" / "checkpoints" / "last.ckpt") == PAUSE
    assert summary_of(path / "run")["status"] == f"stopped by SIGTERM at step {PAUSE}"
    assert read_holder(path / "run") is None


def test_two_runs_started_together_into_one_folder_one_runs_and_the_other_is_refused(tmp_path, reference):
    # What a requeued job does while its old copy still runs, or array tasks that share a run_dir.
    cfg = fault_config(tmp_path, workers=0)
    logs = [tmp_path / f"job{i}.stderr" for i in (0, 1)]
    jobs = []
    for log in logs:
        with open(log, "w") as err:
            jobs.append(start(cfg, stderr=err, stdout=subprocess.DEVNULL))
    try:
        deadline = time.time() + 180
        while all(job.poll() is None for job in jobs) and time.time() < deadline:
            time.sleep(0.05)
        loser = next(i for i, job in enumerate(jobs) if job.poll() is not None)
        winner = jobs[1 - loser]
        err = logs[loser].read_text()
        assert jobs[loser].returncode == 2, err[-3000:]
        no_traceback(err)
        line = err.strip().splitlines()[-1]
        assert line.startswith(f"error: {tmp_path / 'run'} is in use by jepa pretrain (pid {winner.pid} on "), line
        assert "give another --run_dir" in line
        wait_for([tmp_path / "ready.rank0"], winner)
        (tmp_path / "go").touch()
        winner.wait(timeout=180)
    finally:
        for job in jobs:
            end_group(job)
    assert winner.returncode == 0, logs[1 - loser].read_text()[-3000:]
    steps = [r["step"] for r in read_records(str(tmp_path / "rec.jsonl"), 0) if "loss" in r]
    assert steps == list(range(1, MAX_STEPS + 1))  # one run's steps, each once
    assert losses(tmp_path) == reference[0]
    assert read_holder(tmp_path / "run") is None
