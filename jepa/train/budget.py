"""A run given minutes instead of steps: ``jepa pretrain --budget 15m``.

Every schedule (learning rate, weight decay, EMA momentum) is counted in optimizer steps, so a
budget in wall-clock time is turned into a number of steps once, early, and then fixed: the run
times its first steps, fixes ``max_steps`` so that everything (start-up, the step-0 probe, the
steps, periodic probes and checkpoints, the final probe and checkpoint) fits the budget, writes
that ``max_steps`` into the run's ``config.yaml`` and into its checkpoints. A resumed run takes it
from the checkpoint instead of timing again, so the schedules and the resume stay exact.

The timed steps run with a fixed provisional total (the config's ``trainer.max_steps`` is
replaced; only the weight-decay and EMA schedules depend on the total that early, and only
slightly), so a resume from any checkpoint written after ``max_steps`` was fixed is exact whatever
the timing.
"""

from __future__ import annotations

import io
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml

from ..atomic import write_text_atomic
from ..errors import JEPAError
from .probe_eval import ProbeEvaluation

log = logging.getLogger("jepa")

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_budget(text: str) -> float:
    """Seconds in ``15m``, ``90s``, ``1h30m`` or a plain number of minutes; refuses anything else."""
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s) * 60
    parts = re.findall(r"(\d+(?:\.\d+)?)([smh])", s)
    if not parts or "".join(n + u for n, u in parts) != s:
        raise JEPAError(f"--budget {text!r} is not a duration: write e.g. 15m, 90s, 1h30m (a bare number is minutes)")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise JEPAError(f"--budget must be positive, got {text!r}")
    return seconds


