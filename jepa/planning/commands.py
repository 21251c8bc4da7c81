"""The ``jepa world`` and ``jepa plan`` commands: their arguments and help, answered without
importing torch; the work is imported once the arguments are read."""

from __future__ import annotations

import argparse

from ..commandline import add_output, add_subcommands, add_subparser, new_parser, output_of, parse
from ..errors import JEPAError
from ..train.commands import RUN_OPTIONS, config_argv, wants_help

WORLD_TOOLS = {
    "episodes": "write Two-Rooms exploration episodes as episode shards (Push-T format)",
    "pusht-tasks": "write Push-T benchmark tasks from held-out recorded episodes; measure replay fidelity",
    "frames": "write the frames of episode shards as image shards (the encoder's pretraining data)",
    "perception": "compare pooling grids and blurs of a frozen encoder for planning",
}
WORLD_SUBCOMMANDS = {"slow": "train the slow world model of a two-level planner",
                     "encoder": "train an encoder for a world model from episodes (action-conditioned JEPA, LeWM)",
                     **WORLD_TOOLS}

WORLD_HELP = f"""\
usage: jepa world --config FILE [--out DIR] [--ckpt_path auto|last|PATH] [--KEY VALUE ...]
       jepa world {{{",".join(WORLD_SUBCOMMANDS)}}} ...

Train an action-conditioned world model on a frozen encoder's representations of episodes (frames,
actions, states), with the run folder of jepa pretrain; writes <run_dir>/world for jepa plan, the
held-out open-loop error and a position probe.

commands (jepa world COMMAND --help for each):
{chr(10).join(f"  {name:<11} {text}" for name, text in WORLD_SUBCOMMANDS.items())}

{RUN_OPTIONS}

config keys (--GROUP.KEY VALUE on the command line, a mapping in the YAML):
  model.predictor.*     width, depth, heads, history (frames looked back over), mlp_ratio
  model.*               rollout_steps, rollout_weight, lr, weight_decay, warmup_steps, seed
  data.*                train (episode shards), encoder (a jepa export folder), grid, blur, batch_size,
                        val_fraction, max_episodes, cache_dir
  trainer.*             max_steps, accelerator, devices, precision, logger, callbacks (Lightning's Trainer)

every key with its help and the config's value (imports torch, a few seconds):
  jepa world --config FILE --help

example:
  jepa world --config configs/planning/two_rooms_world.yaml --out runs/two_rooms/world"""

SLOW_HELP = f"""\
usage: jepa world slow --config FILE [--out DIR] [--ckpt_path auto|last|PATH] [--KEY VALUE ...]

Train the slow world model of a two-level planner: from one frame's representation and a macro-action
(a learned code of a chunk of k actions) it predicts the representation k steps later. It sits on a
fast world model (model.fast_world, the world/ folder of jepa world) and its encoder and episodes;
writes <run_dir>/world (kind slow, with the codes of training chunks the planner searches among).

{RUN_OPTIONS}

config keys (--GROUP.KEY VALUE on the command line, a mapping in the YAML):
  model.predictor.*     steps (k), code_dim, width, depth, heads, mlp_ratio, bank_size
  model.*               fast_world, macro_steps (jumps imagined per training window), lr, weight_decay,
                        warmup_steps, seed
  data.*                as jepa world's: train, encoder, grid, blur, batch_size, val_fraction, max_episodes
  trainer.*             max_steps, accelerator, devices, precision, logger, callbacks

example:
  jepa world slow --config configs/planning/slow_world.yaml --out runs/four_rooms/slow"""

