"""``jepa world --config FILE``: trains a world model on a frozen encoder's representations, with
the run machinery of pretraining (run folder, ``last.ckpt`` written atomically, ``--ckpt_path
auto`` resume, SIGTERM handling, ``metrics.csv``, ``summary.json``), then writes ``<run_dir>/world``."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.cli import LightningArgumentParser

from ..atomic import write_json_atomic
from ..errors import JEPAError
from ..runlock import folders_released_after
from ..stopping import RunAborted, exit_code, stop_signals
from ..train.checkpointing import CheckpointWriteError
from ..train.config_errors import config_error_line
from ..train.graceful_stop import continue_command, stop_of
from ..train.run import quiet_lightning, write_run_report
from ..train.run_cli import RunCLI
from ..train.summary import failure_status
from .latent_eval import open_loop_errors
from .mlp_probe import MLPPositionProbe
from .world_data import EncodedEpisodes, WorldDataModule
from .world_export import export_world_model, save_position_probe
from .world_module import WorldModelModule

# What must match for a checkpoint to resume into the model a config builds.
ARCH_KEYS = ("predictor", "rep_dim", "action_dim", "grid", "blur", "encoder_id")


class WorldCLI(RunCLI):
    """``jepa world``: the run folder of RunCLI over the world model and its episode data."""

    command = "world"
    default_run_dir = "runs/world"
    module_class: type = WorldModelModule
    # The checkpoint's hyperparameter that marks this command's model, and what must match to resume.
    marker, arch_keys = "rollout_steps", ARCH_KEYS

    def __init__(self, args: list[str] | None = None) -> None:
        super().__init__(self.module_class, WorldDataModule, args=args)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.link_arguments("data", "model.rep_dim", compute_fn=lambda d: d.rep_dim, apply_on="instantiate")
        parser.link_arguments("data", "model.action_dim", compute_fn=lambda d: d.action_dim, apply_on="instantiate")
        parser.link_arguments("data", "model.encoder_id", compute_fn=lambda d: d.encoder_id, apply_on="instantiate")
        for what, key in (("actions", "action"), ("reps", "rep")):
            parser.link_arguments("data", f"model.{key}_mean", compute_fn=lambda d, w=what: d.stats(w)[0],
                                  apply_on="instantiate")
            parser.link_arguments("data", f"model.{key}_std", compute_fn=lambda d, w=what: d.stats(w)[1],
                                  apply_on="instantiate")
        parser.link_arguments("data.grid", "model.grid")
        parser.link_arguments("data.blur", "model.blur")

    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()
        self.resolve_resume()
        steps = self.config["trainer"].get("max_steps")
        if steps is None or steps <= 0:
            raise JEPAError("set trainer.max_steps (> 0): the learning-rate schedule is derived from it")

    def instantiate_trainer(self, **kwargs: Any):  # type: ignore[override]
        start = check_resume(self.resume_from, dict(self.model.hparams), self.marker, self.arch_keys,
                             f"jepa {self.command}") if self.resume_from else None
        return self.instantiate_run_trainer(self.run_trainer_config(start, []), **kwargs)

    @staticmethod
    def finish(module: Any, data: WorldDataModule, run_dir: str) -> None:
        """Exports the trained model and adds its held-out figures to summary.json."""
        finish(module, data, run_dir)


def check_resume(ckpt_path: str, hparams: dict[str, Any], marker: str = "rollout_steps",
                 keys: tuple[str, ...] = ARCH_KEYS, writer: str = "jepa world") -> int:
    """The step a world-model resume starts from; refuses a checkpoint of another model in one line."""
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exn:
        raise JEPAError(f"{ckpt_path} is not a readable checkpoint ({str(exn).splitlines()[0]})") from None
    saved = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    if marker not in saved:
        raise JEPAError(f"{ckpt_path} is not a checkpoint of this kind of model (written by {writer})")
    for key in keys:
        if saved.get(key) != hparams.get(key):
            what = {"encoder_id": "encoder", "fast_world_sha256": "fast world model"}.get(key, f"model.{key}")
            raise JEPAError(f"the checkpoint was trained with another {what} ({saved.get(key)} vs {hparams.get(key)}): "
                            "resume with the run's own config, or use another run_dir")
    return int(ckpt.get("global_step", 0))


def world(args: list[str]) -> int:
    """``jepa world``: returns the exit code."""
    if not args:
        raise JEPAError("jepa world needs a config: jepa world --config configs/planning/two_rooms_world.yaml")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with folders_released_after():
        return run_world(args, WorldCLI)


def run_world(args: list[str], cli_class: type[WorldCLI]) -> int:
    """Trains the model of ``cli_class`` (``jepa world`` or ``jepa world slow``), then its ``finish``;
    returns the exit code."""
    with stop_signals():
        try:
            with quiet_lightning():
                cli = cli_class(args)
        except (JEPAError, SystemExit, KeyboardInterrupt, RunAborted):
            raise
        except Exception as exn:
            raise JEPAError(config_error_line(str(exn), f"jepa {cli_class.command}")) from None
        run_dir = str(cli.config_init["run_dir"])
        trainer = cli.trainer
        try:
            trainer.fit(cli.model, cli.datamodule, ckpt_path=cli.resume_from, weights_only=True)
        except CheckpointWriteError as exn:
            print(f"error: {failure_status(trainer, exn, run_dir)}; continue with: {continue_command(cli.jepa_argv)}",
                  file=sys.stderr)
            return 1
        except RunAborted as exn:
            print(f"{failure_status(trainer, exn, run_dir)}; continue with: {continue_command(cli.jepa_argv)}",
                  file=sys.stderr)
            return exit_code(signal.SIGINT)
    stop = stop_of(trainer)
    if stop is not None:
        print(f"{stop.status()}: {run_dir}/checkpoints/last.ckpt holds that step; continue with: "
              f"{continue_command(cli.jepa_argv)}", file=sys.stderr)
        return stop.exit_code
    cli_class.finish(cli.model, cli.datamodule, run_dir)
    if cli.config_init["report"] and trainer.is_global_zero:
        write_run_report(run_dir)
    return 0


def finish(module: WorldModelModule, data: WorldDataModule, run_dir: str) -> dict[str, Any]:
    """Exports the world model to ``<run_dir>/world`` and adds its held-out open-loop error to summary.json."""
    world_dir = export_world_model(module.world, Path(run_dir) / "world", data.perception.settings, data.encoder_id,
                                   {"encoder_dir": str(Path(data.encoder_dir).resolve())})
    train, val = data.parts()
    probe_error = fit_position_probe(train, val, world_dir)
    # Up to 8 steps, as far as the held-out episodes reach beyond the history.
    reach = max((len(r) for r in val.reps), default=0) - module.config.history
    table = open_loop_errors(module.world, val, horizons=min(8, reach)) if reach >= 1 else {}
    summary_path = Path(run_dir) / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    summary["open_loop_val"] = table
    if probe_error is not None:
        summary["position_probe_error_q99"] = probe_error
    write_json_atomic(summary_path, summary)
    lines = [f"world model written to {world_dir} (world.safetensors, world.json); run in {run_dir}"]
    if table:
        model, copy = table["model"], table["copy_last"]
        lines.append(f"held-out open-loop L1 error, horizon 1..{len(model)}: model " + " ".join(f"{v:.3f}" for v in model)
                     + " | copy-last " + " ".join(f"{v:.3f}" for v in copy))
    if probe_error is not None:
        lines.append(f"position probe (MLP, representation -> x, y): held-out 99% error {probe_error:.4f}")
    print("\n".join(lines), flush=True)
    return table


def fit_position_probe(train: EncodedEpisodes, val: EncodedEpisodes, out_dir: str | Path) -> float | None:
    """Fits the representation -> position probe that the keep-out guardrail reads (two hidden layers,
    ``jepa.planning.mlp_probe``; positions are the first two state values), saves it beside the world
    model; returns its held-out 99% error."""
    if any(s is None for s in train.states) or not train.keys:
        return None
    reps, pos = torch.cat(train.reps), torch.cat([s[:, :2] for s in train.states])
    probe = MLPPositionProbe().fit(reps, pos)
    held = val if val.keys and all(s is not None for s in val.states) else train
    error = probe.error_quantile(torch.cat(held.reps), torch.cat([s[:, :2] for s in held.states]), q=0.99)
    save_position_probe(probe, error, out_dir)
    return error
