"""Executes every notebook in notebooks/ with tiny settings, so none of them can rot."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO, write_tiny_config

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# What each notebook must print at the tests' small settings (a notebook that ran but showed nothing fails).
EXPECTED = {"encoder_tour.ipynb": "linear probe on 100 frozen features",
            "planning_two_rooms.ipynb": "world_model  success",
            "intuitive_physics.ipynb": "relative accuracy by the mean over windows"}


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> Path:
    from jepa.cli import main

    tmp = tmp_path_factory.mktemp("nb")
    cfg = write_tiny_config(tmp, steps=2)
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false"]) == 0
    assert main(["export", str(tmp / "run" / "checkpoints" / "last.ckpt"), str(tmp / "export")]) == 0
    return tmp / "export"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tiny_export, tiny_video_export, monkeypatch, tmp_path):
    monkeypatch.setenv("JEPA_NB_ENCODER", str(tiny_export))
    monkeypatch.setenv("JEPA_NB_VIDEO_ENCODER", str(tiny_video_export))
    monkeypatch.setenv("JEPA_NB_PAIRS", "2")
    monkeypatch.setenv("JEPA_NB_FRAMES", "12")
    monkeypatch.setenv("JEPA_NB_SEEDS", "1")
    monkeypatch.setenv("JEPA_NB_OUT", str(tmp_path / "surprise"))
    monkeypatch.setenv("JEPA_NB_PLAN_SIZE", "tiny")
    monkeypatch.setenv("JEPA_NB_PLAN_OUT", str(tmp_path / "two_rooms"))
    monkeypatch.setenv("JEPA_NB_TRAIN", "100")
    monkeypatch.setenv("JEPA_NB_VAL", "50")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert EXPECTED[path.name] in outputs
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))


def test_there_is_a_notebook():
    assert NOTEBOOKS, "notebooks/ holds no notebook"
    assert os.path.getsize(NOTEBOOKS[0]) > 0
