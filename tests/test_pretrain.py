import json
import subprocess
import sys

import pytest
import torch

from jepa.cli import main

from conftest import write_tiny_config
from helpers import read_records


def record_callbacks(path, stop_at=None):
    text = "  callbacks:\n"
    text += f"    - class_path: helpers.Record\n      init_args: {{path: {path}}}\n"
    if stop_at is not None:
        text += f"    - class_path: helpers.StopAt\n      init_args: {{step: {stop_at}}}\n"
    return text


def with_callbacks(cfg_path, callbacks):
    text = cfg_path.read_text().replace("  enable_model_summary: false\n", "  enable_model_summary: false\n" + callbacks)
    cfg_path.write_text(text)
    return cfg_path


def test_pretrain_writes_the_run_directory(tmp_path, capsys):
    import signal

    cfg = write_tiny_config(tmp_path, steps=4)
    handler = signal.getsignal(signal.SIGTERM)
    assert main(["pretrain", "--config", str(cfg)]) == 0
    assert signal.getsignal(signal.SIGTERM) is handler  # nothing of the run's SIGTERM handling outlives it
    run = tmp_path / "run"
    for name in ("config.yaml", "checkpoints/last.ckpt", "metrics.csv", "summary.json"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 4 and summary["samples"] == 32
    assert summary["skipped_inputs"]["count"] == 0 and summary["final_loss"] > 0
    assert summary["probe"]["step0_linear_acc"] is not None and summary["probe"]["final_step"] == 4
    assert summary["wall_time_s"] > 0 and summary["config_hash"] and "torch" in summary["versions"]
    out = capsys.readouterr().out
    assert f"run written to {run}" in out and "at step 0 (random weights)" in out
    # Collapse is reported: the held-out RankMe of the features, out of the most it can be.
    probe = summary["probe"]
    assert 1 <= probe["final_rankme"] <= probe["rankme_max"] == 32 and probe["step0_rankme"] > 0
    assert out.strip().splitlines()[-1].startswith(
        f"held-out RankMe: {probe['step0_rankme']:.1f} at step 0 -> {probe['final_rankme']:.1f} of 32 at step 4")
    # The checkpoint holds only plain types: it loads without unpickling arbitrary objects.
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["global_step"] == 4 and ckpt["hyper_parameters"]["encoder"]["width"] == 32
    header = (run / "metrics.csv").read_text().splitlines()[0]
    for key in ("loss", "probe_acc", "monitor/rankme", "monitor/feature_std", "probe/linear_acc"):
        assert key in header


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_reproduces_the_uninterrupted_losses(tmp_path, workers):
    straight = with_callbacks(write_tiny_config(tmp_path / "a", steps=6, ckpt_every=3, workers=workers),
                              record_callbacks(tmp_path / "a.jsonl"))
    assert main(["pretrain", "--config", str(straight), "--probe.every_n_steps", "3"]) == 0
    first = with_callbacks(write_tiny_config(tmp_path / "b", steps=6, ckpt_every=3, workers=workers),
                           record_callbacks(tmp_path / "b.jsonl", stop_at=3))
    assert main(["pretrain", "--config", str(first), "--probe.every_n_steps", "3"]) == 0
    assert torch.load(tmp_path / "b" / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    # As if the job had died during step 4, after logging it but before any checkpoint of it.
    metrics = tmp_path / "b" / "run" / "metrics.csv"
    rows = metrics.read_text().splitlines()
    metrics.write_text("\n".join([*rows, rows[-1].replace(",2,", ",3,", 1)]) + "\n")
    second = with_callbacks(write_tiny_config(tmp_path / "b", steps=6, ckpt_every=3, workers=workers),
                            record_callbacks(tmp_path / "b.jsonl"))
    assert main(["pretrain", "--config", str(second), "--ckpt_path", "last", "--probe.every_n_steps", "3"]) == 0
    a = [r for r in read_records(tmp_path / "a.jsonl") if "loss" in r]
    b = [r for r in read_records(tmp_path / "b.jsonl") if "loss" in r]
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]  # bit-identical, not merely close
    assert [r["index"] for r in a] == [r["index"] for r in b]
    summary = json.loads((tmp_path / "b" / "run" / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["steps_this_run"] == 3
    # metrics.csv continues the interrupted run's file: the same rows as the uninterrupted run's.
    assert _metric_rows(tmp_path / "b" / "run", "loss") == _metric_rows(tmp_path / "a" / "run", "loss")
    assert len(_metric_rows(tmp_path / "b" / "run", "loss")) == 6
    # ... probe evaluations included: the one at the checkpoint's step is kept, not repeated or lost.
    probes = _metric_rows(tmp_path / "b" / "run", "probe/linear_acc")
    assert [step for step, _ in probes] == [0, 3, 6]
    assert probes == _metric_rows(tmp_path / "a" / "run", "probe/linear_acc")
    # The step-0 baseline of the first session survives the resume.
    assert summary["probe"]["history"][0]["step"] == 0


def _metric_rows(run_dir, key):
    """(step, value) of the rows of metrics.csv that have ``key``."""
    import csv

    with open(run_dir / "metrics.csv", newline="") as f:
        return [(int(r["step"]), float(r[key])) for r in csv.DictReader(f) if r.get(key)]


def test_a_run_directory_is_never_silently_replaced(tmp_path):
    cfg = write_tiny_config(tmp_path, steps=2)
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false"]) == 0
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    saved = last.read_bytes()
    result = run_main("pretrain", "--config", str(cfg), "--probe.enabled", "false", "--trainer.max_steps", "1")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "already holds a run" in lines[0] and "--ckpt_path auto" in lines[0], result.stderr
    assert last.read_bytes() == saved
    # Nor by resuming another run's checkpoint into it.
    other = write_tiny_config(tmp_path / "other", steps=1)
    assert main(["pretrain", "--config", str(other), "--probe.enabled", "false"]) == 0
    result = run_main("pretrain", "--config", str(cfg), "--probe.enabled", "false", "--trainer.max_steps", "3",
                      "--ckpt_path", str(tmp_path / "other" / "run" / "checkpoints" / "last.ckpt"))
    assert result.returncode == 2 and "is another run's checkpoint" in result.stderr, result.stderr[-2000:]
    assert last.read_bytes() == saved
    # A checkpoint cut short by a kill is passed over by --ckpt_path auto (and never becomes last.ckpt:
    # it is written next to it and renamed).
    (tmp_path / "run" / "hpc_ckpt_9.ckpt").write_bytes(saved[: len(saved) // 2])
    from jepa.train.run_cli import newest_checkpoint

    assert newest_checkpoint(str(tmp_path / "run")) == last
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt.tmp").exists()
    # With nothing readable left, --ckpt_path auto refuses instead of starting the run over.
    last.write_bytes(saved[:100])
    result = run_main("pretrain", "--config", str(cfg), "--probe.enabled", "false", "--ckpt_path", "auto")
    assert result.returncode == 2 and "no readable checkpoint in" in result.stderr, result.stderr[-2000:]
    assert last.read_bytes() == saved[:100] and (tmp_path / "run" / "metrics.csv").is_file()


def test_sigterm_saves_the_step_and_exits_nonzero(tmp_path):
    import os
    import signal
    import time

    from helpers import read_records

    cfg = with_callbacks(write_tiny_config(tmp_path, steps=10_000, ckpt_every=10_000),
                         record_callbacks(tmp_path / "rec.jsonl"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    job = subprocess.Popen([sys.executable, "-m", "jepa.cli", "pretrain", "--config", str(cfg), "--probe.enabled", "false"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            if (tmp_path / "rec.jsonl.rank0").exists() and len(read_records(tmp_path / "rec.jsonl")) >= 3:
                break
            assert job.poll() is None, job.stderr.read()[-2000:]
            time.sleep(0.3)
        job.send_signal(signal.SIGTERM)
        _, err = job.communicate(timeout=120)
    finally:
        job.kill()
    assert job.returncode == 143, err[-2000:]
    step = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert step >= 3 and f"stopped by SIGTERM at step {step}" in err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == f"stopped by SIGTERM at step {step}"
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false", "--ckpt_path", "last",
                 "--trainer.max_steps", str(step + 1)]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps_this_run"] == 1


def test_a_signal_during_set_up_stops_the_run_at_its_first_step(tmp_path):
    import signal

    cfg = with_callbacks(write_tiny_config(tmp_path, steps=5),
                         "  callbacks:\n    - class_path: helpers.SignalAtSetup\n      init_args: {signal: 15}\n")
    handler = signal.getsignal(signal.SIGTERM)
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false"]) == 143
    assert signal.getsignal(signal.SIGTERM) is handler
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 1
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "stopped by SIGTERM at step 1"


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "jepa.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def run_main(*args) -> subprocess.CompletedProcess:
    """``jepa *args`` in this process (no interpreter and torch start-up: seconds saved per call), its
    output captured as run_cli captures a subprocess's. For checks that end before any training."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exn:
            code = exn.code
    return subprocess.CompletedProcess(["jepa", *args], code, out.getvalue(), err.getvalue())


@pytest.mark.parametrize(
    "override, message",
    [
        (["--model.encoder.sise", "tiny"], "sise"),
        (["--model.encoder.depth", "deep"], "depth"),
        (["--data.train", "/no/such/folder"], "data folder /no/such/folder does not exist"),
        (["--data.image_size", "18"], "not divisible by patch size 4"),
        (["--ckpt_path", "last"], "checkpoint .*last.ckpt does not exist"),
        (["--trainer.max_steps", "-1"], "set trainer.max_steps"),
    ],
)
def test_bad_input_ends_in_one_clear_line(tmp_path, override, message):
    import re

    cfg = write_tiny_config(tmp_path, steps=1)
    result = run_main("pretrain", "--config", str(cfg), *override)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert re.search(message, lines[0]), lines[0]


def test_unknown_key_in_config_file_is_named(tmp_path):
    cfg = write_tiny_config(tmp_path, steps=1, extra="modle:\n  foo: 1\n")
    result = run_main("pretrain", "--config", str(cfg))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "modle" in result.stderr and "did you mean model?" in result.stderr


def test_undecodable_images_are_counted_in_the_summary(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (16, 16), (i * 20, 50, 0)).save(tmp_path / "imgs" / cls / f"{i}.png")
    (tmp_path / "imgs" / "a" / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    cfg = write_tiny_config(tmp_path, steps=4, train=str(tmp_path / "imgs"))
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # 21 images, 4 batches of 8 over 2 epochs: the bad one is drawn at least once.
    assert summary["skipped_inputs"]["count"] >= 1
    assert "bad.jpg" in summary["skipped_inputs"]["examples"][0]


def test_resuming_with_another_architecture_is_refused_in_one_line(tmp_path):
    cfg = write_tiny_config(tmp_path, steps=2)
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false"]) == 0
    before = {n: (tmp_path / "run" / n).read_bytes() for n in ("config.yaml", "metrics.csv", "summary.json")}
    result = run_main("pretrain", "--config", str(cfg), "--ckpt_path", "last", "--model.encoder.width", "64",
                     "--trainer.max_steps", "4")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: the checkpoint was trained with model.encoder=") and "width" in lines[0]
    # The refused resume leaves the run as it was: its own config, its metrics, its summary.
    for name, content in before.items():
        assert (tmp_path / "run" / name).read_bytes() == content, name


def test_ckpt_path_auto_starts_fresh_then_resumes(tmp_path):
    cfg = write_tiny_config(tmp_path, steps=2)
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false", "--ckpt_path", "auto"]) == 0
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false", "--ckpt_path", "auto",
                 "--trainer.max_steps", "3"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["steps_this_run"] == 1
