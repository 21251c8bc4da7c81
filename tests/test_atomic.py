"""Files written whole or not at all (jepa/atomic.py), the rule every cache, export and summary follows."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from jepa.atomic import replace_atomic, save_safetensors_atomic, write_json_atomic


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"step": 1})

    def half_then_full_disk(tmp):
        tmp.write_text('{"step": 2, "los')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        replace_atomic(path, half_then_full_disk)
    assert json.loads(path.read_text()) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_safetensors_are_replaced_whole_with_their_metadata(tmp_path):
    path = tmp_path / "cache.safetensors"
    save_safetensors_atomic(path, {"a": torch.zeros(2)})
    t = torch.arange(6.0).reshape(2, 3).t()  # not contiguous: made so on the way
    save_safetensors_atomic(path, {"b": t}, metadata={"key": "k"})
    assert torch.equal(load_file(str(path))["b"], t) and set(load_file(str(path))) == {"b"}
    with safe_open(str(path), "pt") as f:
        assert f.metadata() == {"key": "k"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.safetensors"]
