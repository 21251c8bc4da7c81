"""``checkpoints/last.ckpt``: written atomically every N steps and always at the final step."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


class LastCheckpoint(ModelCheckpoint):
    """Keeps one ``last.ckpt`` in ``<run_dir>/checkpoints``, overwritten in place (never
    ``last-v1.ckpt``), every ``every_n_steps`` optimizer steps and when training ends.

    Lightning's ModelCheckpoint skips the end-of-training save once any ``last.ckpt`` was written,
    which would leave the final steps out of the checkpoint that ``jepa export`` reads. Here the
    end of training always rewrites it, so it also holds what callbacks recorded at the end (the
    final probe evaluation).
    """

    def __init__(self, run_dir: str, every_n_steps: int) -> None:
        super().__init__(
            dirpath=str(Path(run_dir) / "checkpoints"),
            save_last=True,
            save_top_k=0,
            every_n_train_steps=every_n_steps,
            enable_version_counter=False,
        )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
