"""The ``jepa`` command: one subcommand per user job. Problems a user can fix end in one line."""

from __future__ import annotations

import sys

from .errors import JEPAError

USAGE = """usage: jepa <command> [args]

commands:
  pretrain   pretrain an encoder:  jepa pretrain --config FILE [--key value ...] [--ckpt_path last]
  bench      time training steps:  jepa bench --config FILE [--steps N] [--warmup N]

'jepa <command> --help' shows a command's arguments."""


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


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
        if command == "bench":
            from .bench import bench_main

            return bench_main(rest)
    except JEPAError as exn:
        return _fail(str(exn))
    except KeyboardInterrupt:
        return _fail("interrupted")
    return _fail(f"unknown command {command!r}\n{USAGE}")


if __name__ == "__main__":
    sys.exit(main())
