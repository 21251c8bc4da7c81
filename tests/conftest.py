"""Shared fixtures: tiny settings so the whole suite runs on a 2-core CPU in minutes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CIFAR = SHARED_DATA / "cifar10"

# Tests may start subprocesses (DDP ranks) that import helpers from this folder.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "tests"), str(REPO), os.environ.get("PYTHONPATH")]))
sys.path.insert(0, str(REPO / "tests"))

# The cores are shared by pytest-xdist's workers: each test, and every process it starts (notebook
# kernels, DDP ranks, planning workers), gets its worker's share of the threads. Two workers of two
# threads each on two cores oversubscribed them: a notebook that runs in 17 s alone took 68 s.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, min(2, (os.cpu_count() or 1) // _WORKERS))
if _WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(THREADS)

TINY_CONFIG = """\
run_dir: {run_dir}
report: false  # the tests draw report.png once, in test_report.py
checkpoint_every_n_steps: {ckpt_every}
trainer:
  max_steps: {steps}
  accelerator: cpu
  devices: 1
  log_every_n_steps: 1
  enable_progress_bar: false
  enable_model_summary: false
model:
  encoder: {{size: tiny, patch_size: 4, width: 32, depth: 2, heads: 2}}
  predictor: {{width: 16, depth: 1, heads: 2}}
  optim: {{warmup_steps: 2}}
  monitor_every_n_steps: 1
data:
  train: {train}
  image_size: 16
  batch_size: 8
  num_workers: {workers}
  probe_train_samples: 64
  probe_val_samples: 32
probe:
  epochs: 2
"""


def write_tiny_config(tmp_path: Path, steps: int = 4, train: str = "builtin:shapes", workers: int = 0,
                      ckpt_every: int = 2, run_dir: Path | None = None, extra: str = "") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "tiny.yaml"
    run_dir = run_dir or tmp_path / "run"
    cfg.write_text(TINY_CONFIG.format(run_dir=run_dir, steps=steps, train=train, workers=workers,
                                      ckpt_every=ckpt_every) + extra)
    return cfg


TINY_VIDEO_DATA = """\
data:
  train: {train}
  image_size: 16
  clips: {{frames_per_clip: 4, frame_step: 1}}
  batch_size: 4
  num_workers: {workers}
  probe_train_samples: 32
  probe_val_samples: 16
"""


def write_tiny_video_config(tmp_path: Path, steps: int = 4, train: str = "builtin:bouncing", workers: int = 0,
                            ckpt_every: int = 2, extra: str = "") -> Path:
    """The tiny config with clips: 4 frames of 16 x 16 (tubelet 2, patch 4: 2 x 4 x 4 tokens)."""
    cfg = write_tiny_config(tmp_path, steps=steps, ckpt_every=ckpt_every)
    text = cfg.read_text()
    text = text[: text.index("data:\n")] + TINY_VIDEO_DATA.format(train=train, workers=workers) + \
        text[text.index("probe:\n"):]
    cfg.write_text(text + extra)
    return cfg


@pytest.fixture(autouse=True)
def _threads_per_worker():
    torch.set_num_threads(THREADS)
    yield


def needs_cifar() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not (CIFAR / "train-000000.tar").exists(), reason="../shared/data/cifar10 not present")


@pytest.fixture(scope="session")
def tiny_video_export(tmp_path_factory) -> Path:
    """One tiny V-JEPA run (4 frames of 16 x 16), exported with its predictor: shared by the surprise
    tests and the intuitive-physics notebook."""
    from jepa.cli import main

    tmp = tmp_path_factory.mktemp("video_export")
    cfg = write_tiny_video_config(tmp, steps=3)
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false"]) == 0
    assert main(["export", str(tmp / "run" / "checkpoints" / "last.ckpt"), "--out", str(tmp / "export"),
                 "--with-predictor"]) == 0
    return tmp / "export"
