"""Two CPU processes (gloo) training together through Lightning's DDP, started by `jepa pretrain`."""

import json
import math
import subprocess
import sys

from conftest import write_tiny_config
from helpers import read_records
from test_pretrain import record_callbacks, with_callbacks


def test_two_process_ddp_disjoint_samples_identical_targets(tmp_path):
    cfg = with_callbacks(write_tiny_config(tmp_path, steps=3), record_callbacks(tmp_path / "rec.jsonl"))
    result = subprocess.run(
        [sys.executable, "-m", "jepa.cli", "pretrain", "--config", str(cfg), "--trainer.devices", "2",
         "--trainer.strategy", "ddp", "--probe.enabled", "false"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [read_records(tmp_path / "rec.jsonl", r) for r in (0, 1)]
    steps = [[r for r in recs if "loss" in r] for recs in ranks]
    assert [len(s) for s in steps] == [3, 3]
    assert all(r["world"] == 2 for s in steps for r in s)
    assert all(math.isfinite(r["loss"]) for s in steps for r in s)
    # Every step the two ranks read different samples, and over the run no sample is read twice.
    seen = [{i for r in s for i in r["index"]} for s in steps]
    assert not seen[0] & seen[1]
    for a, b in zip(*steps):
        assert a["step"] == b["step"] and not set(a["index"]) & set(b["index"])
    # The EMA targets stay bit-identical across ranks.
    ends = [[r for r in recs if "target_sum" in r][-1] for recs in ranks]
    assert ends[0]["target_sha256"] == ends[1]["target_sha256"] and ends[0]["target_sum"] == ends[1]["target_sum"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["samples"] == 3 * 8 * 2
