"""jepa launch: sbatch rendering, SLURM-simulated ranks, SIGUSR1 preemption and requeue, torchrun."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import yaml

from conftest import REPO, write_tiny_config
from helpers import read_records
from test_pretrain import record_callbacks, with_callbacks


def jepa(*args, env=None, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "jepa.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_bin(tmp_path, name, record):
    """An executable `name` that appends its arguments to `record` and succeeds."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / name
    exe.write_text(f"#!/bin/sh\necho \"$@\" >> {record}\necho 'Submitted batch job 777'\n")
    exe.chmod(0o755)
    return bindir


def test_sbatch_for_4_nodes_of_8_gpus(tmp_path):
    cfg = REPO / "configs" / "image" / "ijepa_vit_h14_in1k.yaml"
    run_dir = tmp_path / "h14"
    result = jepa("launch", "slurm", "--config", str(cfg), "--nodes", "4", "--gpus-per-node", "8",
                  "--partition", "learn", "--account", "vision", "--qos", "high", "--time", "72:00:00",
                  "--cpus-per-task", "12", "--mem", "480G", "--dry-run", "--", "--run_dir", str(run_dir),
                  "--data.batch_size", "64")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for expected in ("#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8",
                     "#SBATCH --signal=SIGUSR1@90", "#SBATCH --requeue", "#SBATCH --open-mode=append",
                     "#SBATCH --partition=learn", "#SBATCH --account=vision", "#SBATCH --qos=high",
                     "#SBATCH --time=72:00:00", "#SBATCH --cpus-per-task=12", "#SBATCH --mem=480G",
                     f"#SBATCH --output={run_dir}/slurm-%j.out"):
        assert expected in lines, expected
    srun = [line for line in lines if line.startswith("srun ")]
    assert len(srun) == 1
    words = srun[0].split()
    assert words[2] == "pretrain" and f"--run_dir {run_dir}" in srun[0]
    assert "--trainer.num_nodes 4 --trainer.devices 8" in srun[0]  # matches the allocation: 4 x 8 tasks
    assert "--ckpt_path auto" in srun[0] and srun[0].endswith("--data.batch_size 64")
    assert not run_dir.exists()  # a dry run writes and submits nothing


def test_dry_run_submits_nothing_and_real_run_calls_sbatch(tmp_path):
    cfg = write_tiny_config(tmp_path, steps=1)
    record = tmp_path / "sbatch.calls"
    env = {**os.environ, "PATH": f"{fake_bin(tmp_path, 'sbatch', record)}:{os.environ['PATH']}"}
    args = ("launch", "slurm", "--config", str(cfg), "--nodes", "1", "--gpus-per-node", "1")
    assert jepa(*args, "--dry-run", env=env).returncode == 0
    assert not record.exists()
    result = jepa(*args, env=env)
    assert result.returncode == 0, result.stderr
    script = tmp_path / "run.sbatch"
    assert record.read_text().strip() == str(script) and "#SBATCH --requeue" in script.read_text()
    assert "Submitted batch job 777" in result.stdout


def one_line_error(result, text):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and text in lines[0], result.stderr[-2000:]


def test_launch_refusals_submit_nothing(tmp_path):
    cfg = write_tiny_config(tmp_path, steps=1)  # trainer.devices: 1
    record = tmp_path / "sbatch.calls"
    env = {**os.environ, "PATH": f"{fake_bin(tmp_path, 'sbatch', record)}:{os.environ['PATH']}"}
    one_line_error(jepa("launch", "slurm", "--config", str(cfg), "--nodes", "1", "--gpus-per-node", "4", env=env),
                   "--gpus-per-node 4 does not match trainer.devices: 1")
    no_sbatch = {**os.environ, "PATH": "/usr/bin:/bin"}
    one_line_error(jepa("launch", "slurm", "--config", str(cfg), "--nodes", "1", "--gpus-per-node", "1",
                        "--partition", "gpu", env=no_sbatch), "sbatch not found")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    saved = yaml.safe_load(cfg.read_text())
    saved["model"]["encoder"]["width"] = 64
    (run_dir / "config.yaml").write_text(yaml.safe_dump(saved))
    one_line_error(jepa("launch", "slurm", "--config", str(cfg), "--nodes", "1", "--gpus-per-node", "1", env=env),
                   "holds a run of another config (model.encoder.width: 64 there, 32 here)")
    # Overrides after -- count: the same config file, changed on the command line, is another config.
    saved["model"]["encoder"]["width"] = 32
    (run_dir / "config.yaml").write_text(yaml.safe_dump(saved))
    one_line_error(jepa("launch", "slurm", "--config", str(cfg), "--nodes", "1", "--gpus-per-node", "1", "--",
                        "--model.encoder.depth=3", env=env), "(model.encoder.depth: 2 there, 3 here)")
    assert not record.exists()
    # ... and a device count set on the command line is the one checked.
    ok = jepa("launch", "slurm", "--config", str(cfg), "--nodes", "1", "--gpus-per-node", "4", "--dry-run", "--",
              "--trainer.devices", "4", env=env)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout.count("--trainer.devices 4") == 2 and not record.exists()  # the template's and the override
    # A number written as YAML reads it (1e-3, a string there) is the value the saved config has.
    saved["model"]["optim"] = {"lr": 0.001}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(saved))
    same = jepa("launch", "slurm", "--config", str(cfg), "--nodes", "1", "--gpus-per-node", "1", "--dry-run", "--",
                "--model.optim.lr", "1e-3", env=env)
    assert same.returncode == 0, same.stderr[-2000:]