ENCODER_HELP = f"""\
usage: jepa world encoder --config FILE [--out DIR] [--ckpt_path auto|last|PATH] [--KEY VALUE ...]

Train an encoder for a world model from episodes (frames and actions): the encoder and an
action-conditioned predictor learn together, the next frame's pooled representation predicted from
the last frames' and the actions, with SIGReg against collapse (LeWorldModel's objective). Export it
with jepa export, then train the world model on it with jepa world, as for any encoder.

{RUN_OPTIONS}

config keys (--GROUP.KEY VALUE on the command line, a mapping in the YAML):
  model.encoder.*       size, patch_size, width, depth, heads (the ViT)
  model.predictor.*     width, depth, heads, history (frames looked back over), mlp_ratio
  model.*               grid (the representation's pooling, as the world model's data.grid), sigreg_weight,
                        sigreg_slices, lr, weight_decay, warmup_steps, seed
  data.*                train (episode shards), image_size, blur (as the world model's data.blur),
                        batch_size, val_fraction, max_episodes
  trainer.*             max_steps, accelerator, devices, precision, logger, callbacks

example:
  jepa world encoder --config configs/planning/pusht_world_encoder.yaml --out runs/pusht/encoder
  jepa export runs/pusht/encoder/checkpoints/last.ckpt runs/pusht/encoder_export"""

PLAN_EXAMPLES = ["jepa plan --encoder runs/two_rooms/encoder_export --world runs/two_rooms/world/world",
                 "jepa plan --env four-rooms --hierarchy 2 --encoder runs/four_rooms/encoder_export "
                 "--world runs/four_rooms/world/world --slow runs/four_rooms/slow/world",
                 "jepa plan --encoder E --world W --arms simulator world_model --keep-out 0.72 0.2 0.82 0.32",
                 "jepa plan pipeline --out runs/two_rooms"]


def episodes_parser(parser: argparse.ArgumentParser) -> None:
    add_output(parser, "OUT_PATTERN", "shard paths with one printf number, e.g. runs/two_rooms/episodes/ep-%%06d.tar")
    parser.add_argument("--episodes", type=int, default=400, help="episodes to write")
    parser.add_argument("--length", type=int, default=100, help="steps per episode")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (episode i uses seed + i)")
    add_env(parser, "the environment that plays the episodes")
    parser.add_argument("--policy", choices=("noisy", "random"), default="noisy",
                        help="noisy: a heading that drifts (crosses the door often); random: i.i.d. actions")
    parser.add_argument("--replay", default=None, metavar="SHARDS",
                        help="push-t: noisy replays of these recorded episodes (their training part) instead of "
                        "exploration; --length is then each recording's own")
    parser.add_argument("--noise", type=float, default=0.3,
                        help="--replay: Gaussian noise added to each recorded action, in action units per axis")
    parser.add_argument("--overwrite", action="store_true", help="replace shards already matching OUT_PATTERN")


def frames_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("episodes", help="episode shards, e.g. ../shared/data/pusht/pusht-{000000..000003}.tar")
    add_output(parser, "OUT_PATTERN", "image shard paths with one printf number, e.g. runs/pusht/frames/f-%%06d.tar")
    parser.add_argument("--every", type=int, default=1, help="keep every k-th frame")
    parser.add_argument("--overwrite", action="store_true", help="replace shards already matching OUT_PATTERN")


def pusht_tasks_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("episodes", help="recorded Push-T episode shards, e.g. ../shared/data/pusht/pusht-{000000..000003}.tar")
    add_output(parser, "OUT", "the task file to write (JSON), e.g. runs/pusht/tasks.json")
    parser.add_argument("--count", type=int, default=100, help="tasks to draw")
    parser.add_argument("--offset", type=int, default=25, help="recorded control steps from start to goal")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def perception_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--encoder", required=True, help="folder written by jepa export (required)")
    parser.add_argument("--episodes", required=True, help="episode shards with state.npy (required)")
    parser.add_argument("--grid", type=int, nargs="+", default=[1, 2, 4], help="pooling grids to compare")
    parser.add_argument("--blur", type=float, nargs="+", default=[0.0, 2.0, 4.0],
                        help="Gaussian blur sigmas (pixels) to compare")
    parser.add_argument("--max-episodes", type=int, default=100, help="episodes read (the last 20%% judge the ridge probe)")


