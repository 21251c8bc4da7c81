"""Callbacks the tests put into runs through the config (``trainer.callbacks``)."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import time

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io import TorchCheckpointIO


class StopAt(pl.Callback):
    """Stops training after ``step`` optimizer steps, as an interrupted job would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True


class StopAfterBudget(pl.Callback):
    """Stops training at the first step after a wall-clock budget has fixed ``max_steps``, however
    fast the machine: an interrupted job whose checkpoint carries the fixed number."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        from jepa.train.budget import WallClockBudget

        budget = next(cb for cb in trainer.callbacks if isinstance(cb, WallClockBudget))
        if budget.max_steps is not None:
            trainer.should_stop = True


class Record(pl.Callback):
    """Appends one JSON line per step and rank to ``path``: step, loss, sample indices;
    at the end, a checksum of the target encoder."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _write(self, trainer, record) -> None:
        with open(f"{self.path}.rank{trainer.global_rank}", "a") as f:
            f.write(json.dumps(record) + "\n")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self._write(trainer, {"step": trainer.global_step, "loss": outputs["loss"].item(),
                              "index": batch["index"].tolist(), "rank": trainer.global_rank,
                              "source": batch.get("source"),
                              "world": trainer.world_size, "env_rank": os.environ.get("RANK")})

    def on_train_end(self, trainer, module) -> None:
        params = torch.cat([p.detach().flatten() for p in module.evaluated_encoder.parameters()])
        self._write(trainer, {"target_sum": params.double().sum().item(),
                              "target_sha256": hashlib.sha256(params.numpy().tobytes()).hexdigest()})


def read_records(path: str, rank: int = 0) -> list[dict]:
    with open(f"{path}.rank{rank}") as f:
        return [json.loads(line) for line in f]


class PauseAt(pl.Callback):
    """At optimizer step ``step``: touches ``ready`` (``ready.rank<r>``), then waits for ``go`` to
    exist, so that a test can deliver signals at a known step while the data workers are alive."""

    def __init__(self, step: int, ready: str, go: str, timeout: float = 120.0) -> None:
        self.step, self.ready, self.go, self.timeout = step, ready, go, timeout

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.step:
            return
        with open(f"{self.ready}.rank{trainer.global_rank}", "w"):
            pass
        deadline = time.time() + self.timeout
        while not os.path.exists(self.go) and time.time() < deadline:
            time.sleep(0.05)


class FailingCheckpointIO(TorchCheckpointIO):
    """Checkpoint writes that fail from the ``fail_at``-th on, as on a full disk: part of the file
    is written, then ``OSError(errno)``."""

    def __init__(self, fail_at: int, error: str = "ENOSPC") -> None:
        super().__init__()
        self.fail_at, self.error, self.saves = fail_at, getattr(errno, error), 0

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        self.saves += 1
        if self.saves < self.fail_at:
            return super().save_checkpoint(checkpoint, path, storage_options)
        with open(path, "wb") as f:
            f.write(b"\x80\x02partial")
        raise OSError(self.error, os.strerror(self.error), str(path))


class SlowCheckpointIO(TorchCheckpointIO):
    """The ``slow_at``-th checkpoint write stops half-way for a minute (touching ``ready``), so that
    a test can kill the job in the middle of a save."""

    def __init__(self, slow_at: int, ready: str) -> None:
        super().__init__()
        self.slow_at, self.ready, self.saves = slow_at, ready, 0

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        self.saves += 1
        if self.saves != self.slow_at:
            return super().save_checkpoint(checkpoint, path, storage_options)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getvalue()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            with open(self.ready, "w"):
                pass
            time.sleep(60)
            f.write(data[len(data) // 2 :])


class SignalAtSetup(pl.Callback):
    """Sends ``signal`` to this process while the trainer is being set up, before the first step."""

    def __init__(self, signal: int) -> None:
        self.signal = signal

    def setup(self, trainer, module, stage) -> None:
        os.kill(os.getpid(), self.signal)