def slurm_env(rank, ntasks, job_id, port, path=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "MASTER_", "RANK", "LOCAL_RANK", "WORLD_SIZE"))}
    env.update(SLURM_NTASKS=str(ntasks), SLURM_NTASKS_PER_NODE=str(ntasks), SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), SLURM_NODEID="0",
               SLURM_NNODES="1", SLURM_JOB_ID=str(job_id), SLURM_JOB_NAME="jepa-test", SLURM_NODELIST="127.0.0.1",
               MASTER_PORT=str(port))
    if path:
        env["PATH"] = f"{path}:{env['PATH']}"
    return env


def test_two_tasks_take_rank_and_world_size_from_slurm(tmp_path):
    cfg = with_callbacks(write_tiny_config(tmp_path, steps=2), record_callbacks(tmp_path / "rec.jsonl"))
    port = free_port()
    cmd = [sys.executable, "-m", "jepa.cli", "pretrain", "--config", str(cfg), "--trainer.devices", "2",
           "--trainer.strategy", "ddp", "--probe.enabled", "false"]
    # Started the way srun starts tasks: every process at once, each with its own SLURM_PROCID.
    procs = [subprocess.Popen(cmd, env=slurm_env(r, 2, 5151, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    for rank in range(2):
        steps = [r for r in read_records(tmp_path / "rec.jsonl", rank) if "loss" in r]
        assert len(steps) == 2 and all(r["rank"] == rank and r["world"] == 2 for r in steps)
    first = [set(r["index"]) for r in (read_records(tmp_path / "rec.jsonl", k)[0] for k in range(2))]
    assert not first[0] & first[1]


def test_sigusr1_checkpoints_requeues_and_the_next_start_resumes(tmp_path):
    run_dir = tmp_path / "run"
    cfg = with_callbacks(write_tiny_config(tmp_path, steps=10_000, ckpt_every=10_000),
                         record_callbacks(tmp_path / "rec.jsonl"))
    calls = tmp_path / "scontrol.calls"
    env = slurm_env(0, 1, 90210, free_port(), path=fake_bin(tmp_path, "scontrol", calls))
    cmd = [sys.executable, "-m", "jepa.cli", "pretrain", "--config", str(cfg), "--probe.enabled", "false",
           "--ckpt_path", "auto"]
    job = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            recs = read_records(tmp_path / "rec.jsonl") if (tmp_path / "rec.jsonl.rank0").exists() else []
            if len(recs) >= 3:
                break
            assert job.poll() is None, job.stderr.read()[-2000:]
            time.sleep(0.5)
        job.send_signal(signal.SIGUSR1)  # SLURM's warning before the time limit (--signal=SIGUSR1@90)
        _, err = job.communicate(timeout=120)
    finally:
        job.kill()
    # The step in hand is finished and saved, then the job is requeued, and it exits 128 + SIGUSR1.
    assert job.returncode == 128 + signal.SIGUSR1, err[-2000:]
    assert calls.read_text().split() == ["requeue", "90210"]
    saved_step = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert saved_step >= 3 and saved_step == [r for r in read_records(tmp_path / "rec.jsonl") if "loss" in r][-1]["step"]
    assert f"stopped by SIGUSR1 at step {saved_step}" in err and "the job was requeued" in err
    stop = json.loads((run_dir / "summary.json").read_text())["stop"]
    assert stop["signal"] == "SIGUSR1" and stop["requeued"] is True and stop["step"] == saved_step
    (tmp_path / "rec.jsonl.rank0").unlink()
    # The requeued job runs the same command; it stops after two more steps here.
    restarted = with_callbacks(write_tiny_config(tmp_path, steps=10_000, ckpt_every=10_000),
                               record_callbacks(tmp_path / "rec.jsonl", stop_at=saved_step + 2))
    result = subprocess.run([*cmd[:5], str(restarted), *cmd[6:]], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    steps = [r["step"] for r in read_records(tmp_path / "rec.jsonl") if "loss" in r]
    assert steps == [saved_step + 1, saved_step + 2]


def test_torchrun_two_processes_on_cpu(tmp_path):
    cfg = with_callbacks(write_tiny_config(tmp_path, steps=2), record_callbacks(tmp_path / "rec.jsonl"))
    cfg.write_text(cfg.read_text().replace("  devices: 1\n", "  devices: 2\n"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    result = jepa("launch", "torchrun", "--config", str(cfg), "--nproc-per-node", "2",
                  "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--", "--probe.enabled", "false",
                  "--trainer.strategy", "ddp", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in range(2):
        steps = [r for r in read_records(tmp_path / "rec.jsonl", rank) if "loss" in r]
        assert [r["world"] for r in steps] == [2, 2] and steps[0]["env_rank"] == str(rank)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["world_size"] == 2


def test_fsdp_config_parses_and_strategy_wraps_blocks(tmp_path):
    from timm.models.vision_transformer import Block

    from jepa.train.strategies import BlockFSDPStrategy

    result = jepa("pretrain", "--config", str(REPO / "configs" / "image" / "ijepa_vit_h14_in1k_fsdp.yaml"),
                  "--print_config")
    assert result.returncode == 0, result.stderr[-2000:]
    printed = yaml.safe_load(result.stdout)
    assert printed["trainer"]["strategy"]["class_path"] == "jepa.train.strategies.BlockFSDPStrategy"
    assert printed["trainer"]["precision"] == "bf16-mixed"
    strategy = BlockFSDPStrategy()
    assert strategy.kwargs["use_orig_params"] is True
    assert strategy._state_dict_type == "sharded"
    assert Block in strategy.kwargs["auto_wrap_policy"]._module_classes
    assert strategy._activation_checkpointing_kwargs
    # The short name documented in docs/clusters.md resolves to the same strategy.
    from jepa.train.run import build_cli

    cli = build_cli(["--config", str(REPO / "configs" / "quickstart.yaml"), "--run_dir", str(tmp_path / "run"),
                     "--trainer.strategy", "jepa_fsdp", "--trainer.accelerator", "cpu", "--trainer.logger", "false"])
    assert type(cli.trainer.strategy) is BlockFSDPStrategy


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FSDP needs a GPU")
def test_fsdp_trains_on_gpu(tmp_path):
    cfg = write_tiny_config(tmp_path, steps=3)  # sharded last.ckpt at step 2, replaced at step 3
    gpu = ["--trainer.accelerator", "gpu", "--trainer.strategy", "jepa_fsdp", "--trainer.precision", "bf16-mixed"]
    result = jepa("pretrain", "--config", str(cfg), *gpu)
    assert result.returncode == 0, result.stderr[-2000:]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert last.is_dir() and (last / "meta.pt").is_file()
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # no .tmp or .old left
    assert torch.load(last / "meta.pt", weights_only=True)["global_step"] == 3
    exported = jepa("export", str(last), str(tmp_path / "export"))
    assert exported.returncode == 0, exported.stderr[-2000:]
    resumed = jepa("pretrain", "--config", str(cfg), *gpu, "--ckpt_path", "auto", "--trainer.max_steps", "5")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 5 and summary["steps_this_run"] == 2


def test_sigterm_to_one_of_two_ranks_stops_both_at_the_same_step(tmp_path):
    cfg = with_callbacks(write_tiny_config(tmp_path, steps=10_000, ckpt_every=10_000),
                         record_callbacks(tmp_path / "rec.jsonl"))
    cmd = [sys.executable, "-m", "jepa.cli", "pretrain", "--config", str(cfg), "--trainer.devices", "2",
           "--trainer.strategy", "ddp", "--probe.enabled", "false"]
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "LOCAL_RANK", "WORLD_SIZE"))}
    # Started as torchrun starts ranks (its environment variables), so no rank forwards signals to another.
    envs = [{**base, "RANK": str(r), "LOCAL_RANK": str(r), "GROUP_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "TORCHELASTIC_RUN_ID": "t"} for r in range(2)]
    procs = [subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for e in envs]
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            if (tmp_path / "rec.jsonl.rank1").exists() and len(read_records(tmp_path / "rec.jsonl", 1)) >= 3:
                break
            assert all(p.poll() is None for p in procs), procs[0].stderr.read()[-2000:]
            time.sleep(0.3)
        procs[1].send_signal(signal.SIGTERM)
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [143, 143], outs[0][1][-1500:] + outs[1][1][-1500:]
    last = [[r["step"] for r in read_records(tmp_path / "rec.jsonl", r) if "loss" in r][-1] for r in range(2)]
    step = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert last[0] == last[1] == step >= 3
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == f"stopped by SIGTERM at step {step}"
