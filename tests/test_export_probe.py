import json
import subprocess
import sys

import pytest
import torch

from jepa.errors import JEPAError

from conftest import write_tiny_config
from test_pretrain import run_main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-step tiny run and its export: (checkpoint path, export dir)."""
    from jepa.cli import main

    tmp = tmp_path_factory.mktemp("run")
    cfg = write_tiny_config(tmp, steps=3)
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false"]) == 0
    ckpt = tmp / "run" / "checkpoints" / "last.ckpt"
    assert main(["export", str(ckpt), str(tmp / "export")]) == 0
    return ckpt, tmp / "export"


def _module_from_ckpt(ckpt_path):
    from jepa.models import EncoderConfig, PredictorConfig
    from jepa.train.module import PretrainModule

    ckpt = torch.load(ckpt_path, weights_only=True)
    hp = ckpt["hyper_parameters"]
    module = PretrainModule(EncoderConfig(**hp["encoder"]), PredictorConfig(**hp["predictor"]),
                            image_size=hp["image_size"], num_classes=hp["num_classes"])
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()


def test_round_trip_features_identical_to_training_module_and_timm(trained):
    import jepa
    from jepa.export import timm_encoder

    ckpt, export = trained
    module = _module_from_ckpt(ckpt)
    enc = jepa.load_encoder(export)
    assert not enc.training and all(not p.requires_grad for p in enc.parameters())
    x = torch.randn(4, 3, 16, 16)
    tokens = enc(x)
    assert tokens.shape == (4, 16, 32)
    assert torch.equal(tokens, module.target_encoder(x))
    assert torch.equal(enc.features(x), module.pooled_features(x))
    # Target (EMA) by default; the context encoder on request, and they differ after training.
    config = json.loads((export / "config.json").read_text())
    assert config["which"] == "target" and config["step"] == 3 and config["patch_size"] == 4
    assert not torch.equal(module.encoder(x), module.target_encoder(x))
    mean, std = torch.tensor(config["normalization"]["mean"]), torch.tensor(config["normalization"]["std"])
    torch.testing.assert_close(enc.normalize(torch.ones(2, 3, 4, 4))[1, :, 3, 3], (1 - mean) / std)
    timm_model = timm_encoder(export)
    torch.testing.assert_close(timm_model(x), enc.features(x), rtol=0, atol=1e-5)


def test_export_context_encoder(trained, tmp_path):
    import os

    from jepa.export import export_checkpoint, load_encoder

    ckpt, _ = trained
    export_checkpoint(ckpt, tmp_path / "ctx", which="context")
    module = _module_from_ckpt(ckpt)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(load_encoder(tmp_path / "ctx")(x), module.encoder(x))
    # Readable like any file the user writes (safetensors alone would leave it 0600).
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "ctx" / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    # An existing export is replaced only on request, and its stale probe results go with it.
    (tmp_path / "ctx" / "probe-knn").mkdir()
    (tmp_path / "ctx" / "probe-knn" / "probe.json").write_text("{}")
    (tmp_path / "ctx" / "probe-notes").mkdir()  # not written by jepa probe: kept
    with pytest.raises(JEPAError, match="already holds an export .* pass --overwrite"):
        export_checkpoint(ckpt, tmp_path / "ctx")
    assert (tmp_path / "ctx" / "probe-knn").is_dir()
    export_checkpoint(ckpt, tmp_path / "ctx", overwrite=True)
    assert json.loads((tmp_path / "ctx" / "config.json").read_text())["which"] == "target"
    assert not (tmp_path / "ctx" / "probe-knn").exists() and (tmp_path / "ctx" / "probe-notes").is_dir()
    assert not list((tmp_path / "ctx").glob(".*tmp*"))


def test_export_refuses_files_that_are_not_checkpoints(tmp_path):
    from jepa.export import export_checkpoint

    bogus = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, bogus)
    with pytest.raises(JEPAError, match="not a checkpoint of this framework"):
        export_checkpoint(bogus, tmp_path / "out")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(JEPAError, match="not a checkpoint of this framework"):
        export_checkpoint(garbage, tmp_path / "out")
    with pytest.raises(JEPAError, match="does not exist"):
        export_checkpoint(tmp_path / "missing.ckpt", tmp_path / "out")


def test_load_encoder_refuses_missing_corrupt_and_mismatched(trained, tmp_path):
    import shutil

    from jepa.export import load_encoder

    _, export = trained
    bad = tmp_path / "bad"
    shutil.copytree(export, bad)
    (bad / "model.safetensors").write_bytes((export / "model.safetensors").read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(JEPAError, match="checksum"):
        load_encoder(bad)
    shutil.copy(export / "model.safetensors", bad / "model.safetensors")
    config = json.loads((bad / "config.json").read_text())
    config["width"] = 64
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(JEPAError, match="does not fit config.json"):
        load_encoder(bad)
    (bad / "model.safetensors").unlink()
    with pytest.raises(JEPAError, match="model.safetensors does not exist"):
        load_encoder(bad)
    with pytest.raises(JEPAError, match="config.json does not exist"):
        load_encoder(tmp_path)


def test_linear_probe_math_reaches_full_accuracy_on_separable_data():
    from jepa.eval.linear import fit_linear_grid

    torch.manual_seed(0)
    centers = torch.randn(4, 16) * 4
    y = torch.arange(400) % 4
    x = centers[y] + 0.5 * torch.randn(400, 16)
    heads = fit_linear_grid(x[:300], y[:300], 4, lrs=(1e-2,), weight_decays=(0.0,), epochs=30)
    assert heads.accuracies(x[300:], y[300:])[0] >= 0.99


def test_knn_on_one_hot_label_features_is_exact():
    from jepa.eval.knn import knn_predict

    y = torch.arange(50) % 5
    feats = torch.nn.functional.one_hot(y, 5).float()
    pred = knn_predict(feats, y, feats, 5, k=20, temperature=0.07).argmax(-1)
    assert torch.equal(pred, y)


def test_attentive_probe_learns_a_token_level_rule():
    from jepa.eval.attentive import ProbeSchedule, attentive_scores, train_attentive_probe

    torch.manual_seed(0)
    y = torch.arange(256) % 2
    tokens = torch.randn(256, 8, 16) * 0.1
    tokens[torch.arange(256), torch.randint(0, 8, (256,)), y] += 3.0  # class = which channel one token lights up
    probe, training = train_attentive_probe(tokens[:200], y[:200], 2, ProbeSchedule(max_steps=400, min_steps=100, eval_every=20),
                                            lr=3e-3, batch_size=32)
    # It stops once held-out accuracy stops improving, keeping the best scoring's weights.
    assert training["stopped"] == "no_improvement" and training["best_step"] <= training["steps"] < 400
    assert training["holdout_acc"] == max(acc for _, acc in training["curve"]) and training["holdout_samples"] == 20
    acc = (attentive_scores(probe, tokens[200:]).argmax(-1) == y[200:]).float().mean()
    assert acc >= 0.95


def test_low_shot_selection_is_seeded_and_per_class():
    from jepa.eval.features import low_shot_indices

    labels = torch.arange(100) % 4
    a = low_shot_indices(labels, per_class=3, seed=1)
    assert len(a) == 12 and torch.bincount(labels[a]).tolist() == [3, 3, 3, 3]
    assert torch.equal(a, low_shot_indices(labels, per_class=3, seed=1))
    assert not torch.equal(a, low_shot_indices(labels, per_class=3, seed=2))
    assert torch.bincount(labels[low_shot_indices(labels, fraction=0.2)]).tolist() == [5, 5, 5, 5]


def run_probe(*args):
    return subprocess.run([sys.executable, "-m", "jepa.cli", "probe", *args], capture_output=True, text=True, timeout=600)


def test_probe_command_with_baselines_writes_outputs_and_uses_the_cache(trained, tmp_path):
    _, export = trained
    args = ["linear", "--encoder", str(export), "--train", "builtin:shapes", "--val", "builtin:shapes",
            "--max-train", "200", "--max-val", "100", "--epochs", "3", "--baselines",
            "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    first = run_probe(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    for backbone in ("pretrained", "random weights", "raw pixels"):
        assert backbone in first.stdout
    report = json.loads((tmp_path / "out" / "probe.json").read_text())
    grid = report["results"]["pretrained"]["grid"]
    assert {g["pooling"] for g in grid} == {"avg", "avg4"} and len(grid) == 2 * 4 * 3
    assert report["results"]["pretrained"]["train_samples"] == 200
    assert (tmp_path / "out" / "confusion.png").stat().st_size > 1000
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 6  # 3 backbones x (train, val)
    refused = run_probe(*args)  # the results are there: replacing them takes --overwrite
    assert refused.returncode == 2 and "pass --overwrite" in refused.stderr, refused.stderr[-2000:]
    second = run_probe(*args, "--overwrite")
    assert second.returncode == 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["features_from_cache"] is True
    low = run_probe(*args[:-4], "--per-class", "2", "--out", str(tmp_path / "low"), "--cache-dir", str(tmp_path / "cache"))
    assert low.returncode == 0
    assert json.loads((tmp_path / "low" / "probe.json").read_text())["results"]["pretrained"]["train_samples"] == 20


def _one_line_error(result, pattern):
    import re

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert re.search(pattern, lines[0]), lines[0]


def test_probe_bad_inputs_end_in_one_line(trained, tmp_path):
    from PIL import Image

    _, export = trained
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        Image.new("RGB", (16, 16)).save(flat / f"{i}.png")
    _one_line_error(run_main("probe", "knn", "--encoder", str(export), "--train", str(flat), "--val", "builtin:shapes"),
                    "has no labels")
    for root, classes in (("tr", ("a", "b")), ("va", ("a", "b", "c"))):
        for c in classes:
            (tmp_path / root / c).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (16, 16), (i * 50, 0, 0)).save(tmp_path / root / c / f"{i}.png")
    _one_line_error(run_main("probe", "knn", "--encoder", str(export), "--train", str(tmp_path / "tr"),
                              "--val", str(tmp_path / "va"), "--cache-dir", str(tmp_path / "c")),
                    "class c is in --val but not in --train")
    _one_line_error(run_main("probe", "knn", "--encoder", str(export), "--train", "builtin:shapes", "--val", "builtin:shapes",
                              "--image-size", "18"), "not a multiple of the encoder's patch size 4")
    small = tmp_path / "small" / "a"
    small.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(small / "0.png")
    _one_line_error(run_main("probe", "knn", "--encoder", str(export), "--train", str(small.parent), "--val", str(small.parent)),
                    "images are 4x4 px but the encoder takes 16x16")
    _one_line_error(run_main("probe", "knn", "--encoder", str(tmp_path), "--train", "builtin:shapes", "--val", "builtin:shapes"),
                    "config.json does not exist")


def test_export_command_refuses_non_checkpoint(tmp_path):
    (tmp_path / "x.ckpt").write_text("hello")
    result = subprocess.run([sys.executable, "-m", "jepa.cli", "export", str(tmp_path / "x.ckpt"), str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=120)
    _one_line_error(result, "is not a checkpoint of this framework")


def test_probe_skips_counts_and_reports_undecodable_images(trained, tmp_path):
    from PIL import Image

    _, export = trained
    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (16, 16), (40 * i, 200 if c == "a" else 0, 0)).save(tmp_path / "imgs" / c / f"{i}.png")
    (tmp_path / "imgs" / "a" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    args = ["knn", "--encoder", str(export), "--train", str(tmp_path / "imgs"), "--val", str(tmp_path / "imgs"),
            "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--overwrite"]
    for _ in range(2):  # extracted, then from the cache: the count survives caching
        result = run_probe(*args)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "skipped 2 inputs that failed to load" in result.stdout  # once in --train, once in --val
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert summary["skipped_inputs"]["count"] == 2 and "broken.jpg" in summary["skipped_inputs"]["examples"][0]
        assert json.loads((tmp_path / "out" / "probe.json").read_text())["results"]["pretrained"]["train_samples"] == 8


@pytest.mark.slow
def test_probe_stops_cleanly_when_its_process_group_gets_sigterm(trained, tmp_path):
    import os
    import signal
    import time
    from pathlib import Path

    _, export = trained
    cmd = [sys.executable, "-m", "jepa.cli", "probe", "linear", "--encoder", str(export), "--train", "builtin:shapes",
           "--val", "builtin:shapes", "--max-train", "20000", "--max-val", "100", "--workers", "2",
           "--batch-size", "16", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while len(Path(f"/proc/{job.pid}/task/{job.pid}/children").read_text().split()) < 2:
            assert job.poll() is None and time.time() < deadline, job.stderr.read()[-2000:]
            time.sleep(0.05)
        time.sleep(0.5)  # the workers are loading
        os.killpg(job.pid, signal.SIGTERM)
        _, err = job.communicate(timeout=120)
    finally:
        job.kill()
    assert job.returncode == 143, err[-2000:]
    assert "Traceback" not in err and "killed by signal" not in err, err[-2000:]
    assert "stopped by SIGTERM: nothing was written to the probe folder" in err.strip().splitlines()[-1]
    assert not (tmp_path / "out" / "probe.json").exists()


def test_holdout_selection_never_looks_at_the_scored_split(trained, tmp_path):
    _, export = trained
    args = ["linear", "--encoder", str(export), "--train", "builtin:shapes", "--val", "builtin:shapes",
            "--max-train", "300", "--max-val", "100", "--epochs", "3", "--cache-dir", str(tmp_path / "cache")]
    result = run_probe(*args, "--select", "holdout", "--out", str(tmp_path / "holdout"))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "holdout" / "probe.json").read_text())
    pretrained = report["results"]["pretrained"]
    assert "held-out 10% of the training features" in report["selection"]
    grid, best = pretrained["grid"], pretrained["best"]
    # The reported setting is the best on the held-out training features, not on the scored split.
    assert best["selection_acc"] == max(g["selection_acc"] for g in grid)
    assert best["val_acc"] in [g["val_acc"] for g in grid if g["selection_acc"] == best["selection_acc"]]
    assert 1 <= pretrained["rankme"] <= 32  # effective rank of the scored features (width 32)
    # The default (--select val) stays available: the best of the grid on the scored split.
    assert run_probe(*args, "--out", str(tmp_path / "val")).returncode == 0
    val = json.loads((tmp_path / "val" / "probe.json").read_text())["results"]["pretrained"]
    assert val["best"]["val_acc"] == max(g["val_acc"] for g in val["grid"])
