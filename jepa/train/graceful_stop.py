"""One stop path for every trainer: signals become a stop at an optimizer-step boundary.

The handlers (``jepa.stopping``) only record the request. At the end of every optimizer step the
ranks agree (one all-reduce, at the same point on every rank) whether any of them was asked to
stop, and then all stop together: ``LastCheckpoint`` writes ``last.ckpt`` at that step,
``RunSummary`` records how and where the run stopped, and the job exits with 128 + the signal.
Under SLURM with auto-requeue the requeue signal (SIGUSR1 by default) also requeues the job, once
the checkpoint is in place.

Lightning's own handling is switched off for the run: its SIGTERM path exits with status 0 and
saves nothing, its SLURM SIGUSR1 handler saves from inside the signal handler at whatever point
the step had reached, and both broadcast from inside handlers.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import subprocess
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning.trainer.connectors.signal_connector import _SignalConnector

from ..data.workers import DataWorkerDied
from ..stopping import StopRequests, active_stop_requests, exit_code, signal_name

log = logging.getLogger("jepa")


@dataclass
class Stop:
    """How a run was stopped: by which signal, after which optimizer step."""

    signum: int
    step: int
    requeued: bool = False

    @property
    def signal(self) -> str:
        return signal_name(self.signum)

    @property
    def exit_code(self) -> int:
        return exit_code(self.signum)

    def status(self) -> str:
        return f"stopped by {self.signal} at step {self.step}"


class _NoLightningSignals(_SignalConnector):
    """Lightning's signal connector with its handlers left out: ``StopOnSignal`` owns the signals."""

    def register_signal_handlers(self) -> None:
        self.received_sigterm = False

    def teardown(self) -> None:
        pass


class StopOnSignal(pl.Callback):
    """Stops every rank at the same optimizer step once any rank was asked to stop.

    Uses the process's ``jepa.stopping.stop_signals()`` block when the job opened one before
    building the trainer (so a signal during set-up is not lost); otherwise installs the handlers
    itself for the duration of the fit.
    """

    def __init__(self) -> None:
        self.stop: Stop | None = None
        self.saved_after_failure: int | None = None
        self._requests: StopRequests | None = None
        self._own: StopRequests | None = None
        self._step_seen = 0

    def setup(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        # Before Lightning registers its handlers (at the start of fit, after the setup hooks).
        trainer._signal_connector = _NoLightningSignals(trainer)
        self._requests = active_stop_requests()
        if self._requests is None:
            self._own = self._requests = StopRequests().install()
        launcher = trainer.strategy.launcher
        if launcher is not None and getattr(launcher, "procs", None) is not None:
            # Ranks this process started (Lightning's launcher) go down with it on an abort.
            self._requests.on_abort.append(lambda: launcher.kill(signal.SIGKILL))

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._step_seen = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: Any) -> None:
        if self.stop is not None or self._requests is None:
            return
        # Only at an optimizer step (not inside gradient accumulation), and not at the last step,
        # which ends the run normally anyway (final probe and save included). Every rank takes the
        # same branch here, so the all-reduce below is reached by all or none.
        stepped, self._step_seen = trainer.global_step != self._step_seen, trainer.global_step
        if not stepped or trainer.global_step >= (trainer.max_steps or 0) > 0:
            return
        signum = self._requests.signum or 0
        if trainer.world_size > 1:
            mine = torch.tensor(float(signum), device=trainer.strategy.root_device)
            signum = int(trainer.strategy.reduce(mine, reduce_op="max").item())
        if signum:
            self.stop = Stop(signum, trainer.global_step)  # LastCheckpoint saves this step next
            trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        # LastCheckpoint wrote the stop step in the same on_train_batch_end: the requeued job finds it.
        if self.stop is not None:
            requeue_if_asked(trainer, self.stop)

    def on_exception(self, trainer: pl.Trainer, module: pl.LightningModule, exception: BaseException) -> None:
        # A dead data worker is found where the next batch is read, so the model is at a step
        # boundary and the steps done so far can be kept. With several ranks the others are
        # already waiting in the next collective, and a save (which needs them all) would hang.
        if isinstance(exception, DataWorkerDied) and trainer.world_size == 1:
            save_now = getattr(trainer.checkpoint_callback, "save_now", None)
            if save_now is not None:
                try:
                    save_now(trainer)
                    self.saved_after_failure = trainer.global_step
                except Exception as exn:  # the save must not hide why the run failed
                    log.warning("could not save a checkpoint after the data worker died: %s", exn)

    def teardown(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        if self._own is not None:
            self._own.restore()
            self._own = None


def stop_of(trainer: pl.Trainer | None) -> Stop | None:
    """How ``trainer``'s run was stopped by a signal, or None."""
    if trainer is None:
        return None
    return next((cb.stop for cb in trainer.callbacks if isinstance(cb, StopOnSignal)), None)


def slurm_requeue_signal(trainer: pl.Trainer) -> int | None:
    """The signal that requeues this job (SLURM with auto-requeue), or None."""
    env = trainer._accelerator_connector.cluster_environment
    if isinstance(env, SLURMEnvironment) and env.auto_requeue:
        return int(env.requeue_signal or signal.SIGUSR1)
    return None


def requeue_if_asked(trainer: pl.Trainer, stop: Stop) -> None:
    """``scontrol requeue`` this job when it was stopped by SLURM's requeue signal (rank 0 only, and
    only once the checkpoint is in place: the requeued job resumes with ``--ckpt_path auto``)."""
    if stop.signum != slurm_requeue_signal(trainer) or not trainer.is_global_zero:
        return
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ.get("SLURM_JOB_ID", "")
    if not re.fullmatch(r"[0-9_]+", job):
        log.warning("not requeued: no SLURM job id in the environment")
        return
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exn:
        log.warning("scontrol requeue %s failed: %s", job, exn)
        return
    stop.requeued = done.returncode == 0
    if not stop.requeued:
        log.warning("scontrol requeue %s failed (status %d): %s", job, done.returncode, done.stderr.strip())


def continue_command(argv: list[str]) -> str:
    """The command that continues a run started as ``jepa *argv``: the same arguments with
    ``--ckpt_path auto``."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--ckpt_path":
            skip = True
            continue
        if arg.startswith("--ckpt_path="):
            continue
        kept.append(arg)
    return shlex.join(["jepa", *kept, "--ckpt_path", "auto"])
