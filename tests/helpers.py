"""Callbacks the tests put into runs through the config (``trainer.callbacks``)."""

from __future__ import annotations

import hashlib
import json
import os

import pytorch_lightning as pl
import torch


class StopAt(pl.Callback):
    """Stops training after ``step`` optimizer steps, as an interrupted job would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
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
                              "world": trainer.world_size, "env_rank": os.environ.get("RANK")})

    def on_train_end(self, trainer, module) -> None:
        params = torch.cat([p.detach().flatten() for p in module.target_encoder.parameters()])
        self._write(trainer, {"target_sum": params.double().sum().item(),
                              "target_sha256": hashlib.sha256(params.numpy().tobytes()).hexdigest()})


def read_records(path: str, rank: int = 0) -> list[dict]:
    with open(f"{path}.rank{rank}") as f:
        return [json.loads(line) for line in f]
