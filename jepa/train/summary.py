"""``summary.json``: what ran, how long, on what, what was skipped, and the headline figures."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

from .graceful_stop import sigterm_step
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


def write_json_atomic(path: str | Path, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)


class RunSummary(pl.Callback):
    """Writes ``<run_dir>/summary.json`` when fitting ends (or fails), on global rank 0."""

    def __init__(self, run_dir: str, batch_size: int) -> None:
        self.run_dir = run_dir
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
        return {"count": int(total.item()), "examples": list(getattr(module, "skipped_examples", []))}

    def summary(self, trainer: pl.Trainer, module: pl.LightningModule, status: str) -> dict[str, Any]:
        losses = list(getattr(module, "recent_losses", []))
        final_loss = torch.stack(losses).mean().item() if losses else None
        probe = next((cb for cb in trainer.callbacks if isinstance(cb, ProbeEvaluation)), None)
        steps = trainer.global_step
        samples_per_step = self.batch_size * trainer.world_size * trainer.accumulate_grad_batches
        return {
            "status": status,
            "command": " ".join(["jepa", *sys.argv[1:]]) if sys.argv else "",
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
            "probe": probe.summary() if probe is not None else {"skipped": "no probe evaluation callback"},
        }

    def on_fit_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        stopped = sigterm_step(module)
        data = self.summary(trainer, module, "finished" if stopped is None else f"stopped by SIGTERM at step {stopped}")
        if trainer.is_global_zero:
            write_json_atomic(self.path, data)

    def on_exception(self, trainer: pl.Trainer, module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.is_global_zero:
            try:
                status = (f"stopped by SIGTERM at step {trainer.global_step}" if isinstance(exception, SIGTERMException)
                          else f"failed: {type(exception).__name__}: {exception}")
                data = self.summary(trainer, module, status)
                data["skipped_inputs"] = {"count": getattr(module, "skipped_count", 0)}
                write_json_atomic(self.path, data)
            except Exception:  # a summary must never hide the real error
                pass
