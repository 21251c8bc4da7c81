"""``jepa launch {slurm,torchrun}``: render a job script from ``launch/`` and submit or run it.

Nothing is submitted when a check fails: devices that disagree with the config, no ``sbatch`` on
this machine, or a run directory that already holds a run of another config.
"""

from __future__ import annotations

import argparse
import copy
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from .commandline import add_subcommands, add_subparser, new_parser, parse
from .errors import JEPAError
from .shipped import resolve_config, template
from .train.commands import config_argv


def _template(name: str, override: str | None) -> str:
    path = Path(override) if override else template(name)
    if not path.is_file():
        raise JEPAError(f"launch template {path} not found: pass an existing --template")
    return path.read_text()


def _read_config(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise JEPAError(f"config file {path} does not exist")
    try:
        return yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exn:
        raise JEPAError(f"{path} is not valid YAML ({str(exn).splitlines()[0]})") from None


def apply_overrides(cfg: dict[str, Any], extra: list[str]) -> dict[str, Any]:
    """``cfg`` with the dotted ``--a.b value`` / ``--a.b=value`` overrides of ``extra`` applied, so
    that the launch checks see what the job will run with."""
    cfg = copy.deepcopy(cfg)
    i = 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--") or arg == "--":
            i += 1
            continue
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        elif i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            key, value = arg[2:], extra[i + 1]
            i += 2
        else:  # a bare flag such as --print_config
            i += 1
            continue
        *parents, leaf = key.split(".")
        node = cfg
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError:
            node[leaf] = value
    return cfg


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree}


def check_devices(cfg: dict[str, Any], nodes: int, devices: int, path: str, flag: str = "--gpus-per-node") -> None:
    # The node count may differ from the config's (the job line sets trainer.num_nodes; the global
    # batch is nodes x devices x data.batch_size); devices per node must be what the config says.
    cfg_devices = (cfg.get("trainer") or {}).get("devices")
    if isinstance(cfg_devices, int) and cfg_devices not in (-1, devices):
        raise JEPAError(
            f"{flag} {devices} does not match trainer.devices: {cfg_devices} in {path} "
            f"(set it there or pass -- --trainer.devices {devices})"
        )


def _comparable(value: Any) -> Any:
    """Numbers as floats (YAML reads ``1e-3`` as a string, the config parser as 0.001), tuples as lists."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    return value


def check_run_dir(run_dir: Path, cfg: dict[str, Any]) -> None:
    """Refuses a run directory whose config.yaml has other model or data settings than ``cfg``."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    saved = _leaves({k: (yaml.safe_load(saved_path.read_text()) or {}).get(k) for k in ("model", "data")})
    for key, value in _leaves({k: cfg.get(k) for k in ("model", "data") if cfg.get(k) is not None}).items():
        if key in saved and _comparable(saved[key]) != _comparable(value):
            raise JEPAError(
                f"run directory {run_dir} holds a run of another config ({key}: {saved[key]!r} there, "
                f"{value!r} here): choose another run_dir"
            )


def _plan(args: argparse.Namespace, nodes: int, devices: int, flag: str) -> tuple[dict[str, Any], Path, list[str]]:
    extra = list(args.extra)
    if extra and extra[0] == "--":
        extra = extra[1:]
    extra = config_argv(extra)  # --out and hyphenated keys in the spelling the overrides are read in
    cfg = apply_overrides(_read_config(args.config), extra)
    check_devices(cfg, nodes, devices, args.config, flag)
    run_dir = Path(str(cfg.get("run_dir") or "runs/default")).resolve()  # --run_dir overrides applied
    check_run_dir(run_dir, cfg)
    extra = [a for i, a in enumerate(extra) if not (a == "--run_dir" or a.startswith("--run_dir=")
                                                     or (i and extra[i - 1] == "--run_dir"))]
    return cfg, run_dir, extra


