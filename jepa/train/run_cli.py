"""The LightningCLI of every command that trains in a run folder (``jepa pretrain``, ``jepa world``).

What they share: the run-folder keys (``run_dir``, ``ckpt_path``, ``checkpoint_every_n_steps``,
``report``), refusing a folder that already holds a run, one-line configuration errors that name
the closest key, the CSV logger that always writes ``metrics.csv`` with any logger the user adds
beside it, progress that suits the output (a bar on a terminal, a line every few percent in a
file), and the callbacks that checkpoint, stop on signals and write ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import typing
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import Logger

from ..errors import JEPAError
from ..progress import is_terminal
from ..runlock import take_folder
from ..stopping import RunAborted
from .checkpointing import LastCheckpoint
from .commands import RUN_DIR_PLACEHOLDER
from .config_errors import config_error_line, missing_package_line
from .graceful_stop import StopOnSignal
from .line_progress import LineProgressBar
from .metrics_log import RunCSVLogger
from .summary import RunSummary


def _dataclass_fields(hint: Any) -> list[str]:
    """The fields of the dataclass(es) in a type hint such as ``Config | None``."""
    found = [f.name for f in dataclasses.fields(hint)] if dataclasses.is_dataclass(hint) else []
    for arg in typing.get_args(hint):
        found += _dataclass_fields(arg)
    return found


def config_keys(parser: LightningArgumentParser) -> list[str]:
    """Every key a parser accepts (``trainer.max_steps``, ``model.encoder.size``, and the fields of
    optional settings such as ``data.masks.context_scale``)."""
    keys = {a.dest for a in parser._actions if a.dest and not a.dest.endswith(".help") and a.dest != "help"}
    for action in parser._actions:
        keys |= {f"{action.dest}.{name}" for name in _dataclass_fields(getattr(action, "_typehint", None))}
    try:
        keys |= set(parser.get_defaults().keys())
    except Exception:  # defaults that cannot be built say nothing about which keys exist
        pass
    return sorted(keys)


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


class RunCLI(LightningCLI):
    """LightningCLI with a run folder; subclasses name their command and default folder."""

    command = "pretrain"
    default_run_dir = "runs/default"

    def __init__(self, model_class: type, datamodule_class: type, args: list[str] | None = None) -> None:
        # As given (after the spelling is normalised; without the logger folder filled in for the user):
        # summary.json repeats it, and how to continue.
        given = list(args or [])
        if RUN_DIR_PLACEHOLDER in given:
            at = given.index(RUN_DIR_PLACEHOLDER)
            given = given[: at - 1] + given[at + 1:]
        self.jepa_argv = [self.command, *given]
        super().__init__(
            model_class, datamodule_class, args=args, run=False, seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            # allow_abbrev off: a prefix of a key (--trainer.max_step) is an unknown key, not that key.
            parser_kwargs={"exit_on_error": False, "prog": f"jepa {self.command}", "default_env": False,
                           "allow_abbrev": False},
            # The modules configure their own optimizers: no --optimizer / --lr_scheduler groups.
            auto_configure_optimizers=False,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_dir", type=str, default=self.default_run_dir,
                            help="the run folder: config.yaml, checkpoints/, metrics.csv, summary.json (--out too)")
        parser.add_argument("--ckpt_path", type=str | None, default=None,
                            help="resume: 'last' (<run_dir>/checkpoints/last.ckpt), 'auto' (the newest checkpoint in "
                            "run_dir if any, else a fresh start: what cluster jobs use) or a path")
        parser.add_argument("--checkpoint_every_n_steps", type=int, default=500,
                            help="period of checkpoints/last.ckpt, in optimizer steps")
        parser.add_argument("--lock_wait", type=float, default=0.0,
                            help="seconds to wait for another live process that holds run_dir (a requeued job whose "
                            "previous copy is still saving) before refusing; 0 refuses at once")
        parser.add_argument("--report", type=bool, default=True,
                            help="write report.png (the curves of jepa report) into the run folder at the end")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        try:
            super().parse_arguments(parser, args)
        except (JEPAError, SystemExit, KeyboardInterrupt, RunAborted):
            raise
        except Exception as exn:
            raise JEPAError(config_error_line(str(exn), f"jepa {self.command}", config_keys(parser))) from None

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (JEPAError, SystemExit, KeyboardInterrupt, RunAborted):
            raise
        except ModuleNotFoundError as exn:
            # A logger is blamed only when its own package is the one missing.
            line = missing_package_line(f"{exn} {self.config.get('trainer', {}).get('logger')}") \
                if exn.name in ("tensorboard", "tensorboardX", "wandb", "mlflow", "comet_ml", "neptune", None) else None
            raise JEPAError(line or f"a package is missing: {str(exn).splitlines()[0]}") from None

    def before_instantiate_classes(self) -> None:
        # A logger the user names writes beside the run by default.
        loggers = self.config["trainer"].get("logger")
        for item in loggers if isinstance(loggers, list) else [loggers]:
            init = item.get("init_args") if hasattr(item, "get") else None
            if init is not None and init.get("save_dir") in (None, RUN_DIR_PLACEHOLDER):
                init["save_dir"] = str(self.config["run_dir"])

    def resolve_resume(self) -> None:
        """Sets ``resume_from`` (checked before anything is built, so a wrong path costs nothing) and
        refuses a folder that another live process writes (jepa.runlock), and to reuse a run folder
        silently: a fresh start, or a resume from another run's
        checkpoint, into a folder that already holds a run."""
        run_dir = str(self.config["run_dir"])
        # The folder is this run's before anything is read or written, so that two runs started
        # together cannot both pass the checks below (released by folders_released_after).
        take_folder(run_dir, f"jepa {self.command}", wait_s=float(self.config.get("lock_wait") or 0.0),
                    hint="give another --run_dir")
        ckpt_path = self.config["ckpt_path"]
        self.resume_from = resolve_ckpt(ckpt_path, run_dir)
        own = self.resume_from is not None and Path(run_dir).resolve() in Path(self.resume_from).resolve().parents
        existing = checkpoints_in(run_dir) if ckpt_path is None or (ckpt_path not in ("last", "auto") and not own) \
            else []
        if existing:
            start = "" if ckpt_path is None else f"--ckpt_path {ckpt_path} is another run's checkpoint and "
            raise JEPAError(f"{start}{run_dir} already holds a run ({existing[0]}): resume it with --ckpt_path auto, "
                            "or give another --out (delete the folder to start that run over)")

    def run_trainer_config(self, resume_step: int | None, callbacks: list[Any]) -> dict[str, Any]:
        """The Trainer's arguments with what every run folder needs: ``metrics.csv`` (kept whatever
        else logs), checkpoints, signal handling, ``summary.json`` and progress that suits the output."""
        cfg = self.config_init
        run_dir = str(cfg["run_dir"])
        os.makedirs(run_dir, exist_ok=True)
        trainer_cfg = dict(cfg["trainer"])
        user = trainer_cfg.get("logger")
        user = [user] if isinstance(user, Logger) else [lg for lg in user if isinstance(lg, Logger)] \
            if isinstance(user, list) else []
        # The CSV logger comes first: metrics.csv is what resume, summary.json and jepa report read.
        trainer_cfg["logger"] = [RunCSVLogger(run_dir, resume_step=resume_step), *user]
        trainer_cfg["default_root_dir"] = run_dir
        # The data modules shard the data across ranks themselves (and resume mid-epoch).
        trainer_cfg["use_distributed_sampler"] = False
        chosen = list(trainer_cfg.get("callbacks") or [])
        # Lightning's bar writes to standard output: where that is a file, one line every few percent.
        if trainer_cfg.get("enable_progress_bar", True) is not False and not is_terminal(sys.stdout) \
                and not any(isinstance(c, ProgressBar) for c in chosen):
            chosen.append(LineProgressBar())
        trainer_cfg["callbacks"] = [*chosen, StopOnSignal(), LastCheckpoint(run_dir, cfg["checkpoint_every_n_steps"]),
                                    RunSummary(run_dir, batch_size=self.datamodule.batch_size, argv=self.jepa_argv),
                                    *callbacks]
        return trainer_cfg

    def instantiate_run_trainer(self, trainer_cfg: dict[str, Any], **kwargs: Any):
        extra = [self._get(self.config_init, c) for c in self._parser(self.subcommand).callback_keys]
        return self._instantiate_trainer({**trainer_cfg, **kwargs}, extra)
