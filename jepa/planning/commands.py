"""The ``jepa world`` and ``jepa plan`` commands (argument parsing only; the work is elsewhere)."""

from __future__ import annotations

import argparse

from ..errors import JEPAError


def episodes_main(argv: list[str]) -> int:
    from .envs.two_rooms import TwoRoomsConfig
    from .episodes import POLICIES, write_episodes

    p = argparse.ArgumentParser(prog="jepa world episodes",
                                description="Write offline Two-Rooms episodes as episode shards (Push-T format).")
    p.add_argument("out_pattern", help="shard paths with one printf number, e.g. runs/two_rooms/episodes/ep-%%06d.tar")
    p.add_argument("--episodes", type=int, default=400)
    p.add_argument("--length", type=int, default=100, help="steps per episode")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--policy", choices=POLICIES, default="noisy")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    if args.episodes < 1 or args.length < 2:
        raise JEPAError("--episodes must be >= 1 and --length >= 2")
    report = write_episodes(args.out_pattern, args.episodes, args.length, args.seed, TwoRoomsConfig(), args.policy,
                            overwrite=args.overwrite)
    print(report.summary())
    return 0


def frames_main(argv: list[str]) -> int:
    from .frames import frames_to_image_shards

    p = argparse.ArgumentParser(prog="jepa world frames",
                                description="Write the frames of episode shards as image shards (encoder pretraining data).")
    p.add_argument("episodes", help="episode shards, e.g. ../shared/data/pusht/pusht-{000000..000003}.tar")
    p.add_argument("out_pattern", help="image shard paths with one printf number, e.g. runs/pusht/frames/frames-%%06d.tar")
    p.add_argument("--every", type=int, default=1, help="keep every k-th frame")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    print(frames_to_image_shards(args.episodes, args.out_pattern, every=args.every, overwrite=args.overwrite).summary())
    return 0


def perception_main(argv: list[str]) -> int:
    from .perception_bench import score_perceptions, table

    p = argparse.ArgumentParser(prog="jepa world perception",
                                description="Compare representations (pooling grid x blur) of a frozen encoder for "
                                "planning: held-out position-probe error and how distances order positions.")
    p.add_argument("--encoder", required=True, help="folder written by jepa export")
    p.add_argument("--episodes", required=True, help="episode shards with state.npy")
    p.add_argument("--grid", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--blur", type=float, nargs="+", default=[0.0, 2.0, 4.0], help="Gaussian sigmas in pixels")
    p.add_argument("--max-episodes", type=int, default=100)
    args = p.parse_args(argv)
    print(table(score_perceptions(args.encoder, args.episodes, args.grid, args.blur, args.max_episodes)))
    return 0


def world_main(argv: list[str]) -> int:
    if argv and argv[0] == "perception":
        return perception_main(argv[1:])
    if argv and argv[0] == "episodes":
        return episodes_main(argv[1:])
    if argv and argv[0] == "frames":
        return frames_main(argv[1:])
    from .world_cli import world

    return world(argv)


def plan_command(argv: list[str]) -> int:
    if argv and argv[0] == "pipeline":
        from .pipeline import pipeline_main

        return pipeline_main(argv[1:])
    from .plan_cli import plan_main

    return plan_main(argv)
