"""``checkpoints/last.ckpt``: written atomically every N steps and always at the final step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from ..errors import JEPAError


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

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        # SIGTERM (a scheduler's stop, a plain `kill`): Lightning stops after this batch without
        # saving; save here so the run resumes from this step, not from the last periodic save.
        stop = bool(getattr(trainer, "received_sigterm", False))
        if trainer.world_size > 1:  # the signal may reach one rank only; saving is collective
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self.saved_on_sigterm = trainer.global_step


# Hyper-parameters that fix the shapes of the weights: a checkpoint resumes only into the same.
ARCHITECTURE_KEYS = ("encoder", "predictor", "image_size", "num_classes")


def check_same_architecture(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuses to resume a checkpoint (hyper-parameters ``saved``) into a model built as ``current``."""
    for key in ARCHITECTURE_KEYS:
        if key in saved and saved[key] != current[key]:
            raise JEPAError(
                f"the checkpoint was trained with model.{key}={saved[key]} but this config has "
                f"{current[key]}: resume with the run's own config, or use another run_dir"
            )


def resume_step(ckpt_path: str, hparams: dict[str, Any]) -> int:
    """The step a resume starts from, after checking that the checkpoint fits this model.

    Run before the trainer exists, so a refused resume leaves the run directory as it was
    (config.yaml, metrics.csv and summary.json are only written once fitting starts).
    """
    from ..export import read_checkpoint

    ckpt = read_checkpoint(ckpt_path, tensors=False)
    check_same_architecture(ckpt.get("hyper_parameters", {}), hparams)
    return int(ckpt.get("global_step", 0))