def process_age() -> float:
    """Seconds since this process started (Linux); 0 where that cannot be read."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start)
    except (OSError, ValueError, IndexError):
        return 0.0


class WallClockBudget(pl.Callback):
    """Fixes ``trainer.max_steps`` from a wall-clock budget after timing the first steps.

    Args:
        seconds: the budget for the whole run, counted from the start of the process.
        config_path: the run's ``config.yaml``, where the fixed ``trainer.max_steps`` is written.
        calibration_steps: steps timed before ``max_steps`` is fixed (the first one is not counted);
            more while they add up to less than 5% of the budget (60 s at most), up to
            ``max_calibration_steps``. The step time is the mean of the later half of them: steps
            speed up over the first few dozen (measured: LeJEPA's CIFAR-10 step on a 2-core CPU,
            1.04 s over steps 1-12, 0.94 over 12-40, 0.85 after), and timing the first dozen alone
            left a sixth of a 15-minute budget unused.
        max_calibration_steps: fix ``max_steps`` after this many timed steps whatever they add up to.
        margin: fraction of the budget kept free for what timing cannot foresee.
    """

    def __init__(self, seconds: float, config_path: str, calibration_steps: int = 12, margin: float = 0.05,
                 started: float | None = None, max_calibration_steps: int = 100) -> None:
        self.seconds = seconds
        self.config_path = config_path
        self.calibration_steps = max(3, calibration_steps)
        self.max_calibration_steps = max(self.calibration_steps, max_calibration_steps)
        self.margin = margin
        # time.monotonic() at the start of the process
        self.started = started if started is not None else time.monotonic() - process_age()
        self.max_steps: int | None = None  # fixed (or restored from a checkpoint)
        self.estimate: dict[str, float] = {}
        self._marks: list[float] = []

    # The fixed max_steps travels in every checkpoint: a resumed run does not time again.
    def state_dict(self) -> dict[str, Any]:
        return {"max_steps": self.max_steps, "estimate": self.estimate}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.max_steps = state_dict.get("max_steps")
        self.estimate = dict(state_dict.get("estimate") or {})

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.max_steps is not None:  # restored: before the loop checks whether it is done
            self._set(trainer, self.max_steps)
            if trainer.is_global_zero:
                self._record(self.max_steps)  # config.yaml was just rewritten from the command line

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: Any) -> None:
        if self.max_steps is not None:
            self._guard(trainer)
            return
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)  # time the GPU's work, not how fast it was queued
        self._marks.append(time.monotonic())
        # At least calibration_steps steps and up to a minute of them: the first steps of a
        # compiled model recompile for new shapes, every step speeds up over the first few dozen
        # (allocator and caches warming), and short steps time noisily.
        timed = self._marks[-1] - self._marks[1] if len(self._marks) > 1 else 0.0
        if len(self._marks) > self.calibration_steps and (timed >= min(60.0, 0.05 * self.seconds)
                                                          or len(self._marks) > self.max_calibration_steps):
            self._fix(trainer, module)

    def _set(self, trainer: pl.Trainer, steps: int) -> None:
        trainer.fit_loop.epoch_loop.max_steps = steps

    def _checkpoint_seconds(self, module: pl.LightningModule) -> float:
        t0 = time.perf_counter()
        torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, io.BytesIO())
        # The optimizer state (AdamW: two moments) doubles what is written; the disk adds its share.
        return 3 * (time.perf_counter() - t0) + 0.5

    def _fix(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        steps_done = trainer.global_step
        # The later half of the timed steps: the first ones carry one-off costs (workers starting,
        # caches) and the warm-up of every step after them.
        marks = self._marks[len(self._marks) // 2:] if len(self._marks) > 4 else self._marks[1:]
        step_s = (marks[-1] - marks[0]) / max(1, len(marks) - 1)
        probe = next((cb for cb in trainer.callbacks if isinstance(cb, ProbeEvaluation)), None)
        probe_s = probe.history[0]["seconds"] if probe is not None and probe.history else 0.0
        probe_every = probe.every_n_steps if probe is not None and probe.enabled else 0
        ckpt_s = self._checkpoint_seconds(module)
        ckpt_every = getattr(trainer.checkpoint_callback, "_every_n_train_steps", 0) or 0
        # Per step: the step itself, plus its share of periodic probes and checkpoints.
        per_step = step_s + (probe_s / probe_every if probe_every else 0.0) + (ckpt_s / ckpt_every if ckpt_every else 0.0)
        left = self.seconds * (1 - self.margin) - self.elapsed() - probe_s - ckpt_s - 2.0
        total = steps_done + max(0, int(left / per_step))
        self.max_steps = max(total, steps_done + 1)
        self.estimate = {"step_s": round(step_s, 4), "probe_s": round(probe_s, 2), "checkpoint_s": round(ckpt_s, 2),
                         "elapsed_at_fix_s": round(self.elapsed(), 2), "budget_s": self.seconds}
        self._set(trainer, self.max_steps)
        if trainer.is_global_zero:
            self._record(self.max_steps)
            log.info("budget %.0f s: %.3f s a step, max_steps fixed at %d", self.seconds, step_s, self.max_steps)

    def _guard(self, trainer: pl.Trainer) -> None:
        # A safety net for a machine that slowed down after timing: stop at a step boundary while
        # the final probe and checkpoint still fit (the schedules then end early).
        # Stop when one more step would not leave room for the final probe and checkpoint.
        final = self.estimate.get("probe_s", 0.0) + self.estimate.get("checkpoint_s", 0.0) + 2.0
        next_step = self.estimate.get("step_s", 0.0)
        if trainer.global_step < (trainer.max_steps or 0) and self.elapsed() + next_step + final > self.seconds:
            log.warning("budget: stopping at step %d of %d to stay within %.0f s", trainer.global_step,
                        trainer.max_steps, self.seconds)
            self.max_steps = trainer.global_step
            self._set(trainer, trainer.global_step)

    def _record(self, steps: int) -> None:
        path = Path(self.config_path)
        if not path.is_file():
            return
        config = yaml.safe_load(path.read_text()) or {}
        config.setdefault("trainer", {})["max_steps"] = steps
        write_text_atomic(path, yaml.safe_dump(config, sort_keys=False))

    def summary(self) -> dict[str, Any]:
        return {"budget_s": self.seconds, "max_steps": self.max_steps, **self.estimate,
                "elapsed_at_end_s": round(self.elapsed(), 2)}
