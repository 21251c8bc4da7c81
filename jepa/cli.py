"""The ``jepa`` command: one subcommand per user job. Problems a user can fix end in one line."""

from __future__ import annotations

import argparse
import json
import sys

from .errors import JEPAError
from .stopping import RunAborted

USAGE = """usage: jepa <command> [args]

commands:
  pretrain   pretrain an encoder:  jepa pretrain --config FILE [--key value ...] [--ckpt_path last]
  export     freeze an encoder:    jepa export CKPT OUT_DIR [--which auto|target|context]
  probe      evaluate an encoder:  jepa probe {linear,attentive,knn} --encoder DIR --train DATA --val DATA
  launch     cluster jobs:         jepa launch {slurm,torchrun} --config FILE ... [--dry-run]
  bench      time training steps:  jepa bench --config FILE [--steps N] [--warmup N]
  shards     write webdataset shards: jepa shards {images,videos,episodes} SRC OUT_PATTERN [--max-count N] [--max-size 1GB]
  world      world models:        jepa world --config FILE (train on episodes) | jepa world {episodes,frames} ...
  plan       the planning agent:  jepa plan --encoder DIR --world DIR (Two-Rooms, four arms) | jepa plan pipeline --out DIR

'jepa <command> --help' shows a command's arguments."""


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def export_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jepa export", description="Export a frozen encoder from a checkpoint.")
    parser.add_argument("ckpt", help="checkpoint written by jepa pretrain (e.g. runs/x/checkpoints/last.ckpt)")
    parser.add_argument("out_dir", help="folder to write model.safetensors and config.json to")
    parser.add_argument("--which", choices=("auto", "target", "context"), default="auto",
                        help="auto (default): the encoder the run's objective evaluates (the EMA target for ema, "
                        "the online encoder for sigreg and vicreg); or target / context explicitly")
    parser.add_argument("--with-projector", action="store_true",
                        help="also write the objective's projector head (projector.safetensors)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an export already in OUT_DIR (and remove its probe-* results)")
    args = parser.parse_args(argv)
    from .export import export_checkpoint

    out = export_checkpoint(args.ckpt, args.out_dir, args.which, overwrite=args.overwrite,
                            with_projector=args.with_projector)
    config = json.loads((out / "config.json").read_text())
    files = "model.safetensors, config.json" + (", projector.safetensors" if args.with_projector else "")
    print(f"exported the {config['which']} encoder ({config['objective']} objective) to {out} ({files})")
    return 0


def shards_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jepa shards", description="Write webdataset shards and verify them.")
    parser.add_argument("kind", choices=("images", "videos", "episodes"))
    parser.add_argument("src", help="images: a folder (class subfolders give labels); videos: a folder or a "
                        "'path label' list (.csv/.txt); episodes: a folder or episode shards (a .tar brace pattern)")
    parser.add_argument("out_pattern", help="shard paths with one printf number, e.g. out/train-%%06d.tar")
    parser.add_argument("--max-count", type=int, default=10_000, help="most samples in a shard (default 10000)")
    parser.add_argument("--max-size", default="1GB", help="most bytes in a shard: 500MB, 2GiB, ... (default 1GB)")
    parser.add_argument("--overwrite", action="store_true", help="replace shards already matching OUT_PATTERN")
    parser.add_argument("--workers", type=int, default=None, help="threads checking inputs (default: up to 4)")
    args = parser.parse_args(argv)
    import warnings

    from .data import shard_writer

    write = {"images": shard_writer.write_image_shards, "videos": shard_writer.write_video_shards,
             "episodes": shard_writer.write_episode_shards}[args.kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report below says what the warnings would
        report = write(args.src, args.out_pattern, max_count=args.max_count,
                       max_bytes=shard_writer.parse_size(args.max_size), overwrite=args.overwrite,
                       workers=args.workers)
    print(report.summary())
    for note in report.warnings[:5]:
        print(f"warning: {note}", file=sys.stderr)
    if len(report.warnings) > 5:
        print(f"warning: ... and {len(report.warnings) - 5} more", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    try:
        if command == "pretrain":
            from .train.run import pretrain

            return pretrain(rest)
        if command == "export":
            return export_main(rest)
        if command == "probe":
            from .eval.probe_cli import probe_main

            return probe_main(rest)
        if command == "launch":
            from .launch import launch_main

            return launch_main(rest)
        if command == "bench":
            from .bench import bench_main

            return bench_main(rest)
        if command == "shards":
            return shards_main(rest)
        if command == "world":
            from .planning.commands import world_main

            return world_main(rest)
        if command == "plan":
            from .planning.commands import plan_command

            return plan_command(rest)
    except JEPAError as exn:
        return _fail(str(exn))
    except (KeyboardInterrupt, RunAborted):
        print("interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports a process ended by Ctrl-C
    return _fail(f"unknown command {command!r}\n{USAGE}")


if __name__ == "__main__":
    sys.exit(main())
