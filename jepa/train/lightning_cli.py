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


def _readable(path: Path) -> bool:
    from ..contract import read_checkpoint

    try:
        read_checkpoint(path, tensors=False)
        return True
    except JEPAError:
        return False


def checkpoints_in(run_dir: str) -> list[Path]:
    """Checkpoints in a run directory, newest first: ``hpc_ckpt_*.ckpt`` (written on SLURM
    preemption by Lightning's handler in earlier versions of jepa), ``checkpoints/last.ckpt``, and
    ``last.ckpt.old`` (left if a job died while swapping a sharded checkpoint into place)."""
    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    candidates = [*Path(run_dir).glob("hpc_ckpt_*.ckpt"), last, Path(f"{last}.old")]
    return sorted((p for p in candidates if p.exists()), key=lambda p: p.stat().st_mtime, reverse=True)


def newest_checkpoint(run_dir: str) -> Path | None:
    """The newest readable checkpoint of ``run_dir`` (a file cut short by a kill is passed over),
    or None when there is none at all; refuses a run directory whose checkpoints are all unreadable
    rather than starting that run over."""
    existing = checkpoints_in(run_dir)
    newest = next((p for p in existing if _readable(p)), None)
    if existing and newest is None:
        raise JEPAError(f"no readable checkpoint in {run_dir} ({', '.join(map(str, existing))}): "
                        "check the files, or give another --run_dir")
    return newest


def resolve_ckpt(ckpt_path: str | None, run_dir: str) -> str | None:
    """The checkpoint to resume from: ``last`` is ``<run_dir>/checkpoints/last.ckpt``; ``auto`` is the
    newest checkpoint in the run directory if there is one (what requeued cluster jobs use)."""
    if ckpt_path is None:
        return None
    if ckpt_path == "auto":
        newest = newest_checkpoint(run_dir)
        return str(newest) if newest is not None else None
    path = Path(run_dir) / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.exists():  # a file, or a folder for sharded (FSDP) checkpoints
        raise JEPAError(f"checkpoint {path} does not exist")
    return str(path)


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
        # Check the resume checkpoint before anything is built, so a wrong path costs nothing.
        run_dir = str(self.config["run_dir"])
        self.resume_from = resolve_ckpt(self.config["ckpt_path"], run_dir)
        ckpt_path = self.config["ckpt_path"]
        own = self.resume_from is not None and Path(run_dir).resolve() in Path(self.resume_from).resolve().parents
        check = ckpt_path is None or (ckpt_path not in ("last", "auto") and not own)
        self.refuse_existing_run(checkpoints_in(run_dir) if check else [], ckpt_path)
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
