"""V-JEPA through the whole stack on CPU: pretraining on clips, exact resume, mixed image+video
runs, export and probes of a video encoder, and the one-line errors of video configs."""

import json

import pytest
import torch

import jepa
from jepa.cli import main
from jepa.errors import JEPAError

from conftest import SHARED_DATA, write_tiny_config, write_tiny_video_config
from helpers import read_records
from test_pretrain import record_callbacks, with_callbacks

VIDEOS = SHARED_DATA / "videos"


def test_a_video_run_trains_exports_and_probes_a_clip_encoder(tmp_path, capsys):
    cfg = write_tiny_video_config(tmp_path, steps=4)
    assert main(["pretrain", "--config", str(cfg)]) == 0
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 4 and summary["final_loss"] > 0
    assert summary["probe"]["step0_linear_acc"] is not None
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    # V-JEPA's defaults for clips: L1 loss, EMA from 0.998; the architecture recorded from the model.
    assert ckpt["hyper_parameters"]["loss"] == "l1" and ckpt["hyper_parameters"]["objective"]["start"] == 0.998
    assert ckpt["jepa"]["encoder_arch"]["modality"] == "video" and ckpt["jepa"]["encoder_arch"]["num_frames"] == 4
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "monitor/rankme" in header and "monitor/feature_std" in header

    out = tmp_path / "export"
    assert main(["export", str(run / "checkpoints" / "last.ckpt"), str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["modality"], config["num_frames"], config["tubelet_size"], config["pos"]) == ("video", 4, 2, "sincos")
    enc = jepa.load_encoder(out)
    clips = enc.normalize(torch.rand(2, 3, 4, 16, 16))
    assert enc(clips).shape == (2, 2 * 4 * 4, 32) and enc.features(clips).shape == (2, 32)
    assert enc(torch.randn(2, 3, 16, 16)).shape == (2, 16, 32)  # an image is a clip of one tubelet
    with pytest.raises(JEPAError, match="timm's VisionTransformer holds only image encoders"):
        from jepa.export import timm_encoder

        timm_encoder(out)

    capsys.readouterr()
    assert main(["probe", "attentive", "--encoder", str(out), "--train", "builtin:bouncing", "--val",
                 "builtin:bouncing", "--frame-step", "1", "--max-train", "32", "--max-val", "16", "--max-steps", "2",
                 "--min-steps", "1", "--eval-every", "1",
                 "--baselines", "--cache-dir", str(tmp_path / "cache")]) == 0
    report = json.loads((out / "probe-attentive" / "probe.json").read_text())
    assert set(report["results"]) == {"pretrained", "first frame only", "random weights", "raw pixels"}
    assert report["clips"] == {"frames": 4, "frame_step": 1, "fps": None}
    assert all(r["val_samples"] == 16 for r in report["results"].values())
    # Probing on clips against images is refused in one line.
    assert main(["probe", "linear", "--encoder", str(out), "--train", "builtin:bouncing", "--val", "builtin:shapes"]) == 2
    assert "--train holds videos but --val holds images" in capsys.readouterr().err


def test_an_image_model_refuses_clips_and_an_image_checkpoint_does_not_resume_as_video(tmp_path, capsys):
    cfg = write_tiny_config(tmp_path, steps=1)
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false"]) == 0
    assert main(["export", str(tmp_path / "run" / "checkpoints" / "last.ckpt"), str(tmp_path / "export")]) == 0
    capsys.readouterr()
    assert main(["probe", "attentive", "--encoder", str(tmp_path / "export"), "--train", "builtin:bouncing",
                 "--val", "builtin:bouncing"]) == 2
    assert "is an image encoder" in capsys.readouterr().err
    video = write_tiny_video_config(tmp_path, steps=2)  # the same run_dir, now with clips
    assert main(["pretrain", "--config", str(video), "--ckpt_path", "last"]) == 2
    err = capsys.readouterr().err.strip()
    assert "trained with data.clips.frames_per_clip (model.num_frames)=1 but this config has 4" in err
    assert len(err.splitlines()) == 1


# Causal masks on 8 frames (4 frames of tokens): the context length changes from batch to batch;
# the target tokens weighted by pixel change.
CAUSAL = ["--data.video_masking", "causal", "--data.clips.frames_per_clip", "8", "--model.motion_weight", "1.0"]


@pytest.mark.parametrize("masks", [[], CAUSAL], ids=["multiblock", "causal-motion-weighted"])
def test_a_video_run_resumes_bit_exactly(tmp_path, masks):
    straight = with_callbacks(write_tiny_video_config(tmp_path / "a", steps=4, ckpt_every=2),
                              record_callbacks(tmp_path / "a.jsonl"))
    assert main(["pretrain", "--config", str(straight), "--probe.enabled", "false", *masks]) == 0
    first = with_callbacks(write_tiny_video_config(tmp_path / "b", steps=4, ckpt_every=2),
                           record_callbacks(tmp_path / "b.jsonl", stop_at=2))
    assert main(["pretrain", "--config", str(first), "--probe.enabled", "false", *masks]) == 0
    second = with_callbacks(write_tiny_video_config(tmp_path / "b", steps=4, ckpt_every=2),
                            record_callbacks(tmp_path / "b.jsonl"))
    assert main(["pretrain", "--config", str(second), "--probe.enabled", "false", "--ckpt_path", "last", *masks]) == 0
    a = [r for r in read_records(tmp_path / "a.jsonl") if "loss" in r]
    b = [r for r in read_records(tmp_path / "b.jsonl") if "loss" in r]
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]  # bit-identical
    ends = [r for r in read_records(tmp_path / "a.jsonl") if "target_sha256" in r]
    assert ends[-1]["target_sha256"] == [r for r in read_records(tmp_path / "b.jsonl") if "target_sha256" in r][-1][
        "target_sha256"]


