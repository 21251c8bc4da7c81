"""``summary.json``: what ran, how long, on what, what was skipped, and the headline figures."""

from __future__ import annotations

import hashlib
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from ..atomic import write_json_atomic
from ..stopping import RunAborted
from .budget import WallClockBudget
from .checkpointing import CheckpointWriteError
from .graceful_stop import StopOnSignal, continue_command, stop_of
from .probe_eval import ProbeEvaluation


def versions() -> dict[str, str]:
    import timm

    from .. import __version__

    return {"jepa": __version__, "torch": torch.__version__, "pytorch_lightning": pl.__version__,
            "timm": timm.__version__, "python": platform.python_version()}


def device_description(trainer: pl.Trainer) -> str:
    root = trainer.strategy.root_device
    if root.type == "cuda":
        name = torch.cuda.get_device_name(root)
    else:
        name = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    return f"{trainer.num_nodes} node(s) x {trainer.num_devices} {root.type} ({name})"


def file_sha256(path: str | Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


class RunSummary(pl.Callback):
    """Writes ``<run_dir>/summary.json`` when fitting ends (or fails), on global rank 0."""

    def __init__(self, run_dir: str, batch_size: int, argv: list[str] | None = None) -> None:
        self.run_dir = run_dir
        self.argv = list(sys.argv[1:] if argv is None else argv)  # the command is jepa *argv
        self.batch_size = batch_size
        self.t0 = time.perf_counter()
        self.start_step = 0
        self.path = Path(run_dir) / "summary.json"

    def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.t0 = time.perf_counter()
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.start_step = trainer.global_step

    def _skipped(self, trainer: pl.Trainer, module: pl.LightningModule) -> dict[str, Any]:
        count = torch.tensor(float(getattr(module, "skipped_count", 0)), device=module.device)
        total = trainer.strategy.reduce(count, reduce_op="sum")
        return {"count": int(total.item()),
                # Distinct inputs (this rank's): a file that fails is met again every epoch.
                "files": len(getattr(module, "skipped_files", ())),
                "examples": list(getattr(module, "skipped_examples", []))}

    def summary(self, trainer: pl.Trainer, module: pl.LightningModule, status: str) -> dict[str, Any]:
        losses = list(getattr(module, "recent_losses", []))
        final_loss = torch.stack(losses).mean().item() if losses else None
        probe = next((cb for cb in trainer.callbacks if isinstance(cb, ProbeEvaluation)), None)
        budget = next((cb for cb in trainer.callbacks if isinstance(cb, WallClockBudget)), None)
        steps = trainer.global_step
        samples_per_step = self.batch_size * trainer.world_size * trainer.accumulate_grad_batches
        return {
            "status": status,
            "command": shlex.join(["jepa", *self.argv]),
            "config_hash": file_sha256(Path(self.run_dir) / "config.yaml"),
            "versions": versions(),
            "device": device_description(trainer),
            "world_size": trainer.world_size,
            "precision": str(trainer.precision),
            "started_at": getattr(self, "started_at", None),
            "wall_time_s": round(time.perf_counter() - self.t0, 2),
            "steps": steps,
            "steps_this_run": steps - self.start_step,
            "samples": steps * samples_per_step,
            "epochs": trainer.current_epoch,
            "final_loss": final_loss,
            "skipped_inputs": self._skipped(trainer, module),
            **({"short_videos": {"count": len(module.short_videos), "examples": sorted(module.short_videos)[:20]}}
               if getattr(module, "short_videos", None) else {}),
            "probe": probe.summary() if probe is not None else {"skipped": "no probe evaluation callback"},
            **({"budget": budget.summary()} if budget is not None else {}),
        }

    def on_fit_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        stop = stop_of(trainer)
        data = self.summary(trainer, module, "finished" if stop is None else stop.status())
        if stop is not None:
            data["stop"] = {"signal": stop.signal, "step": stop.step, "exit_code": stop.exit_code,
                            "requeued": stop.requeued,
                            "checkpoint": str(Path(self.run_dir) / "checkpoints" / "last.ckpt")}
            data["continue_with"] = continue_command(self.argv)
        if trainer.is_global_zero:
            write_json_atomic(self.path, data)

    def on_exception(self, trainer: pl.Trainer, module: pl.LightningModule, exception: BaseException) -> None:
        if not trainer.is_global_zero:
            return
        try:
            data = self.summary(trainer, module, failure_status(trainer, exception, self.run_dir))
            data["skipped_inputs"] = {"count": getattr(module, "skipped_count", 0)}
            data["continue_with"] = continue_command(self.argv)
            write_json_atomic(self.path, data)
        except Exception:  # a summary must never hide the real error (or a full disk)
            pass


def failure_status(trainer: pl.Trainer, exception: BaseException, run_dir: str) -> str:
    """The ``status`` of a run that ended in ``exception``: what happened, at which step, and which
    checkpoint a resume starts from."""
    step = trainer.global_step
    if isinstance(exception, RunAborted):
        return f"aborted by a second Ctrl-C at step {step}; {last_checkpoint_note(run_dir)}"
    if isinstance(exception, CheckpointWriteError):
        return f"failed at step {step}: {exception}"  # it says which checkpoint is whole
    saved = next((cb.saved_after_failure for cb in trainer.callbacks if isinstance(cb, StopOnSignal)), None)
    where = (f"{Path(run_dir) / 'checkpoints' / 'last.ckpt'} holds step {saved}" if saved is not None
             else last_checkpoint_note(run_dir))
    return f"failed at step {step}: {exception}; {where}"


def last_checkpoint_note(run_dir: str) -> str:
    path = Path(run_dir) / "checkpoints" / "last.ckpt"
    return f"the last checkpoint is {path}" if path.exists() else "no checkpoint was written"
