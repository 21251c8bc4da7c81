"""Lightning's progress bar for output that is not a terminal: a line every few percent of the
run's steps (with the loss), instead of a bar redrawn thousands of times on one line."""

from __future__ import annotations

import sys
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar

from ..progress import Progress


class LineProgressBar(ProgressBar):
    """Prints ``step/max_steps (p%, rate) loss`` on global rank 0 every 5% of the run."""

    def __init__(self, every: float = 0.05) -> None:
        super().__init__()
        self.every = every
        self.enabled = True
        self.progress: Progress | None = None

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Standard output, where Lightning's own bar would have gone.
        self.progress = Progress(trainer.max_steps, "steps", stream=sys.stdout, every=self.every)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not (self.enabled and trainer.is_global_zero and self.progress is not None):
            return
        loss = trainer.progress_bar_metrics.get("loss")
        if loss is None and isinstance(outputs, dict) and "loss" in outputs:
            loss = outputs["loss"]
        note = f"loss {float(loss):.4f}" if loss is not None else ""
        # A wall-clock budget fixes max_steps after the first steps: the total is read each time.
        self.progress.update(trainer.global_step, note, total=trainer.max_steps)
