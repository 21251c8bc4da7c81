"""jepa bench: one JSON line, for the training step and for the data loader alone."""

import json

import pytest

from conftest import write_tiny_config
from test_pretrain import run_cli


@pytest.mark.parametrize("objective", ["ema", "sigreg"])
def test_bench_times_the_objectives_real_step(tmp_path, objective):
    cfg = write_tiny_config(tmp_path, steps=10)
    result = run_cli("bench", "--config", str(cfg), "--steps", "2", "--warmup", "1", "--model.objective", objective)
    assert result.returncode == 0, result.stderr[-2000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["objective"] == objective and line["images_per_s"] > 0 and line["flops_per_step"] > 0
    assert 0 < line["mfu"] < 1.5 and line["batch_size"] == 8


def test_bench_data_only_times_the_loader(tmp_path):
    cfg = write_tiny_config(tmp_path, steps=10)
    env_cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    import os
    import subprocess
    import sys

    for memory in ("false", "true"):
        result = subprocess.run([sys.executable, "-m", "jepa.cli", "bench", "--config", str(cfg), "--data-only",
                                 "--steps", "3", "--warmup", "1", "--data.memory_cache", memory],
                                capture_output=True, text=True, timeout=300, env={**os.environ, **env_cache})
        assert result.returncode == 0, result.stderr[-2000:]
        line = json.loads(result.stdout.strip().splitlines()[-1])
        assert line["images_per_s"] > 0 and line["batches"] == 3
        assert line["loader"] == ("memory cache" if memory == "true" else "streaming, 0 workers")


def test_bench_times_a_video_step_and_a_video_loader_past_an_epoch(tmp_path):
    from conftest import SHARED_DATA, write_tiny_video_config

    if not (SHARED_DATA / "videos").is_dir():
        pytest.skip("../shared/data/videos not present")

    cfg = write_tiny_video_config(tmp_path, steps=10)
    result = run_cli("bench", "--config", str(cfg), "--steps", "2", "--warmup", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["clips_per_s"] > 0 and line["input_shape"] == [3, 4, 16, 16] and line["tokens"] == 2 * 4 * 4
    assert len(line["context_tokens"]) == len(line["target_tokens"]) == 2  # V-JEPA's two mask groups
    # A list of 4 real clips is one batch an epoch: the loader bench times 4 batches over 4 epochs.
    clip = SHARED_DATA / "videos" / "mmaction2_tests_data_test.mp4"
    (tmp_path / "clips.txt").write_text(f"{clip} 0\n" * 4)
    result = run_cli("bench", "--config", str(cfg), "--data-only", "--steps", "3", "--warmup", "1",
                     "--data.train", str(tmp_path / "clips.txt"), "--data.val", "builtin:bouncing")
    assert result.returncode == 0, result.stderr[-2000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["clips_per_s"] > 0 and line["batches"] == 3 and line["input_shape"] == [3, 4, 16, 16]