def world_tools_parser() -> argparse.ArgumentParser:
    parser = new_parser("jepa world", "Data and measurements for world models (training: jepa world --config FILE).",
                        ["jepa world episodes --out 'runs/two_rooms/episodes/episodes-%06d.tar' --episodes 400"])
    subs = add_subcommands(parser)
    build = {"episodes": episodes_parser, "frames": frames_parser, "perception": perception_parser,
             "pusht-tasks": pusht_tasks_parser}
    examples = {
        "episodes": ["jepa world episodes 'runs/two_rooms/episodes/episodes-%06d.tar' --episodes 400 --length 100"],
        "frames": ["jepa world frames runs/two_rooms/episodes/episodes-000000.tar "
                   "'runs/two_rooms/frames/frames-%06d.tar' --every 4"],
        "perception": ["jepa world perception --encoder runs/two_rooms/encoder_export "
                       "--episodes runs/two_rooms/episodes/episodes-000000.tar"],
        "pusht-tasks": ["jepa world pusht-tasks '../shared/data/pusht/pusht-{000000..000003}.tar' runs/pusht/tasks.json"],
    }
    for name, summary in WORLD_TOOLS.items():
        build[name](add_subparser(subs, name, summary, summary[0].upper() + summary[1:] + ".", examples[name]))
    return parser


def world_main(argv: list[str]) -> int:
    if argv and argv[0] == "slow":
        if wants_help(argv[1:]):
            print(SLOW_HELP)
            return 0
        from .slow_cli import world_slow

        return world_slow(config_argv(argv[1:]))
    if argv and argv[0] == "encoder":
        if wants_help(argv[1:]):
            print(ENCODER_HELP)
            return 0
        from .world_encoder_cli import world_encoder

        return world_encoder(config_argv(argv[1:]))
    if argv and argv[0] in WORLD_TOOLS:
        args = parse(world_tools_parser(), argv)
        return {"episodes": _episodes, "frames": _frames, "perception": _perception,
                "pusht-tasks": _pusht_tasks}[args.command](args)
    if wants_help(argv):
        print(WORLD_HELP)
        return 0
    from .world_cli import world

    return world(config_argv(argv))


def _episodes(args: argparse.Namespace) -> int:
    out = output_of(args, "jepa world episodes", "OUT_PATTERN")
    if args.episodes < 1 or args.length < 2:
        raise JEPAError("--episodes must be >= 1 and --length >= 2")
    from .envs.registry import make_env
    from .episodes import write_episodes

    env = make_env(args.env)
    if args.replay is not None:
        if env.name != "push-t":
            raise JEPAError(f"--replay replays recorded Push-T episodes: {env.name} explores (leave --replay out)")
        from .push_t_data import write_replays

        print(write_replays(args.replay, out, args.episodes, args.seed, args.noise, env,
                            overwrite=args.overwrite).summary())
        return 0
    print(write_episodes(out, args.episodes, args.length, args.seed, env, args.policy,
                         overwrite=args.overwrite).summary())
    return 0


def _frames(args: argparse.Namespace) -> int:
    out = output_of(args, "jepa world frames", "OUT_PATTERN")
    from .frames import frames_to_image_shards

    print(frames_to_image_shards(args.episodes, out, every=args.every, overwrite=args.overwrite).summary())
    return 0


def _perception(args: argparse.Namespace) -> int:
    from .perception_bench import score_perceptions, table

    print(table(score_perceptions(args.encoder, args.episodes, args.grid, args.blur, args.max_episodes)))
    return 0


def _pusht_tasks(args: argparse.Namespace) -> int:
    out = output_of(args, "jepa world pusht-tasks", "OUT")
    from .push_t_tasks import write_tasks

    print(write_tasks(args.episodes, out, args.count, args.offset, args.seed, args.overwrite))
    return 0


