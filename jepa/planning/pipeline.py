"""``jepa plan pipeline``: the whole agent of a registered environment from nothing, in one command:
episodes -> frame shards -> encoder (jepa pretrain) -> export -> world model (jepa world) -> with
``--hierarchy 2`` the slow world model (jepa world slow) -> jepa plan (with ``--hierarchy 2``: the flat
and the hierarchical arms).

Push-T starts from recorded episodes instead (``--replay``): its tasks from the held-out ones
(``jepa world pusht-tasks``), noisy replays of the others as the episodes (``jepa world episodes
--replay``), its encoder from those episodes' frames and actions (``jepa world encoder``, no frame
shards), and the evaluation plays those tasks with the hold, random, dataset and world_model arms.

Each stage writes under ``--out`` and is skipped when its result is already there, so a pipeline
that was stopped continues where it was (a stage cut short resumes through its own run folder).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..data.shard_sink import ShardPattern
from ..errors import JEPAError
from ..export import export_checkpoint
from ..runlock import hold_folder
from ..shipped import shipped_config
from ..train.run import pretrain
from .commands import parse_plan
from .envs.registry import environment, make_env
from .episodes import write_episodes
from .frames import frames_to_image_shards
from .plan_cli import plan_main
from .push_t_data import write_replays
from .push_t_tasks import write_tasks
from .slow_cli import world_slow
from .workers import map_in_workers, usable_workers
from .world_cli import world
from .world_encoder_cli import world_encoder


def _config(name: str) -> str:
    path = shipped_config(f"planning/{name}")
    if path is None:
        raise JEPAError(f"the shipped config planning/{name} is missing: reinstall jepa")
    return str(path)


def _ran(code: int, what: str) -> None:
    if code >= 128:  # stopped by a signal: the stage said so in one line; end with its exit status
        raise SystemExit(code)
    if code != 0:
        raise JEPAError(f"the pipeline stopped at the {what} stage (exit code {code}); run the same command again "
                        "to continue")


def _finished(run: Path) -> bool:
    """A world-model run (fast or slow) is done once its summary.json holds the open-loop table, which
    it gains last."""
    summary = run / "summary.json"
    return summary.is_file() and "open_loop_val" in json.loads(summary.read_text())


def run_pipeline(args: argparse.Namespace) -> int:
    """``jepa plan pipeline`` with its arguments read (``jepa.planning.commands.pipeline_parser``)."""
    entry = environment(args.env)
    # Before the output folder is taken: the recordings are checked when the first stage reads them.
    if entry.from_recordings and not args.replay:
        raise JEPAError(f"{entry.name}'s pipeline starts from recorded episodes: give --replay SHARDS, e.g. "
                        "'../shared/data/pusht/pusht-{000000..000003}.tar'")
    if args.replay and not entry.from_recordings:
        raise JEPAError(f"{entry.name} explores for its episodes: leave --replay out")
    if args.slow_members is not None and (args.slow_members < 1 or (args.slow_members > 1 and args.hierarchy != 2)):
        raise JEPAError(f"--slow-members must be >= 1 and needs --hierarchy 2 above 1, got {args.slow_members}")
    if args.hierarchy == 2 and entry.from_recordings:
        raise JEPAError(f"{entry.name} has no two-level recipe: leave --hierarchy out")
    out = Path(args.out)
    with hold_folder(out, "jepa plan pipeline", hint="give another --out"):
        return _run_stages(args, out)


def _run_stages(args: argparse.Namespace, out: Path) -> int:
    entry = environment(args.env)
    size = entry.sizes[args.size]
    t0 = time.perf_counter()
    times: dict[str, float] = {}
    report = ["--report", "false"] if args.size == "tiny" else []

    def stage(name: str) -> None:
        times[name] = round(time.perf_counter() - t0 - sum(times.values()), 1)
        print(f"== {name} done ({times[name]:.0f} s)", flush=True)

    episodes = out / "episodes" / "episodes-000000.tar"
    tasks: list[str] = []
    if entry.from_recordings:
        task_file = out / "tasks.json"
        if not task_file.is_file():
            print(write_tasks(args.replay, str(task_file), count=max(size.eval_episodes, 1)), flush=True)
        tasks = ["--tasks", str(task_file), "--arms", "hold", "random", "dataset", "world_model"]
        stage("tasks")
        if not episodes.is_file():
            write_replays(args.replay, str(out / "episodes" / "episodes-%06d.tar"), size.episodes,
                          env=make_env(entry.name), max_count=100_000)
    elif not episodes.is_file():
        write_episodes(str(out / "episodes" / "episodes-%06d.tar"), size.episodes, size.length, 0, make_env(entry.name),
                       "noisy", max_count=100_000)
    stage("episodes")
    if entry.encoder_from_episodes:
        train, data = world_encoder, str(episodes)  # frames and actions: no frame shards
    else:
        frames = ShardPattern(str(out / "frames" / "frames-%06d.tar"))
        if not Path(frames.path(0)).is_file():
            frames_to_image_shards(str(episodes), frames.pattern, every=size.frame_every)
        # Every frame shard: Four-Rooms' 15,000 frames fill two (10,000 per shard).
        train, data = pretrain, frames.brace(len(frames.existing()))
        stage("frames")
    export = out / "encoder_export"
    if not (export / "model.safetensors").is_file():
        run = out / "encoder"
        resume = ["--ckpt_path", "auto"] if (run / "checkpoints").is_dir() else []
        _ran(train(["--config", _config(entry.encoder_config), "--data.train", data, "--run_dir", str(run),
                    "--trainer.max_steps", str(size.encoder_steps), *report, *resume]), "encoder")
        export_checkpoint(run / "checkpoints" / "last.ckpt", export)
    stage("encoder")
    world_dir = out / "world" / "world"
    if not _finished(out / "world"):
        run = out / "world"
        resume = ["--ckpt_path", "auto"] if (run / "checkpoints").is_dir() else []
        _ran(world(["--config", _config(entry.world_config), "--data.train", str(episodes), "--data.encoder",
                    str(export), "--run_dir", str(run), "--trainer.max_steps", str(size.world_steps), *report, *resume]),
             "world model")
    stage("world model")
    hierarchy: list[str] = []
    slow: dict[str, int] = {}  # what pipeline.json records of the slow models
    if args.hierarchy == 2:
        # Several members differ in their initialisation and batch order (seed i); the planner searches
        # with them as one ensemble (jepa/planning/slow_ensemble.py).
        members = args.slow_members or size.slow_members
        slow = {"slow_members": members, "slow_steps_each": max(1, size.slow_steps // members)}
        slow_runs = [out / ("slow" if i == 0 else f"slow_{i}") for i in range(members)]

        def train_member(i: int) -> int:
            slow_run = slow_runs[i]
            resume = ["--ckpt_path", "auto"] if (slow_run / "checkpoints").is_dir() else []
            seeds = ["--model.seed", str(i), "--seed_everything", str(i)] if i else []
            return world_slow(["--config", _config(entry.slow_config), "--data.train", str(episodes), "--data.encoder",
                               str(export), "--model.fast_world", str(world_dir), "--run_dir", str(slow_run),
                               "--trainer.max_steps", str(slow["slow_steps_each"]), *seeds, *report, *resume])

        pending = [i for i, r in enumerate(slow_runs) if not _finished(r)]
        # Members train at once, one per worker on its share of the threads: small products keep two
        # threads of one run busy only part of the time (2 cores: two runs of 6,000 steps in 618 s at
        # once, 409 s and 384 s one after the other). They share the steps of one model.
        for code in map_in_workers(train_member, pending, usable_workers(args.workers), "slow-model worker", "member"):
            _ran(code, "slow world model")
        stage("slow world model")
        hierarchy = ["--hierarchy", "2", "--slow", *(str(r / "world") for r in slow_runs)]
    plan_args = ["--env", entry.name, "--encoder", str(export), "--world", str(world_dir), *hierarchy, *tasks,
                 "--episodes", str(size.eval_episodes),
                 *(["--steps", str(args.steps)] if args.steps is not None else []), "--energy", args.energy, "--goal", args.goal,
                 "--discount", str(args.discount), "--workers", str(args.workers), "--out", str(out / "plan"), "--overwrite"]
    if args.size == "tiny":
        plan_args += ["--samples", "20", "--iterations", "2", "--low-samples", "10", "--low-iterations", "2"]
    _ran(plan_main(parse_plan(plan_args)), "planning")
    stage("planning")
    total = round(time.perf_counter() - t0, 1)
    (out / "pipeline.json").write_text(json.dumps({"env": entry.name, "size": args.size, "hierarchy": args.hierarchy,
                                                   **slow, "stages_s": times, "total_s": total}, indent=2))
    print(f"pipeline finished in {total / 60:.1f} min: {out}/plan/plan.json, trajectories.png, energy.png")
    return 0
