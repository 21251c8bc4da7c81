"""``jepa world slow --config FILE``: trains the slow world model of a two-level planner on a fast
world model's episodes and encoder, with the run machinery of ``jepa world`` (run folder, atomic
``last.ckpt``, ``--ckpt_path auto`` resume, SIGTERM, ``summary.json``), then writes ``<run_dir>/world``
(kind ``slow``: the fast model's checksum, the code bank, the held-out error per macro-step)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from ..errors import JEPAError
from ..runlock import folders_released_after
from .slow_module import SlowWorldModule, fill_bank, macro_errors
from .world_cli import ARCH_KEYS, WorldCLI, run_world
from .world_data import WorldDataModule
from .world_export import export_world_model


class SlowWorldCLI(WorldCLI):
    """``jepa world slow``: ``jepa world``'s run folder and data over the slow model."""

    command = "world slow"
    default_run_dir = "runs/world_slow"
    module_class = SlowWorldModule
    marker, arch_keys = "macro_steps", (*ARCH_KEYS, "fast_world_sha256")

    @staticmethod
    def finish(module: Any, data: WorldDataModule, run_dir: str) -> None:
        slow_finish(module, data, run_dir)


def slow_finish(module: SlowWorldModule, data: WorldDataModule, run_dir: str) -> dict[str, Any]:
    """Fills the code bank, exports the slow model to ``<run_dir>/world`` and adds its held-out
    error per macro-step to summary.json."""
    train, val = data.parts()
    model = module.world.eval()
    chunks = fill_bank(model, train, module.hparams.seed)
    hp = module.hparams
    world_dir = export_world_model(model, Path(run_dir) / "world", data.perception.settings, data.encoder_id,
                                   {"encoder_dir": str(Path(data.encoder_dir).resolve()),
                                    "fast_world": str(Path(hp.fast_world).resolve()),
                                    "fast_world_sha256": hp.fast_world_sha256, "bank_chunks": chunks},
                                   kind="slow")
    reach = (max((len(r) for r in val.reps), default=0) - 1) // model.config.steps
    table = macro_errors(model, val, min(module.macro_steps + 1, reach)) if reach >= 1 else {}
    summary_path = Path(run_dir) / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    summary["open_loop_val"] = table
    write_json_atomic(summary_path, summary)
    lines = [f"slow world model written to {world_dir} (world.safetensors, world.json); run in {run_dir}"]
    if table:
        lines.append(f"held-out open-loop L1 error per macro-action of {model.config.steps} steps, 1..{len(table['model'])}: "
                     "model " + " ".join(f"{v:.3f}" for v in table["model"])
                     + " | copy-current " + " ".join(f"{v:.3f}" for v in table["copy_current"]))
    print("\n".join(lines), flush=True)
    return table


def world_slow(args: list[str]) -> int:
    """``jepa world slow``: returns the exit code."""
    if not args:
        raise JEPAError("jepa world slow needs a config: jepa world slow --config configs/planning/slow_world.yaml")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with folders_released_after():
        return run_world(args, SlowWorldCLI)