def render_slurm(args: argparse.Namespace) -> tuple[str, Path]:
    cfg, run_dir, extra = _plan(args, args.nodes, args.gpus_per_node, "--gpus-per-node")
    optional = []
    for flag, value in (("partition", args.partition), ("account", args.account), ("qos", args.qos), ("mem", args.mem)):
        if value:
            optional.append(f"#SBATCH --{flag}={value}")
    script = _template("slurm.sbatch", args.template).format(
        job_name=args.job_name or f"jepa-{run_dir.name}",
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        cpus_per_task=args.cpus_per_task,
        time=args.time,
        run_dir=shlex.quote(str(run_dir)),
        optional_directives="\n".join(optional),
        workdir=shlex.quote(str(Path.cwd())),
        jepa=shlex.quote(shutil.which("jepa") or "jepa"),
        config=shlex.quote(str(Path(args.config).resolve())),
        extra="".join(" " + shlex.quote(a) for a in extra),
    )
    return script.replace("\n\nset -euo", "\nset -euo"), run_dir


def render_torchrun(args: argparse.Namespace) -> tuple[str, Path]:
    cfg, run_dir, extra = _plan(args, args.nnodes, args.nproc_per_node, "--nproc-per-node")
    if not re.fullmatch(r"[\w.\-\[\]:]+:\d+", args.rdzv_endpoint):
        raise JEPAError(f"--rdzv-endpoint must be HOST:PORT, got {args.rdzv_endpoint!r}")
    script = _template("torchrun.sh", args.template).format(
        workdir=shlex.quote(str(Path.cwd())),
        python=shlex.quote(sys.executable),
        nnodes=args.nnodes,
        nproc_per_node=args.nproc_per_node,
        rdzv_endpoint=args.rdzv_endpoint,
        rdzv_id=args.rdzv_id or f"jepa-{run_dir.name}",
        config=shlex.quote(str(Path(args.config).resolve())),
        run_dir=shlex.quote(str(run_dir)),
        extra="".join(" " + shlex.quote(a) for a in extra),
    )
    return script, run_dir


def _write_script(script: str, run_dir: Path, suffix: str) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir.parent / f"{run_dir.name}.{suffix}"
    path.write_text(script)
    path.chmod(0o755)
    return path


