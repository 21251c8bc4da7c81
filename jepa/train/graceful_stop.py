"""Stopping on SIGTERM (a plain ``kill``, torchrun or Kubernetes stopping a job) at a step boundary.

Lightning's own SIGTERM handling ends ``fit`` with exit status 0, saves nothing, and broadcasts from
inside the signal handler on whichever ranks got the signal. Here the handler only sets a flag; at
the end of every step the ranks agree (one all-reduce, at the same point on every rank) whether
any of them was signalled, and then all stop together after ``last.ckpt`` is written.

Under SLURM with auto-requeue Lightning's handling is left alone: SIGUSR1 has already written
``hpc_ckpt_*.ckpt`` and requeued the job when SIGTERM arrives.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.plugins.environments import SLURMEnvironment


def sigterm_step(module: pl.LightningModule) -> int | None:
    """The step at which a SIGTERM stopped this run, or None."""
    return getattr(module, "sigterm_step", None)


class StopOnSigterm(pl.Callback):
    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._handle: Any = None
        self._installed = False
        self._step_seen = 0

    def _handler(self, trainer: pl.Trainer) -> Any:
        def handle(signum: int, frame: Any) -> None:
            if not self.requested:
                self.requested = True
                launcher = trainer.strategy.launcher
                if launcher is not None:  # Lightning-spawned ranks: pass the signal on once
                    launcher.kill(signum)

        return handle

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        env = trainer._accelerator_connector.cluster_environment
        if isinstance(env, SLURMEnvironment) and env.auto_requeue:
            return
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        self._handle = self._handler(trainer)
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        self._installed = True
        self._step_seen = trainer.global_step
        # A SIGTERM that came while data was being set up reached Lightning's handler: take it over.
        if trainer.received_sigterm:
            self.requested = True
            trainer._signal_connector.received_sigterm = False

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: Any) -> None:
        if not self._installed or sigterm_step(module) is not None:
            return
        # Only at an optimizer step (not inside gradient accumulation), and not at the last step,
        # which ends the run normally anyway (final probe and save included). Every rank takes the
        # same branch here, so the all-reduce below is reached by all or none.
        stepped, self._step_seen = trainer.global_step != self._step_seen, trainer.global_step
        if not stepped or trainer.global_step >= (trainer.max_steps or 0) > 0:
            return
        stop = self.requested
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            module.sigterm_step = trainer.global_step  # LastCheckpoint saves this step next
            trainer.should_stop = True

    def _restore(self) -> None:
        # Before Lightning's teardown restores its own saved handlers, and only if ours is still
        # the one installed: the process must not keep a handler that outlives the run.
        if self._installed:
            if signal.getsignal(signal.SIGTERM) is self._handle:
                signal.signal(signal.SIGTERM, self._previous)
            self._installed = False

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()

    def teardown(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        self._restore()