def add_env(parser: argparse.ArgumentParser, what: str) -> None:
    """``--env NAME``: a registered planning environment, checked when it is built (the registry
    imports torch, which --help must not wait for)."""
    parser.add_argument("--env", default="two-rooms", metavar="NAME",
                        help=f"{what}: a name in jepa.planning.envs.registry (two-rooms)")


def add_scoring(parser: argparse.ArgumentParser) -> None:
    """The goal energy's settings, shared by jepa plan and jepa plan pipeline."""
    parser.add_argument("--energy", choices=("latent", "probe"), default="latent",
                        help="goal energy of the world model: latent (mean squared distance between the imagined and "
                        "goal representations in standard units, as DINO-WM) or probe (between the positions the "
                        "position probe reads from them)")
    parser.add_argument("--goal", choices=("final", "sum"), default="sum",
                        help="score the goal distance at the last imagined step (final, DINO-WM) or summed over "
                        "every step, step t weighted by discount**t (sum: arriving sooner costs less)")
    parser.add_argument("--discount", type=float, default=2.0,
                        help="per-step weight factor of --goal sum; above 1 later steps count more, so a detour "
                        "(through the door) is not traded for standing closer to the goal at the wall")
    parser.add_argument("--steps", type=int, default=None,
                        help="cap on environment steps per evaluation episode (default: each task's own budget, "
                             "Four-Rooms 2.8 x its shortest path; 40 where the environment sets none)")


def add_workers(parser: argparse.ArgumentParser) -> None:
    """``--workers``: episodes played at once, shared by jepa plan and jepa plan pipeline."""
    parser.add_argument("--workers", type=int, default=0,
                        help="episodes played at once, each in a process of its own with its share of torch's "
                        "threads (default 0: one per CPU core; 1: every episode in this process)")


def add_hierarchy(parser: argparse.ArgumentParser) -> None:
    """The two-level planner's options, shared by jepa plan and jepa plan pipeline."""
    parser.add_argument("--hierarchy", type=int, choices=(1, 2), default=1,
                        help="planning levels: 1 flat; 2 adds the slow world model's subgoals (the hierarchical arm)")
    parser.add_argument("--slow", nargs="+", default=None, metavar="DIR",
                        help="the slow world model's folder (<run_dir>/world of jepa world slow; needed by --hierarchy 2); "
                        "several: an ensemble whose high level keeps only the moves its members agree on")
    parser.add_argument("--disagreement", type=float, default=1.0,
                        help="with several --slow models: a high-level move is dropped when a member's prediction lies "
                        "farther than this factor of the graph search's merge radius from the members' mean")
    parser.add_argument("--high", choices=("graph", "cem"), default="graph",
                        help="the high level's search: graph (breadth-first over imagined macro-states, merged "
                        "where they coincide) or cem (CEM over --macro-horizon bank codes)")
    parser.add_argument("--macro-horizon", type=int, default=3, help="macro-actions the high level's CEM plans (--high cem)")
    parser.add_argument("--replan-every", type=int, default=3, help="environment steps between high-level plans")
    parser.add_argument("--low-samples", type=int, default=100, help="CEM samples of the two-level arms' low level")
    parser.add_argument("--low-iterations", type=int, default=10, help="CEM iterations of the two-level arms' low level")


