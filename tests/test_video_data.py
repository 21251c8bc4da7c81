"""Video data through the training loader: every shared clip, shards written by `jepa shards`,
and the inputs that must be skipped and counted rather than crash a run."""

import json
import random

import av
import numpy as np
import pytest
import torch

from jepa.cli import main
from jepa.data.datamodule import PretrainDataModule
from jepa.data.spec import open_data
from jepa.data.video import ClipSampling, VideoDecodeError, probe_video
from jepa.data.video.sources import VideoRef

from conftest import SHARED_DATA, write_tiny_video_config

VIDEOS = SHARED_DATA / "videos"
BROKEN = "decord_tests_test_data_corrupted.mp4"
pytestmark = pytest.mark.skipif(not VIDEOS.is_dir(), reason="../shared/data/videos not present")


def _video_module(train: str, **kw) -> PretrainDataModule:
    return PretrainDataModule(train, image_size=32, patch_size=8, clips=ClipSampling(16, 4), batch_size=4,
                              num_workers=0, **kw)


def test_every_shared_clip_comes_through_the_training_loader():
    dm = _video_module(str(VIDEOS))
    assert dm.modality == "video" and dm.input_shape == (3, 16, 32, 32) and dm.token_grid == (8, 4, 4)
    source, transform = dm.train_data.source, dm._transform("video")
    failed = []
    for index in range(len(source)):
        ref, _ = source.load(index)
        try:
            clip = transform(ref, random.Random(index))
        except VideoDecodeError as exn:
            failed.append((ref.name, str(exn)))
            continue
        assert clip.shape == (3, 16, 32, 32) and torch.isfinite(clip).all(), ref.name
    assert len(source) == 25 and [name.rsplit("/", 1)[-1] for name, _ in failed] == [BROKEN]
    assert BROKEN in failed[0][1] and "\n" not in failed[0][1]  # one line naming the file
    # decord cannot open these two; PyAV decodes them.
    for name in ("imageio_test.webm", "torchcodec_test_resources_av1_video.mkv"):
        assert probe_video(str(VIDEOS / name)).backend == "pyav"
    # The rotated clip comes out upright: portrait, as players show it.
    frames, short = dm.frames(VideoRef(str(VIDEOS / "decord_tests_test_data_video_90.mov"), "90"), random.Random(0))
    assert frames.shape[1:] == (568, 320, 3) and short  # 3 frames, looped to 16


def test_a_training_epoch_over_the_shared_clips_skips_and_counts_the_broken_one():
    dm = _video_module(str(VIDEOS))
    batches = list(dm.train_dataloader())
    assert len(batches) == 6 and all(b["inputs"].shape == (4, 3, 16, 32, 32) for b in batches)
    skipped = [r for b in batches for r in b["skipped"]]
    assert len(skipped) == 1 and BROKEN in skipped[0]  # replaced by another clip: shapes stay static
    assert all(len(b["masks"]) == 2 for b in batches)  # V-JEPA's short- and long-range groups
    assert any(b["short"] for b in batches)  # the 3-frame clips were looped, and named


def test_video_shards_written_by_jepa_shards_train(tmp_path, capsys):
    pattern = tmp_path / "shards" / "v-%06d.tar"
    assert main(["shards", "videos", str(VIDEOS), str(pattern), "--max-count", "12"]) == 0
    spec = str(tmp_path / "shards" / "v-{000000..000001}.tar")
    assert "skipped 1" in capsys.readouterr().out
    assert open_data(spec).modality == "video"
    cfg = write_tiny_video_config(tmp_path, steps=2, train=spec)
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false", "--data.clips.frame_step", "4"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["skipped_inputs"]["count"] == 0


def _one_frame_video(path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_a_video_shorter_than_one_tubelet_and_an_empty_file_are_skipped_and_counted(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    _one_frame_video(folder / "a_one_frame.mp4")
    (folder / "b_empty.mp4").write_bytes(b"")
    for name in ("imageio_cockatoo.mp4", "mmaction2_tests_data_test.mp4"):
        (folder / name).write_bytes((VIDEOS / name).read_bytes())
    dm = _video_module(str(folder), )
    dm.batch_size = 4
    batch = next(iter(dm.train_dataloader()))
    assert batch["inputs"].shape == (4, 3, 16, 32, 32)
    reasons = " | ".join(batch["skipped"])
    assert "a_one_frame.mp4" in reasons and "fewer than one tubelet" in reasons and "b_empty.mp4" in reasons
