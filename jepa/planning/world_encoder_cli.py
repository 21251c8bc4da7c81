"""``jepa world encoder --config FILE``: trains an encoder for a world model from episodes (the
action-conditioned JEPA of ``world_encoder.py``), with the run machinery of ``jepa world`` (run
folder, atomic ``last.ckpt``, ``--ckpt_path auto`` resume, SIGTERM, ``summary.json``). Its
``last.ckpt`` is exported like a pretraining checkpoint: ``jepa export RUN/checkpoints/last.ckpt DIR``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pytorch_lightning.cli import LightningArgumentParser

from ..atomic import write_json_atomic
from ..errors import JEPAError
from ..runlock import folders_released_after
from ..train.run_cli import RunCLI
from .episode_frames import EpisodeFramesDataModule
from .world_cli import WorldCLI, run_world
from .world_encoder import WorldEncoderModule


class WorldEncoderCLI(WorldCLI):
    """``jepa world encoder``: ``jepa world``'s run folder and resume checks over the encoder's training."""

    command = "world encoder"
    default_run_dir = "runs/world_encoder"
    module_class = WorldEncoderModule
    # What marks this command's checkpoints, and what must match to resume one.
    marker, arch_keys = "sigreg_weight", ("encoder", "predictor", "image_size", "grid", "blur", "action_dim")

    def __init__(self, args: list[str] | None = None) -> None:
        RunCLI.__init__(self, self.module_class, EpisodeFramesDataModule, args=args)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        RunCLI.add_arguments_to_parser(self, parser)
        parser.link_arguments("data", "model.action_dim", compute_fn=lambda d: d.action_dim, apply_on="instantiate")
        parser.link_arguments("data", "model.action_mean", compute_fn=lambda d: d.action_stats()[0],
                              apply_on="instantiate")
        parser.link_arguments("data", "model.action_std", compute_fn=lambda d: d.action_stats()[1],
                              apply_on="instantiate")
        parser.link_arguments("data.image_size", "model.image_size")
        parser.link_arguments("data.blur", "model.blur")

    @staticmethod
    def finish(module: Any, data: Any, run_dir: str) -> None:
        encoder_finish(module, data, run_dir)


def encoder_finish(module: WorldEncoderModule, data: EpisodeFramesDataModule, run_dir: str) -> dict[str, Any]:
    """Adds the held-out prediction error and RankMe to summary.json and says how to export."""
    held = data.val_part if data.val_part.keys else data.train_part
    figures = module.held_out(held)
    summary_path = Path(run_dir) / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    summary["held_out"] = figures
    write_json_atomic(summary_path, summary)
    print(f"held-out next-representation MSE {figures['prediction_mse']:.3f} (copy-last {figures['copy_last_mse']:.3f}), "
          f"RankMe {figures['rankme']:.1f} of {figures['rep_dim']}; export with: "
          f"jepa export {run_dir}/checkpoints/last.ckpt DIR", flush=True)
    return figures


def world_encoder(args: list[str]) -> int:
    """``jepa world encoder``: returns the exit code."""
    if not args:
        raise JEPAError("jepa world encoder needs a config: jepa world encoder --config configs/planning/pusht_world_encoder.yaml")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with folders_released_after():
        return run_world(args, WorldEncoderCLI)
