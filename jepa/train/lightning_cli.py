"""``jepa pretrain``: LightningCLI over PretrainModule and PretrainDataModule.

Every constructor argument is a config key (``model.encoder.size``, ``data.batch_size``,
``trainer.max_steps``, ``probe.every_n_steps``); unknown keys and wrong types are errors.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.cli import LightningArgumentParser

from ..data.datamodule import PretrainDataModule
from ..errors import JEPAError
from .budget import WallClockBudget, parse_budget
from .checkpointing import resume_step
from .module import PretrainModule
from .probe_eval import ProbeEvaluation
from .run_cli import RunCLI
from .strategies import STRATEGY_NAME  # noqa: F401  (registers --trainer.strategy jepa_fsdp)

# trainer.max_steps of a --budget run until the budget fixes it.
PROVISIONAL_MAX_STEPS = 100_000


def _num_classes(data: PretrainDataModule) -> int | None:
    return data.num_classes


def _num_frames(data: PretrainDataModule) -> int:
    return data.num_frames


def _clip_sampling(data: PretrainDataModule) -> dict[str, Any] | None:
    return dataclasses.asdict(data.clips) if data.modality == "video" else None


class PretrainCLI(RunCLI):
    """``jepa pretrain``: the run folder of RunCLI, with a wall-clock budget and probe evaluation."""

    command = "pretrain"
    default_run_dir = "runs/default"

    def __init__(self, args: list[str] | None = None) -> None:
        super().__init__(PretrainModule, PretrainDataModule, args=args)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_argument("--budget", type=str | None, default=None,
                            help="wall-clock budget of the whole run (15m, 90s, 1h30m; a number is minutes): the run "
                            "times its first steps and fixes trainer.max_steps to fit, writing it to config.yaml")
        parser.add_lightning_class_args(ProbeEvaluation, "probe")
        parser.link_arguments("data.image_size", "model.image_size")
        parser.link_arguments("model.encoder.patch_size", "data.patch_size")
        parser.link_arguments("model.encoder.tubelet_size", "data.tubelet_size")
        parser.link_arguments("data", "model.num_frames", compute_fn=_num_frames, apply_on="instantiate")
        parser.link_arguments("data", "model.clip_sampling", compute_fn=_clip_sampling, apply_on="instantiate")
        parser.link_arguments("data", "model.num_classes", compute_fn=_num_classes, apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()
        self.resolve_resume()
        max_steps = self.config["trainer"].get("max_steps")
        self.budget_s = parse_budget(self.config["budget"]) if self.config.get("budget") is not None else None
        if self.budget_s is not None:
            # The budget decides max_steps; only the first timed steps see this provisional total
            # (see jepa.train.budget), whatever the config says.
            self.config["trainer"]["max_steps"] = PROVISIONAL_MAX_STEPS
        elif max_steps is None or max_steps <= 0:
            raise JEPAError("set trainer.max_steps (> 0), or give the run a --budget: the lr, weight-decay and EMA "
                            "schedules are derived from it")

    def instantiate_trainer(self, **kwargs: Any):  # type: ignore[override]
        cfg = self.config_init
        run_dir = str(cfg["run_dir"])
        # Checked before the trainer exists: a refused resume leaves the run directory untouched.
        start = resume_step(self.resume_from, dict(self.model.hparams)) if self.resume_from else None
        budget = [WallClockBudget(self.budget_s, str(Path(run_dir) / "config.yaml"))] if self.budget_s is not None else []
        trainer_cfg = self.run_trainer_config(start, budget)
        if trainer_cfg.get("precision") is None:
            # bf16 autocast where the hardware has it, exact fp32 on CPU.
            trainer_cfg["precision"] = "bf16-mixed" if torch.cuda.is_available() else "32-true"
        return self.instantiate_run_trainer(trainer_cfg, **kwargs)