def slurm_main(args: argparse.Namespace) -> int:
    if args.submitit:
        return submitit_main(args)
    script, run_dir = render_slurm(args)
    if args.dry_run:
        print(script)
        return 0
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise JEPAError("sbatch not found on this machine: submit from a SLURM login node, or print the script with --dry-run")
    path = _write_script(script, run_dir, "sbatch")
    result = subprocess.run([sbatch, str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise JEPAError(f"sbatch refused {path}: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    print(f"{result.stdout.strip()} (script {path}, logs {run_dir}/slurm-<jobid>.out)")
    return 0


def submitit_main(args: argparse.Namespace) -> int:
    """The same job through submitit, for users who prefer it (needs ``pip install submitit``)."""
    cfg, run_dir, extra = _plan(args, args.nodes, args.gpus_per_node, "--gpus-per-node")
    command = ["jepa", "pretrain", "--config", str(Path(args.config).resolve()), "--run_dir", str(run_dir),
               "--trainer.num_nodes", str(args.nodes), "--trainer.devices", str(args.gpus_per_node),
               "--ckpt_path", "auto", *extra]
    h, m, s = (int(x) for x in args.time.split(":"))
    params = dict(nodes=args.nodes, tasks_per_node=args.gpus_per_node, gpus_per_node=args.gpus_per_node,
                  cpus_per_task=args.cpus_per_task, timeout_min=h * 60 + m + (s > 0), slurm_signal_delay_s=90,
                  slurm_partition=args.partition, slurm_account=args.account, slurm_qos=args.qos, slurm_mem=args.mem,
                  slurm_additional_parameters={"requeue": True, "open-mode": "append"})
    params = {k: v for k, v in params.items() if v is not None}
    if args.dry_run:
        print(f"submitit parameters: {params}\ncommand: {shlex.join(command)}")
        return 0
    try:
        import submitit
    except ImportError:
        raise JEPAError("--submitit needs the submitit package: pip install submitit") from None
    executor = submitit.AutoExecutor(folder=str(run_dir / "submitit"))
    executor.update_parameters(**params)
    job = executor.submit(submitit.helpers.CommandFunction(command, cwd=str(Path.cwd())))
    print(f"submitted job {job.job_id} (logs {run_dir / 'submitit'})")
    return 0


def torchrun_main(args: argparse.Namespace) -> int:
    script, run_dir = render_torchrun(args)
    if args.dry_run:
        print(script)
        return 0
    path = _write_script(script, run_dir, "torchrun.sh")
    print(f"running {path} ({time.strftime('%H:%M:%S')})", flush=True)
    return subprocess.run(["bash", str(path)]).returncode


def launch_parser() -> argparse.ArgumentParser:
    p = new_parser("jepa launch", "Render and submit distributed pretraining jobs: one process per GPU, checkpoints "
                   "and requeue on preemption or at the time limit, resume with --ckpt_path auto.",
                   ["jepa launch slurm --config configs/image/ijepa_vit_h14_in1k.yaml --nodes 2 --gpus-per-node 8"])
    sub = add_subcommands(p, "launchers", dest="where")
    s = add_subparser(sub, "slurm", "sbatch job: one task per GPU, auto-requeue on preemption and time limit",
                      "Render launch/slurm.sbatch for a config and submit it with sbatch (or submitit).",
                      ["jepa launch slurm --config configs/image/ijepa_vit_h14_in1k.yaml --nodes 2 --gpus-per-node 8 "
                       "--partition learn --time 72:00:00 -- --data.train /datasets/imagenet/train",
                       "jepa launch slurm --config quickstart --nodes 1 --gpus-per-node 1 --dry-run"])
    s.add_argument("--config", required=True, help="a pretraining config: a path or a shipped config's name (required)")
    s.add_argument("--nodes", type=int, required=True, help="nodes to allocate (required)")
    s.add_argument("--gpus-per-node", type=int, required=True,
                   help="GPUs (= tasks) per node; must match the config's trainer.devices (required)")
    s.add_argument("--partition", help="SLURM partition (default: the cluster's)")
    s.add_argument("--account", help="SLURM account (default: the user's)")
    s.add_argument("--qos", help="SLURM quality of service (default: the cluster's)")
    s.add_argument("--time", default="24:00:00", help="time limit, HH:MM:SS")
    s.add_argument("--cpus-per-task", type=int, default=10, help="CPU cores per task (data workers)")
    s.add_argument("--mem", help="memory per node, e.g. 480G (default: the cluster's)")
    s.add_argument("--job-name", help="job name (default: jepa-<run folder name>)")
    s.add_argument("--template", help="an sbatch template other than the shipped slurm.sbatch")
    s.add_argument("--submitit", action="store_true", help="submit through submitit instead of sbatch")
    s.add_argument("--dry-run", action="store_true", help="print the script, submit nothing")
    s.add_argument("extra", nargs=argparse.REMAINDER, help="-- then extra `jepa pretrain` overrides")
    t = add_subparser(sub, "torchrun", "torchrun on this node (run the same command on every node)",
                      "Render launch/torchrun.sh for a config and run it here; on several nodes run it on each.",
                      ["jepa launch torchrun --config configs/image/ijepa_vit_h14_in1k.yaml --nproc-per-node 8"])
    t.add_argument("--config", required=True, help="a pretraining config: a path or a shipped config's name (required)")
    t.add_argument("--nnodes", type=int, default=1, help="nodes taking part")
    t.add_argument("--nproc-per-node", type=int, required=True, help="processes (GPUs) on this node (required)")
    t.add_argument("--rdzv-endpoint", default="localhost:29500", help="HOST:PORT of the rendezvous (node 0)")
    t.add_argument("--rdzv-id", help="rendezvous id (default: jepa-<run folder name>)")
    t.add_argument("--template", help="a script template other than the shipped torchrun.sh")
    t.add_argument("--dry-run", action="store_true", help="print the script, run nothing")
    t.add_argument("extra", nargs=argparse.REMAINDER, help="-- then extra `jepa pretrain` overrides")
    return p


def launch_main(argv: list[str]) -> int:
    args = parse(launch_parser(), argv)
    args.config = resolve_config(args.config)
    if args.where == "slurm":
        if not re.fullmatch(r"\d+:\d{2}:\d{2}", args.time):
            raise JEPAError(f"--time must be HH:MM:SS, got {args.time!r}")
        return slurm_main(args)
    return torchrun_main(args)
