"""The surprise probe: an export with its predictor, V-JEPA's windowed surprise, its scores, the
baselines that check the instrument, pairs cut from real footage, and bad input in one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from jepa.data.pairs import CutSettings, cut_twin
from jepa.data.voe import VoETwins
from jepa.errors import JEPAError
from jepa.eval.surprise import SurpriseModel, Windows, random_jepa
from jepa.eval.surprise_metrics import absolute_accuracy, auroc, bootstrap_interval, relative_accuracy
from jepa.export import load_predictor

from conftest import SHARED_DATA, write_tiny_config
from test_pretrain import run_main


def test_scores_count_ties_half_and_intervals_hold_the_estimate():
    possible, impossible = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 1.0, 5.0])
    assert relative_accuracy(possible, impossible) == 0.625  # 2 wins, 1 tie, 1 loss
    lo, hi = bootstrap_interval(possible, impossible, draws=500)
    assert 0 <= lo <= 0.625 <= hi <= 1
    assert auroc(np.zeros(5), np.ones(5)) == 1.0 and auroc(np.ones(3), np.ones(3)) == 0.5
    assert absolute_accuracy(np.arange(10.0), np.arange(10.0) + 100) == 0.95  # 9 of 10 possible under the 90% line


def test_the_export_carries_the_predictor_and_refuses_one_of_another_encoder(tiny_video_export, tmp_path):
    jepa = load_predictor(tiny_video_export)
    config = json.loads((tiny_video_export / "config.json").read_text())
    assert config["which"] == "target" and config["context_encoder"]["file"] == "context.safetensors"
    assert config["predictor"]["encoder_sha256"] == config["sha256"]
    assert jepa.context is not jepa.target and not any(p.requires_grad for p in jepa.predictor.parameters())
    # Another run's predictor copied in: one line, naming whose it is not.
    other = tmp_path / "other"
    shutil.copytree(tiny_video_export, other)
    (other / "predictor.safetensors").write_bytes((tiny_video_export / "context.safetensors").read_bytes())
    with pytest.raises(JEPAError, match="belongs to another export"):
        load_predictor(other)
    del config["predictor"], config["context_encoder"]
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(JEPAError, match="exported without its predictor.*--with-predictor"):
        load_predictor(other)


def test_a_clip_is_exactly_as_surprising_as_itself_and_only_after_the_event_differs(tiny_video_export):
    jepa = load_predictor(tiny_video_export)
    model = SurpriseModel(jepa, Windows(length=4, stride=2, context=2))
    twin = VoETwins("val", pairs_per_event=2, resolution=16, num_frames=14).pair(0)
    possible, again = model.series(twin.possible), model.series(twin.possible)
    assert possible.shape == (6,) and np.array_equal(possible, again)
    impossible = model.series(twin.impossible)
    before = [i for i, start in enumerate(range(0, 11, 2)) if start + 4 <= twin.event_frame]
    assert before and np.array_equal(possible[before], impossible[before])  # windows that end before the event
    assert not np.array_equal(possible, impossible)


def test_copying_the_last_frame_flags_teleports_and_random_weights_do_not(tiny_video_export):
    """The instrument's checks: a predictor without physics sees what jumps; chance without a model."""
    jepa = load_predictor(tiny_video_export)
    windows = Windows(length=4, stride=2, context=2)
    voe = VoETwins("val", pairs_per_event=24, resolution=16, num_frames=14, events=["teleport"])
    twins = [voe.pair(i) for i in range(len(voe))]

    def accuracy(model: SurpriseModel) -> float:
        scores = np.array([[model.series(t.possible).mean(), model.series(t.impossible).mean()] for t in twins])
        return relative_accuracy(scores[:, 0], scores[:, 1])

    assert accuracy(SurpriseModel(jepa, windows, copy_last=True)) >= 0.75  # 16 px frames: a jump of 5 px or more
    assert 0.25 <= accuracy(SurpriseModel(random_jepa(jepa, seed=0), windows)) <= 0.75


