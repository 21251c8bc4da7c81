"""The fronts of the commands that train in a run folder: ``jepa pretrain`` (and the run options
``jepa world`` shares). ``--help`` is answered here, without importing torch or Lightning; with a
``--config`` before it, LightningCLI lists every key with its help and that config's value.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..shipped import resolve_config

RUN_OPTIONS = """\
run options:
  --config FILE         a YAML config: a path, or the name of a shipped config (jepa configs list),
                        e.g. quickstart; required
  --out DIR, --run_dir DIR
                        the run folder: config.yaml, checkpoints/last.ckpt, metrics.csv,
                        summary.json, report.png (default: the config's run_dir)
  --ckpt_path PATH      resume: 'last' (<run_dir>/checkpoints/last.ckpt), 'auto' (the newest
                        checkpoint in the run folder if any, else a fresh start: what cluster jobs
                        use) or a checkpoint file (default: none; a folder that holds a run is refused)
  --checkpoint_every_n_steps N
                        period of checkpoints/last.ckpt in optimizer steps (default: 500)
  --report BOOL         write report.png at the end of the run (default: true)
  --seed_everything N   the seed of everything not seeded by a key of its own (default: 0)
  --print_config        print every key with its value (after --config and overrides) and exit
  --KEY VALUE           any config key, dotted (--trainer.max_steps 2000); hyphens in a key are
                        read as underscores (--data.batch-size = --data.batch_size)"""

PRETRAIN_HELP = f"""\
usage: jepa pretrain --config FILE [--out DIR] [--ckpt_path auto|last|PATH] [--budget TIME] [--KEY VALUE ...]

Pretrain an I-JEPA (images) or V-JEPA (clips) encoder through PyTorch Lightning. Every constructor
argument of the model, the data and the Trainer is a config key (LightningCLI); a run is a V-JEPA
run when its data holds videos. Stops cleanly on SIGTERM/SIGUSR1/Ctrl-C and resumes exactly.

{RUN_OPTIONS}
  --budget TIME         wall-clock budget of the whole run (15m, 90s, 1h30m; a number is minutes):
                        the run times its first steps and fixes trainer.max_steps to fit
                        (default: none: trainer.max_steps decides)

config keys (--GROUP.KEY VALUE on the command line, a mapping in the YAML):
  model.encoder.*       size, patch_size, width, depth, heads, tubelet_size, pos (sincos|rope), drop_path
  model.predictor.*     width, depth, heads
  model.objective       ema (EMA target; default), sigreg, vicreg or lejepa (views), with settings: {{name: sigreg, weight: 0.1}}
  model.optim.*         lr, start_lr, final_lr, warmup_steps, weight_decay, final_weight_decay, betas
  model.*               compile, activation_checkpointing, views_weight, motion_weight, monitor_every_n_steps
  data.*                train, val (DATA specs: a folder, shards 'x-{{000000..000009}}.tar', a video list,
                        builtin:shapes, builtin:bouncing), image_size, batch_size, num_workers,
                        masks, clips, video_masking, views, memory_cache, mix, samples_per_epoch
  trainer.*             max_steps, accelerator, devices, num_nodes, precision, strategy, logger
                        (beside metrics.csv), callbacks, log_every_n_steps (Lightning's Trainer)
  probe.*               enabled, every_n_steps, epochs (the in-run probe)

every key with its help and the config's value (imports torch, a few seconds):
  jepa pretrain --config FILE --help

examples:
  jepa pretrain --config quickstart
  jepa pretrain --config configs/image/cifar10_cpu_15min.yaml --out runs/cifar --data.batch_size 64
  jepa pretrain --config configs/quickstart.yaml --out runs/quickstart --ckpt_path auto
  jepa pretrain --config quickstart --trainer.logger TensorBoardLogger"""


def wants_help(argv: Sequence[str]) -> bool:
    """``--help`` without a config: the static help answers."""
    flags = {a.partition("=")[0] for a in argv}
    return bool(flags & {"-h", "--help"}) and not flags & {"-c", "--config"}


# The save_dir of a logger named on the command line without one: the run folder (see RunCLI).
RUN_DIR_PLACEHOLDER = "<run_dir>"
_NEEDS_SAVE_DIR = ("TensorBoardLogger", "CSVLogger")


def config_argv(argv: Sequence[str]) -> list[str]:
    """The arguments of a LightningCLI command in its own spelling: config keys with underscores
    (``--data.batch-size`` is ``--data.batch_size``), ``--out`` as ``--run_dir``, each ``--config``
    a file (a shipped config's name is resolved to its path), and a ``--trainer.logger`` that needs
    a folder and was given none writing into the run folder."""
    out: list[str] = []
    for arg in argv:
        if arg.startswith("--"):
            key, eq, value = arg.partition("=")
            key = "--" + key[2:].replace("-", "_")
            arg = ("--run_dir" if key == "--out" else key) + eq + value
        out.append(arg)
    if not any(a.partition("=")[0] == "--trainer.logger.save_dir" for a in out):
        for i, arg in enumerate(out):
            key, eq, value = arg.partition("=")
            value = value if eq else (out[i + 1] if i + 1 < len(out) else "")
            if key == "--trainer.logger" and value.rsplit(".", 1)[-1] in _NEEDS_SAVE_DIR:
                out[i + (1 if eq else 2):i + (1 if eq else 2)] = ["--trainer.logger.save_dir", RUN_DIR_PLACEHOLDER]
                break
    for i, arg in enumerate(out):
        if arg in ("--config", "-c") and i + 1 < len(out):
            out[i + 1] = resolve_config(out[i + 1])
        elif arg.startswith(("--config=", "-c=")):
            key, _, value = arg.partition("=")
            out[i] = f"{key}={resolve_config(value)}"
    return out


def pretrain_command(argv: list[str]) -> int:
    if wants_help(argv):
        print(PRETRAIN_HELP)
        return 0
    from .run import pretrain

    return pretrain(config_argv(argv))
