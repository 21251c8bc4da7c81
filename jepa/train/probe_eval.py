"""Probe evaluation during pretraining: a linear probe fitted on frozen features, scored on held-out data.

At step 0 the encoder has random weights, so the first evaluation is the baseline that the
pretrained encoder must beat. The online probe (trained alongside) is scored on the same features.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ..eval.linear import holdout_linear_probe
from ..metrics import rankme
from .graceful_stop import stop_of

log = logging.getLogger("jepa")


def no_labels_reason(trainer: pl.Trainer) -> str:
    """Why the run has no classes: shards name theirs in a classes.txt, which is easy to forget."""
    data = getattr(getattr(trainer, "datamodule", None), "train_data", None)
    if data is not None and data.is_stream:
        return ("the training shards name no classes: put a classes.txt (one class name per line, in label "
                "order) beside them for the probe")
    return "the training data has no labels"


# What usually makes each objective's features collapse (the warning names it).
COLLAPSE_CAUSES = {
    "ema": "the EMA target drifts towards what is easy to predict (a momentum too low or a learning rate too "
           "high for the data; I-JEPA at small budgets)",
    "sigreg": "SIGReg acts on a projection of pooled tokens, not on what the prediction uses: the projector "
              "alone can satisfy it (try model.objective lejepa with data.views, or regularize: tokens)",
    "vicreg": "with regularize: pooled the variance and covariance terms act on a projection of pooled tokens, "
              "which the projector alone can satisfy (use regularize: tokens); on tokens, too few positions or "
              "too weak a variance term for the data (model.objective.positions, variance)",
    "lejepa": "SIGReg's weight is too small for the data (model.objective.weight) or the views are too alike to "
              "teach anything (data.views)",
}


class ProbeEvaluation(pl.Callback):
    """Fits a linear probe on average-pooled target-encoder features at step 0, every
    ``every_n_steps`` and at the end; logs ``probe/linear_acc``, ``probe/online_acc``, ``probe/rankme``.

    Collapse is reported, not left to be discovered: when the held-out RankMe of a trained encoder
    (past step 0) is below a tenth of min(width, held-out samples) for ``collapse_after``
    evaluations in a row, the run warns once, in one line.

    Args:
        every_n_steps: evaluation period in optimizer steps (0: only at the start and the end).
        epochs: epochs of the probe's training on the cached features.
        enabled: turn probe evaluation off.
        collapse_after: evaluations in a row below the RankMe floor before the warning (0: never warn).
    """

    def __init__(self, every_n_steps: int = 0, epochs: int = 50, enabled: bool = True, collapse_after: int = 1) -> None:
        self.every_n_steps = every_n_steps
        self.epochs = epochs
        self.enabled = enabled
        self.collapse_after = collapse_after
        self._warned = False
        self.history: list[dict[str, float]] = []
        self.skipped_reason: str | None = None
        self._loaders: tuple[DataLoader, DataLoader] | None = None
        self._cache: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    # Results survive a resume: the step-0 baseline is not recomputed on trained weights.
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))

    def _batches(self, name: str, loader: DataLoader) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # Small probe sets are decoded once and kept; large ones are re-read each time.
        if name in self._cache:
            return self._cache[name]
        batches = []
        for x, y, skipped in loader:
            for reason in skipped:
                log.warning("probe evaluation skipped an input that failed to load: %s", reason)
            if x is not None:
                batches.append((x, y))
        if sum(x.numel() for x, _ in batches) * 4 < 512 * 2**20:
            self._cache[name] = batches
        return batches

    @torch.no_grad()
    def _features(self, module: pl.LightningModule, name: str, loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
        feats, labels = [], []
        autocast = torch.autocast(module.device.type, dtype=torch.bfloat16, enabled=module.device.type == "cuda")
        for x, y in self._batches(name, loader):
            with autocast:
                feats.append(module.pooled_features(x.to(module.device, non_blocking=True)).float())
            labels.append(y.to(module.device))
        return torch.cat(feats), torch.cat(labels)

    @staticmethod
    def _full_params(trainer: pl.Trainer) -> contextlib.AbstractContextManager:
        # Under FSDP the root unit's parameters (patch embedding, final norm) are sharded outside
        # the training forward: gather them for the evaluation forward passes.
        from pytorch_lightning.strategies import FSDPStrategy

        if isinstance(trainer.strategy, FSDPStrategy):
            from torch.distributed.fsdp import FullyShardedDataParallel

            return FullyShardedDataParallel.summon_full_params(trainer.strategy.model, writeback=False)
        return contextlib.nullcontext()

    def evaluate(self, trainer: pl.Trainer, module: pl.LightningModule) -> dict[str, float] | None:
        if not self.enabled or module.probe is None:
            self.skipped_reason = no_labels_reason(trainer) if self.enabled else "disabled"
            return None
        if self._loaders is None:
            self._loaders = trainer.datamodule.probe_dataloaders()
            if self._loaders is None:
                self.skipped_reason = "no held-out labelled data (set data.val)"
                return None
        t0 = time.perf_counter()
        was_training = module.training
        module.eval()
        with self._full_params(trainer):
            fit_x, fit_y = self._features(module, "fit", self._loaders[0])
            val_x, val_y = self._features(module, "val", self._loaders[1])
            online_acc = (module.probe(val_x).argmax(-1) == val_y).float().mean().item()
        num_classes = module.probe[-1].out_features
        with torch.inference_mode(False), torch.enable_grad():
            result = holdout_linear_probe(fit_x, fit_y, val_x, val_y, num_classes, epochs=self.epochs)
        module.train(was_training)
        record = {
            "step": trainer.global_step,
            "linear_acc": result.val_acc,
            "online_acc": online_acc,
            "rankme": rankme(val_x).item(),
            # The most RankMe can be: the features' width or the number of held-out samples.
            "rankme_max": min(val_x.shape[1], val_x.shape[0]),
            "seconds": time.perf_counter() - t0,
        }
        self.history.append(record)
        self._check_collapse(record, module, trainer.is_global_zero)
        if trainer.is_global_zero:
            # Straight to the loggers: Lightning refuses self.log() in on_train_start/on_train_end.
            metrics = {f"probe/{k}": float(v) for k, v in record.items() if k not in ("step", "seconds", "rankme_max")}
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
            log.info("probe at step %d: linear %.1f%%, online %.1f%% (held-out)",
                     record["step"], 100 * result.val_acc, 100 * online_acc)
        return record

    def _check_collapse(self, record: dict[str, float], module: pl.LightningModule, report: bool) -> None:
        low = 0  # trained evaluations in a row below the floor, counted from the history (it survives a resume)
        for past in reversed(self.history):
            if past["step"] == 0 or past["rankme"] >= 0.1 * past.get("rankme_max", record["rankme_max"]):
                break  # step 0 has random weights: the baseline, not a collapse
            low += 1
        if self._warned or not self.collapse_after or low < self.collapse_after:
            return
        self._warned = True
        if report:
            objective = getattr(getattr(module, "objective", None), "name", "")
            cause = COLLAPSE_CAUSES.get(objective, "the objective lets the encoder's features concentrate in a few "
                                                   "directions")
            first = self.history[0]
            start = f" (step 0: {first['rankme']:.1f})" if first["step"] == 0 else ""
            print(f"warning: the encoder's features are collapsing: held-out RankMe {record['rankme']:.1f} of "
                  f"{record['rankme_max']}{start} at step {record['step']}, below a tenth for {low} "
                  f"evaluation(s) in a row; likely cause: {cause}", file=sys.stderr, flush=True)

    def _last_step(self) -> int | None:
        return self.history[-1]["step"] if self.history else None

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.global_step == 0 and self._last_step() is None:
            self.evaluate(trainer, module)

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if stop_of(trainer) is not None:
            return  # stopping: the time left goes to the checkpoint
        if self.every_n_steps and step % self.every_n_steps == 0 and step != self._last_step():
            if step < (trainer.max_steps or 0):
                self.evaluate(trainer, module)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.global_step != self._last_step() and stop_of(trainer) is None:
            self.evaluate(trainer, module)

    def summary(self) -> dict[str, Any]:
        if not self.enabled:
            return {"skipped": "disabled"}
        if not self.history:
            return {"skipped": self.skipped_reason or "not run"}
        first, last = self.history[0], self.history[-1]
        return {
            "step0_linear_acc": first["linear_acc"] if first["step"] == 0 else None,
            "final_linear_acc": last["linear_acc"],
            "final_online_acc": last["online_acc"],
            "step0_rankme": first["rankme"] if first["step"] == 0 else None,
            "final_rankme": last["rankme"],
            "rankme_max": last.get("rankme_max"),
            "final_step": last["step"],
            "history": self.history,
        }
