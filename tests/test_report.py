"""Inspecting runs: jepa report (summary lines and report.png), loggers beside metrics.csv, and
progress written to a file as lines."""

from __future__ import annotations

import csv
import json
import re

import pytest

from jepa.cli import main

from conftest import write_tiny_config


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """One tiny run with TensorBoard beside the CSV logger and the end-of-run report on."""
    tmp = tmp_path_factory.mktemp("report")
    cfg = write_tiny_config(tmp, steps=6)
    code = main(["pretrain", "--config", str(cfg), "--report", "true", "--trainer.logger", "TensorBoardLogger",
                 "--trainer.logger.save_dir", str(tmp / "tb"), "--trainer.enable_progress_bar", "true"])
    assert code == 0
    return tmp


def test_a_user_logger_writes_beside_metrics_csv(logged_run, capsys):
    assert list((logged_run / "tb").rglob("events.out.tfevents.*")), "no TensorBoard event file"
    with open(logged_run / "run" / "metrics.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r.get("loss")]
    assert steps == list(range(6))


def test_the_run_writes_report_png_and_jepa_report_prints_its_figures(logged_run, tmp_path, capsys):
    png = logged_run / "run" / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    summary = json.loads((logged_run / "run" / "summary.json").read_text())
    assert main(["report", str(logged_run / "run"), "--out", str(tmp_path / "r.png")]) == 0
    out = capsys.readouterr().out
    assert f"{summary['status']}; {summary['steps']} steps" in out
    probe = summary["probe"]
    assert (f"linear probe {100 * probe['step0_linear_acc']:.1f}% at step 0 -> "
            f"{100 * probe['final_linear_acc']:.1f}% at step 6") in out
    assert f"final loss {summary['final_loss']:.4f}" in out and "RankMe" in out
    assert "skipped inputs: 0" in out and (tmp_path / "r.png").stat().st_size > 20_000


def test_report_overlays_runs_and_draws_world_model_errors(logged_run, tmp_path, capsys):
    world = tmp_path / "world"
    world.mkdir()
    (world / "metrics.csv").write_text("epoch,step,train/loss\n0,0,1.0\n0,1,0.5\n")
    (world / "summary.json").write_text(json.dumps({"status": "finished", "steps": 2, "open_loop_val": {
        "model": [0.1, 0.2], "copy_last": [0.3, 0.6]}, "position_probe_error_q99": 0.04}))
    assert main(["report", str(logged_run / "run"), str(world), "--out", str(tmp_path / "both.png")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"open-loop L1, horizon 1..2: model 0.100 0.200 \| copy-last 0.300 0.600", out)
    assert "position probe 99% error 0.0400" in out and (tmp_path / "both.png").stat().st_size > 20_000


def test_report_says_when_a_run_diverged_or_was_killed(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("epoch,step,loss\n0,0,1.0\n0,1,0.5\n0,2,nan\n0,3,nan\n")
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "no summary.json" in out and "4 steps" in out and "the loss became nan at step 2" in out
    (run / "summary.json").write_text(json.dumps({"status": "finished", "steps": 2}))  # an earlier start's
    assert main(["report", str(run)]) == 0
    assert "4 steps logged after summary.json's (finished): killed since" in capsys.readouterr().out
    (run / "metrics.csv").write_text("epoch,step,probe/linear_acc\n")  # nothing logged yet: the summary stands
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "finished; 2 steps" in out and "no picture: nothing to draw" in out


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a run folder" in err
    assert main(["report", str(tmp_path), str(tmp_path)]) == 2  # two runs, one picture: it needs a name
    assert "name it with --out" in capsys.readouterr().err


def test_a_missing_logger_package_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    import lightning_fabric.loggers.tensorboard as fabric_tb

    monkeypatch.setattr(fabric_tb, "_TENSORBOARD_AVAILABLE", False)
    monkeypatch.setattr(fabric_tb, "_TENSORBOARDX_AVAILABLE", False)
    cfg = write_tiny_config(tmp_path, steps=1)
    assert main(["pretrain", "--config", str(cfg), "--trainer.logger", "TensorBoardLogger"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'jepa[tensorboard]'" in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_progress_to_a_file_is_a_line_every_few_percent():
    import io

    from jepa.progress import Progress

    stream = io.StringIO()
    progress = Progress(200, "steps", stream=stream, every=0.1)
    for step in range(1, 201):
        progress.update(step, f"loss {1 / step:.3f}")
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 10
    assert lines[0].startswith("20/200 steps (10%") and lines[-1].startswith("200/200 steps (100%")
