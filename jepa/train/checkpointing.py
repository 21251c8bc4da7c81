"""``checkpoints/last.ckpt``: written atomically every N steps and always at the final step."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from weakref import proxy

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from ..contract import ARCHITECTURE_DEFAULTS, ARCHITECTURE_KEYS
from ..errors import JEPAError
from .graceful_stop import stop_of


class CheckpointWriteError(JEPAError):
    """``last.ckpt`` could not be written (no space left, no permission); the previous one is whole."""


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

    def save_now(self, trainer: pl.Trainer) -> None:
        """Writes ``last.ckpt`` for the current step (all ranks must call it)."""
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if stop_of(trainer) is not None and self._last_global_step_saved == trainer.global_step:
            return  # saved when the stop was acted on; no second write in the shutdown window
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any) -> None:
        # The last step is saved by on_train_end, after the final probe evaluation: a periodic save
        # here would let a job killed in between resume at max_steps with that evaluation missing.
        if not trainer.max_steps or trainer.global_step < trainer.max_steps:
            super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        # StopOnSignal (which runs before checkpoint callbacks) marked this step as the last.
        stop = stop_of(trainer)
        if stop is not None and stop.step == trainer.global_step:
            self.save_now(trainer)

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        # Written next to its final place, then renamed: a job killed mid-save leaves the previous
        # last.ckpt whole. (Lightning writes via a temporary file in /tmp and moves it, which is a
        # copy, not a rename, when the run directory is on another file system.)
        tmp = f"{filepath}.tmp"
        if trainer.is_global_zero and os.path.lexists(tmp):  # left by a job killed mid-save
            remove_path(tmp)
        trainer.strategy.barrier("last_checkpoint_clean")
        error: OSError | None = None
        try:
            trainer.save_checkpoint(tmp, self.save_weights_only)  # every rank; ends in a barrier
        except OSError as exn:
            error = exn
            trainer.strategy.barrier("Trainer.save_checkpoint")  # the one this rank did not reach
        if trainer.is_global_zero and error is None:
            try:
                replace_path(tmp, filepath)
            except OSError as exn:
                error = exn
        # Every rank learns whether the write worked, so that all stop or all go on.
        if not trainer.strategy.reduce_boolean_decision(error is None, all=True):
            if trainer.is_global_zero and os.path.lexists(tmp):
                try:
                    remove_path(tmp)
                except OSError:
                    pass
            raise CheckpointWriteError(self._write_failure(filepath, error))
        trainer.strategy.barrier("last_checkpoint_in_place")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def _write_failure(self, filepath: str, error: OSError | None) -> str:
        why = (error.strerror or str(error)) if error is not None else "failed on another rank"
        if self._last_global_step_saved > 0 and os.path.exists(filepath):
            kept = f"the previous {filepath} (step {self._last_global_step_saved}) is whole"
        elif os.path.exists(filepath):
            kept = f"the previous {filepath} is whole"
        else:
            kept = "there is no earlier checkpoint"
        return (f"could not write the checkpoint {filepath}: {why}; {kept}: free space (or fix the permissions) "
                "and continue with --ckpt_path auto")


def remove_path(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def replace_path(src: str, dst: str) -> None:
    """Puts file or folder ``src`` at ``dst``. A file replaces a file in one rename; a folder
    (sharded checkpoint) cannot be renamed over another path, so the old one is first moved aside
    to ``dst.old`` and removed once the new one is in place (``newest_checkpoint`` still finds
    ``dst.old`` if a crash falls between the two renames)."""
    old = f"{dst}.old"
    if os.path.isdir(dst) or (os.path.isdir(src) and os.path.lexists(dst)):
        if os.path.lexists(old):  # dst is whole, so an old copy is stale
            remove_path(old)
        os.replace(dst, old)
    os.replace(src, dst)
    if os.path.lexists(old):  # only once the new one is in place
        remove_path(old)


def check_same_architecture(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuses to resume a checkpoint (hyper-parameters ``saved``) into a model built as ``current``."""
    for key in ARCHITECTURE_KEYS:
        was = saved.get(key, ARCHITECTURE_DEFAULTS.get(key))
        if (key in saved or key in ARCHITECTURE_DEFAULTS) and was != current.get(key):
            what = "data.clips.frames_per_clip (model.num_frames)" if key == "num_frames" else f"model.{key}"
            raise JEPAError(
                f"the checkpoint was trained with {what}={was} but this config has "
                f"{current.get(key)}: resume with the run's own config, or use another run_dir"
            )
    # The objective decides which modules exist (an EMA target, a projector); checkpoints written
    # before objectives were pluggable are all ema.
    was = (saved.get("objective") or {"name": "ema"})["name"]
    now = (current.get("objective") or {"name": "ema"})["name"]
    if was != now:
        raise JEPAError(f"the checkpoint was trained with model.objective {was} but this config has {now}: "
                        "resume with the run's own config, or use another run_dir")


def resume_step(ckpt_path: str, hparams: dict[str, Any]) -> int:
    """The step a resume starts from, after checking that the checkpoint fits this model.

    Run before the trainer exists, so a refused resume leaves the run directory as it was
    (config.yaml, metrics.csv and summary.json are only written once fitting starts).
    """
    from ..contract import read_checkpoint

    ckpt = read_checkpoint(ckpt_path, tensors=False)
    check_same_architecture(ckpt.get("hyper_parameters", {}), hparams)
    return int(ckpt.get("global_step", 0))