MIXED = """\
  train: builtin:bouncing
  train_weight: 2.0
  mix: [{spec: builtin:shapes, weight: 1.0}]
"""


def _mixed(tmp_path, steps, stop_at=None):
    cfg = write_tiny_video_config(tmp_path, steps=steps, ckpt_every=3)
    text = cfg.read_text().replace("  train: builtin:bouncing\n", MIXED)
    cfg.write_text(text)
    return with_callbacks(cfg, record_callbacks(tmp_path.parent / f"{tmp_path.name}.jsonl", stop_at=stop_at))


def test_a_mixed_image_and_video_run_trains_and_resumes_at_its_mixture_position(tmp_path):
    assert main(["pretrain", "--config", str(_mixed(tmp_path / "a", 8)), "--probe.enabled", "false"]) == 0
    assert main(["pretrain", "--config", str(_mixed(tmp_path / "b", 8, stop_at=3)), "--probe.enabled", "false"]) == 0
    assert main(["pretrain", "--config", str(_mixed(tmp_path / "b", 8)), "--probe.enabled", "false",
                 "--ckpt_path", "last"]) == 0
    a = [r for r in read_records(tmp_path / "a.jsonl") if "loss" in r]
    b = [r for r in read_records(tmp_path / "b.jsonl") if "loss" in r]
    sources = [r["source"] for r in a]
    assert set(sources) == {0, 1}  # both kinds of batch, each batch of one kind
    assert [r["source"] for r in b] == sources and [r["loss"] for r in b] == [r["loss"] for r in a]
    header = (tmp_path / "a" / "run" / "metrics.csv").read_text().splitlines()[0]
    assert "data/source" in header  # the mixture is logged step by step


@pytest.mark.parametrize("override, message", [
    (["--data.clips.frames_per_clip", "5"], "tubelet size 2 does not divide frames_per_clip 5"),
    (["--data.train", "/nonexistent/list.csv"], "video list /nonexistent/list.csv does not exist"),
    (["--data.train", "builtin:shapes"], "data.clips is a video setting, but data.train builtin:shapes holds images"),
    (["--data.train", "builtin:shapes", "--data.clips.frames_per_clip", "16", "--data.clips.frame_step", "4",
      "--model.encoder.tubelet_size", "2"], "model.encoder.tubelet_size is a video setting"),
    (["--data.masks.num_targets", "2"], "data.masks (I-JEPA's 2-D blocks) does not apply to a video run"),
    (["--data.clips.frames_per_clip", "1", "--model.encoder.tubelet_size", "1"], "frames_per_clip must be at least 2"),
    (["--data.train_weight", "2"], "data.train_weight weighs data.train against data.mix, which is empty"),
    (["--data.memory_cache", "true"], "memory_cache holds images only"),
    (["--data.val", "builtin:shapes"], "holds images but data.train builtin:bouncing holds videos"),
    (["--data.video_masking", "causal", "--data.tube_masks.ratio", "0.5"],
     "data.tube_masks is set but data.video_masking is causal: set video_masking: tube or drop data.tube_masks"),
    (["--data.video_masking", "future"], "data.video_masking must be one of multiblock, tube, causal, got 'future'"),
])
def test_bad_video_configs_end_in_one_line(tmp_path, capsys, override, message):
    cfg = write_tiny_video_config(tmp_path, steps=1)
    assert main(["pretrain", "--config", str(cfg), *override]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_a_video_list_line_that_does_not_parse_is_named(tmp_path, capsys):
    bad = tmp_path / "list.txt"
    bad.write_text(f"{VIDEOS / 'imageio_cockatoo.mp4'} 0\nclip.mp4 zero\n")
    cfg = write_tiny_video_config(tmp_path, steps=1)
    assert main(["pretrain", "--config", str(cfg), "--data.train", str(bad)]) == 2
    assert f"{bad}:2: expected 'path label'" in capsys.readouterr().err
