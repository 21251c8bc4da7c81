"""The ``jepa`` command: one subcommand per user job, thin. Problems a user can fix end in one line.

Nothing heavy is imported before a command's arguments are read, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import import_module
from pathlib import Path

from . import __version__
from .commandline import add_output, did_you_mean, new_parser, option_strings, output_of, parse, respell
from .errors import JEPAError
from .stopping import RunAborted

# name: (module, function taking the remaining arguments, one-line summary, example)
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "pretrain": ("jepa.train.commands", "pretrain_command", "pretrain an I-JEPA / V-JEPA encoder (LightningCLI)",
                 "jepa pretrain --config quickstart"),
    "export": ("jepa.cli", "export_main", "freeze an encoder of a checkpoint into model.safetensors + config.json",
               "jepa export runs/quickstart/checkpoints/last.ckpt --out runs/quickstart/export"),
    "probe": ("jepa.eval.probe_args", "probe_command", "evaluate a frozen encoder: linear, attentive or kNN probe",
              "jepa probe linear --encoder runs/quickstart/export --train builtin:shapes --val builtin:shapes"),
    "report": ("jepa.train.run_report", "report_main", "print a run's summary and draw its curves (report.png)",
               "jepa report runs/quickstart"),
    "shards": ("jepa.cli", "shards_main", "write webdataset shards of images, videos or episodes",
               "jepa shards images photos/ --out 'shards/train-%06d.tar'"),
    "world": ("jepa.planning.commands", "world_main", "train a world model on a frozen encoder; episodes, frames",
              "jepa world --config configs/planning/two_rooms_world.yaml"),
    "plan": ("jepa.planning.commands", "plan_command", "evaluate the planning agent; the whole pipeline",
             "jepa plan pipeline --out runs/two_rooms"),
    "configs": ("jepa.shipped", "configs_main", "list the shipped configs, or copy one to edit",
                "jepa configs list"),
    "launch": ("jepa.launch", "launch_main", "render and submit a SLURM or torchrun job",
               "jepa launch slurm --config configs/image/ijepa_vit_h14_in1k.yaml --nodes 2 --gpus-per-node 8"),
    "bench": ("jepa.cli", "bench_main", "time training steps: images/s, FLOP/s, MFU, memory",
              "jepa bench --config configs/bench/ijepa_vit_tiny_64.yaml"),
}

USAGE = "\n".join([
    f"usage: jepa <command> [args]   (jepa {__version__})",
    "",
    "Joint-Embedding Predictive Architectures: pretrain, export, probe and plan with them.",
    "",
    "commands:",
    *(f"  {name:<9} {summary}" for name, (_, _, summary, _) in COMMANDS.items()),
    "",
    "'jepa <command> --help' shows a command's arguments; 'jepa --version' the version.",
    "",
    "examples:",
    *(f"  {example}" for *_, example in list(COMMANDS.values())[:4]),
])


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def export_parser() -> argparse.ArgumentParser:
    parser = new_parser("jepa export", "Export a frozen encoder of a checkpoint: model.safetensors (timm-loadable "
                        "for images) and config.json (architecture, normalisation, which encoder, step, checksum).",
                        [COMMANDS["export"][3], "jepa export runs/x/checkpoints/last.ckpt --which context --out runs/x/ctx"])
    parser.add_argument("ckpt", help="checkpoint written by jepa pretrain (e.g. runs/x/checkpoints/last.ckpt)")
    add_output(parser, "OUT_DIR", "folder to write model.safetensors and config.json to "
               "(default: export/ in the checkpoint's run folder)")
    parser.add_argument("--which", choices=("auto", "target", "context"), default="auto",
                        help="auto: the encoder the run's objective evaluates (the EMA target for ema, the online "
                        "encoder for sigreg, vicreg and lejepa); or target / context explicitly")
    parser.add_argument("--with-projector", action="store_true",
                        help="also write the objective's projector head (projector.safetensors)")
    parser.add_argument("--with-predictor", action="store_true",
                        help="also write the predictor (predictor.safetensors) and, beside an EMA target, the context "
                        "encoder it was trained with (context.safetensors): what jepa probe surprise needs")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an export already in OUT_DIR (and remove its probe-* results)")
    return parser


def export_main(argv: list[str]) -> int:
    args = parse(export_parser(), argv)
    ckpt = Path(args.ckpt)
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    out_dir = output_of(args, "jepa export", "OUT_DIR", default=str(run_dir / "export"))
    from .export import export_checkpoint

    out = export_checkpoint(args.ckpt, out_dir, args.which, overwrite=args.overwrite, with_projector=args.with_projector,
                            with_predictor=args.with_predictor)
    config = json.loads((out / "config.json").read_text())
    extra = [config["projector"], *((config["predictor"]["file"], config["context_encoder"]["file"])
                                    if args.with_predictor else ())]
    files = ", ".join(dict.fromkeys(["model.safetensors", "config.json", *filter(None, extra)]))
    print(f"exported the {config['which']} encoder ({config['objective']} objective) to {out} ({files})")
    return 0


LABELLED_SETS = ("digits", "pusht-angles")  # jepa.labelled_sets.SETS (not imported: it loads the data stack)
SRC_HELP = {"images": "a folder of images (class subfolders give labels)",
            "videos": "a folder of videos or a 'path label' list (.csv/.txt)",
            "episodes": "a folder of episodes or episode shards (a .tar brace pattern)"}


def shards_parser() -> argparse.ArgumentParser:
    parser = new_parser("jepa shards", "Write webdataset shards (original bytes; labels from class folders; "
                        "classes.txt beside them), atomically, and read every shard back to check it.",
                        [COMMANDS["shards"][3], "jepa shards videos clips.csv --out 'shards/clips-%06d.tar'",
                         "jepa shards episodes episodes/ --out 'shards/episodes-%06d.tar'"])
    parser.add_argument("kind", choices=("images", "videos", "episodes", *LABELLED_SETS),
                        metavar="{images,videos,episodes,digits,pusht-angles}",
                        help="what SRC holds; digits and pusht-angles write a labelled set no recipe is tuned on "
                        "(train and test shards in the folder --out)")
    parser.add_argument("src", nargs="?", default=None,
                        help="images: a folder (class subfolders give labels); videos: a folder or a "
                        "'path label' list (.csv/.txt); episodes: a folder or episode shards (a .tar brace pattern); "
                        "pusht-angles: Push-T episode shards; digits: none (scikit-learn's scans)")
    add_output(parser, "OUT_PATTERN", "shard paths with one printf number, e.g. out/train-%%06d.tar "
               "(digits, pusht-angles: a folder)")
    parser.add_argument("--every", type=int, default=4, help="pusht-angles: keep every k-th frame")
    parser.add_argument("--max-count", type=int, default=10_000, help="most samples in a shard")
    parser.add_argument("--max-size", default="1GB", help="most bytes in a shard: 500MB, 2GiB, ...")
    parser.add_argument("--overwrite", action="store_true", help="replace shards already matching OUT_PATTERN")
    parser.add_argument("--workers", type=int, default=None, help="threads checking inputs (default: up to 4)")
    return parser


def shards_main(argv: list[str]) -> int:
    args = parse(shards_parser(), argv)
    if args.kind == "digits" and args.src is not None:  # before the output: SRC was probably meant as the folder
        raise JEPAError("jepa shards digits takes no SRC (the scans ship with scikit-learn): give --out DIR")
    out = output_of(args, "jepa shards", "OUT_PATTERN")
    import warnings

    from .data import shard_writer

    if args.kind in LABELLED_SETS:
        from .labelled_sets import write_labelled_set

        reports = write_labelled_set(args.kind, out, args.src, args.every, args.overwrite)
        for split, report in reports.items():
            print(f"{split}: {report.summary()}")
        return 0
    if args.src is None:
        raise JEPAError(f"jepa shards {args.kind} needs SRC: {SRC_HELP[args.kind]}")
    write = {"images": shard_writer.write_image_shards, "videos": shard_writer.write_video_shards,
             "episodes": shard_writer.write_episode_shards}[args.kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report below says what the warnings would
        report = write(args.src, out, max_count=args.max_count, max_bytes=shard_writer.parse_size(args.max_size),
                       overwrite=args.overwrite, workers=args.workers)
    print(report.summary())
    for note in report.warnings[:5]:
        print(f"warning: {note}", file=sys.stderr)
    if len(report.warnings) > 5:
        print(f"warning: ... and {len(report.warnings) - 5} more", file=sys.stderr)
    return 0


def bench_parser() -> argparse.ArgumentParser:
    parser = new_parser("jepa bench", "Time full training steps of a pretraining config (forward, backward, AdamW, "
                        "EMA) on synthetic inputs with real masks; print one JSON line: images/s (clips/s), tokens/s, "
                        "FLOPs per step, achieved FLOP/s, MFU against a measured matmul peak, peak memory. Any "
                        "jepa pretrain key may follow as an override.",
                        [COMMANDS["bench"][3], "jepa bench --config configs/bench/ijepa_vit_tiny_64.yaml --data-only "
                         "--data.num_workers 2"])
    parser.add_argument("--config", required=True, help="a pretraining config: a path or a shipped config's name "
                        "(required)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--data-only", action="store_true", help="time the training data loader alone, no model")
    return parser


def bench_main(argv: list[str]) -> int:
    """``jepa bench``: its own flags, then any jepa pretrain override."""
    parser = bench_parser()
    known, overrides = parser.parse_known_args(respell(argv, option_strings(parser)))
    from .train.commands import config_argv

    config = config_argv(["--config", known.config, *overrides])
    from .bench import bench, bench_data

    result = bench_data(config, known.steps, known.warmup) if known.data_only else \
        bench(config, known.steps, known.warmup, known.device)
    print(json.dumps(result), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"jepa {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        return _fail(f"unknown command {command!r}{did_you_mean(command, COMMANDS)}; the commands: "
                     f"{', '.join(COMMANDS)} (jepa --help)")
    module, function, _, _ = COMMANDS[command]
    try:
        # This module's own commands come from globals(): under python -m it is __main__, not jepa.cli.
        run = globals()[function] if module == "jepa.cli" else getattr(import_module(module), function)
        return run(rest)
    except JEPAError as exn:
        return _fail(str(exn))
    except (KeyboardInterrupt, RunAborted):
        print("interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports a process ended by Ctrl-C


if __name__ == "__main__":
    sys.exit(main())