def test_cut_pairs_share_everything_before_the_cut():
    frames = np.arange(40)[:, None, None, None].repeat(2, 1).astype(np.uint8)
    settings = CutSettings(length=12, cut=7, skip=4)
    for kind in ("jumpcut", "freeze", "reverse"):
        original, cut = cut_twin(frames, 3, kind, settings)
        assert original.shape == cut.shape == (12, 2, 1, 1)
        assert np.array_equal(original[:7], cut[:7]) and not np.array_equal(original[7:], cut[7:])
    assert cut_twin(frames, 3, "jumpcut", settings)[1][7, 0, 0, 0] == 3 + 7 + 4
    assert (cut_twin(frames, 3, "freeze", settings)[1][7:, 0, 0, 0] == 3 + 6).all()
    assert cut_twin(frames, 3, "reverse", settings)[1][7:, 0, 0, 0].tolist() == [8, 7, 6, 5, 4]


def test_the_probe_writes_its_table_json_and_picture(tiny_video_export, tmp_path):
    out = tmp_path / "voe"
    result = run_main("probe", "surprise", "--encoder", str(tiny_video_export), "--pairs", "builtin:voe",
                      "--pairs-per-event", "2", "--frames", "12", "--baselines", "--seeds", "2", "--bootstrap", "50",
                      "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "surprise.json").read_text())
    assert set(report["scores"]) == {"teleport", "vanish", "vanish_occluded", "colour", "size", "solidity",
                                     "reversal", "gravity"}
    assert set(report["scores"]["teleport"]) == {"pretrained", "random weights (seed 0)", "random weights (seed 1)",
                                                 "copy last frame"}
    assert report["windows"] == {"length": 4, "stride": 2, "context": 2}
    assert len(report["series"]["pretrained"]["gravity"]) == 2
    assert (out / "surprise.png").stat().st_size > 10_000 and "copy last frame" in result.stdout
    again = run_main("probe", "surprise", "--encoder", str(tiny_video_export), "--pairs", "builtin:voe",
                     "--out", str(out))
    assert again.returncode == 2 and "pass --overwrite" in again.stderr


@pytest.mark.skipif(not (SHARED_DATA / "videos").is_dir(), reason="../shared/data/videos not present")
def test_jump_cut_pairs_of_real_clips_skip_and_count_short_ones(tiny_video_export, tmp_path):
    videos = SHARED_DATA / "videos"
    listing = tmp_path / "clips.txt"
    listing.write_text(f"{videos / 'mmaction2_tests_data_test.avi'}\n{videos / 'imageio_realshort.mp4'}\n")
    result = run_main("probe", "surprise", "--encoder", str(tiny_video_export), "--pairs", f"jumpcut:{listing}",
                      "--frame-step", "4", "--cut-every", "8", "--bootstrap", "50", "--out", str(tmp_path / "cut"))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "cut" / "surprise.json").read_text())
    pairs = report["series"]["pretrained"]["jumpcut"]
    # test.avi: 164 frames -> 41 at step 4; a pair reads 4 + 8 + 8 = 20: starts 0, 8, 16. realshort is too short.
    assert len(pairs) == 3 and len(report["skipped_clips"]) == 1 and "realshort" in report["skipped_clips"][0]


def test_bad_input_ends_in_one_line(tiny_video_export, tmp_path):
    image_run = tmp_path / "image"
    cfg = write_tiny_config(image_run, steps=1)
    assert run_main("pretrain", "--config", str(cfg), "--probe.enabled", "false").returncode == 0
    assert run_main("export", str(image_run / "run" / "checkpoints" / "last.ckpt"), "--with-predictor").returncode == 0
    cases = [
        (["--encoder", str(image_run / "run" / "export"), "--pairs", "builtin:voe"], "image encoder"),
        (["--encoder", str(tiny_video_export), "--pairs", "builtin:voe", "--frames", "3"],
         "shorter than one window"),
        (["--encoder", str(tiny_video_export), "--pairs", "jumpcut:" + str(tmp_path / "none")], "does not exist"),
        (["--encoder", str(tiny_video_export), "--pairs", "bogus:x"], "expected builtin:voe or one of"),
        (["--encoder", str(tiny_video_export), "--pairs", "builtin:voe", "--context-frames", "3"],
         "multiple of the tubelet size 2"),
    ]
    for args, message in cases:
        result = run_main("probe", "surprise", *args, "--out", str(tmp_path / "o"))
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], (args, result.stderr[-500:])