def plan_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "jepa plan", "Evaluate the planning agent in an environment (Two-Rooms by default): random, greedy, CEM on the true simulator and CEM on\n"
        "the learned world model over the same seeded episodes; writes plan.json, trajectories.png and energy.png.\n\n"
        "commands:\n  pipeline    episodes -> encoder -> world model -> this evaluation, in one command "
        "(jepa plan pipeline --help)", PLAN_EXAMPLES)
    parser.add_argument("--encoder", help="encoder folder written by jepa export (the world model's perception; "
                        "needed by the world_model arm)")
    parser.add_argument("--world", help="world-model folder written by jepa world (<run_dir>/world; needed by the "
                        "world_model arm)")
    add_env(parser, "the environment to plan in")
    parser.add_argument("--episodes", type=int, default=50, help="seeded episodes per arm")
    parser.add_argument("--seed", type=int, default=0, help="first episode seed")
    parser.add_argument("--horizon", type=int, default=5, help="imagined steps per plan")
    parser.add_argument("--execute", type=int, default=1, help="actions executed per plan (MPC)")
    parser.add_argument("--planner", choices=("cem", "mppi", "gradient"), default="cem", help="the planner")
    parser.add_argument("--samples", type=int, default=300, help="CEM/MPPI samples per iteration")
    parser.add_argument("--iterations", type=int, default=30, help="CEM/MPPI iterations (gradient: 3x as many steps)")
    parser.add_argument("--arms", nargs="+", default=None,
                        choices=("random", "hold", "dataset", "greedy", "simulator", "simulator_perceived", "world_model",
                                 "hierarchical", "oracle_subgoals"),
                        help="the agents to evaluate (default: random greedy simulator world_model; with "
                        "--hierarchy 2: world_model hierarchical); hold: the zero action; dataset: the task's "
                        "recorded actions (push-t); simulator_perceived: the true dynamics scored by the world "
                        "model's representation distance (a diagnostic; needs --encoder and --world)")
    parser.add_argument("--tasks", default=None, metavar="FILE",
                        help="push-t: the task file of jepa world pusht-tasks (episode i plays task i)")
    add_hierarchy(parser)
    parser.add_argument("--keep-out", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"), default=None,
                        help="a region the agent must never enter (world units, y up; default: none)")
    parser.add_argument("--margin", type=float, default=None,
                        help="keep-out safety margin of the world model (default: the position probe's 99%% error "
                        "plus half a step)")
    add_scoring(parser)
    add_workers(parser)
    parser.add_argument("--out", default=None, metavar="DIR", help="output folder (default: <world>/plan, or runs/plan)")
    parser.add_argument("--overwrite", action="store_true", help="replace a plan.json already in the output folder")
    return parser


def pipeline_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "jepa plan pipeline", "The whole agent of an environment from nothing: episodes -> frame shards -> encoder (jepa "
        "pretrain) -> export -> world model (jepa world) -> jepa plan. Each stage is skipped when its result is "
        "there, so a stopped pipeline continues where it was.",
        ["jepa plan pipeline --out runs/two_rooms", "jepa plan pipeline --out runs/two_rooms_probe --energy probe"])
    parser.add_argument("--out", default="runs/two_rooms", metavar="DIR", help="folder for every stage's output")
    add_env(parser, "the environment: its episodes, shipped configs and sizes")
    parser.add_argument("--size", choices=("full", "tiny"), default="full",
                        help="full: the documented figures; tiny: seconds, for tests")
    parser.add_argument("--hierarchy", type=int, choices=(1, 2), default=1,
                        help="2: also train the slow world model and evaluate the hierarchical arm beside the flat one")
    parser.add_argument("--slow-members", type=int, default=None, metavar="N",
                        help="with --hierarchy 2: slow world models to train (seeds 0..N-1, at once in the workers, "
                        "sharing the slow-model steps), planned with as one ensemble (default: the environment's "
                        "recipe; four-rooms 2, two-rooms 1)")
    parser.add_argument("--replay", default=None, metavar="SHARDS",
                        help="push-t: the recorded episodes its tasks (held-out part) and training replays come from")
    add_scoring(parser)
    add_workers(parser)
    return parser


# jepa plan's --budget was its environment-step budget; in jepa pretrain --budget is wall-clock time.
RENAMED = {"--budget": "--steps (environment steps per episode)"}


def parse_plan(argv: list[str]) -> argparse.Namespace:
    return parse(plan_parser(), argv, renamed=RENAMED)


def plan_command(argv: list[str]) -> int:
    if argv and argv[0] == "pipeline":
        args = parse(pipeline_parser(), argv[1:], renamed=RENAMED)
        from .pipeline import run_pipeline

        return run_pipeline(args)
    args = parse_plan(argv)
    from .plan_cli import plan_main

    return plan_main(args)
