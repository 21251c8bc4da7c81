"""Video decoding on the shared real clips: backend choice, upright frames, clip sampling, failures, time bound."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from jepa.data.video import (
    ClipSampling,
    VideoDecodeError,
    clip_indices,
    decode_clips,
    probe_video,
    read_frames,
)
from jepa.data.video import decode as decode_mod
from jepa.data.video.bench import bench_decoding, resize_clip
from jepa.errors import JEPAError

from conftest import SHARED_DATA

VIDEOS = SHARED_DATA / "videos"
CORRUPT = "decord_tests_test_data_corrupted.mp4"
DECORD_CANNOT = ["imageio_test.webm", "torchcodec_test_resources_av1_video.mkv"]
SMALL = ClipSampling(frames_per_clip=4)

needs_videos = pytest.mark.skipif(not VIDEOS.is_dir(), reason="../shared/data/videos not present")


def _names() -> list[str]:
    return sorted(p.name for p in VIDEOS.iterdir()) if VIDEOS.is_dir() else []


def _video(name: str) -> str:
    return str(VIDEOS / name)


@needs_videos
@pytest.mark.parametrize("name", [n for n in _names() if n != CORRUPT])
def test_every_shared_clip_decodes_to_a_uint8_clip(name):
    info = probe_video(_video(name))
    clips, short = decode_clips(_video(name), SMALL, random.Random(0))
    assert clips.dtype == np.uint8
    assert clips.shape == (1, 4, info.height, info.width, 3)
    assert clips.std() > 1  # real pictures, not a blank buffer
    assert short == (info.num_frames < 13)


@needs_videos
def test_a_corrupted_file_is_reported_by_name_on_one_line():
    # Frames 28..49 of this file are broken; a step of 16 makes every clip reach them.
    with pytest.raises(VideoDecodeError) as err:
        decode_clips(_video(CORRUPT), ClipSampling(frames_per_clip=4, frame_step=16), random.Random(0))
    message = str(err.value)
    assert CORRUPT in message and "decord:" in message and "pyav:" in message
    assert "\n" not in message
    # Its first 28 frames are sound, and PyAV stops after the last frame asked for.
    assert read_frames(_video(CORRUPT), [0, 4], backend="pyav").shape == (2, 720, 1280, 3)


@needs_videos
@pytest.mark.parametrize("name", DECORD_CANNOT)
def test_files_decord_cannot_read_come_through_pyav(name):
    assert probe_video(_video(name)).backend == "pyav"
    with pytest.raises(VideoDecodeError, match=name):
        probe_video(_video(name), backend="decord")
    clips, _ = decode_clips(_video(name), SMALL, random.Random(0))
    assert clips.shape[:2] == (1, 4)


@needs_videos
def test_decord_seeks_are_checked_against_pyav():
    # decord 0.6 returns grey garbage on this file's first seek past frame 145, unless frame 0 was read.
    path = _video("imageio_cockatoo.mp4")
    for seed in (0, 5):  # clips starting at frames 216 and 159
        a, _ = decode_clips(path, SMALL, random.Random(seed), backend="decord")
        b, _ = decode_clips(path, SMALL, random.Random(seed), backend="pyav")
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 1


@needs_videos
def test_keyframes_out_of_presentation_order_are_left_to_pyav():
    # In this HEVC file decord 0.6 lands every seek one frame late.
    path = _video("torchcodec_test_resources_h265_video.mp4")
    with pytest.raises(VideoDecodeError, match="presentation order"):
        probe_video(path, backend="decord")
    assert probe_video(path).backend == "pyav"
    with av.open(path) as container:
        every = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert np.array_equal(read_frames(path, [3, 7]), np.stack([every[3], every[7]]))


@needs_videos
def test_rotated_clips_come_out_upright_from_both_backends():
    flat = probe_video(_video("decord_tests_test_data_video_0.mov"))
    assert (flat.rotation, flat.height, flat.width) == (0, 320, 568)
    # Stored 568 wide, 320 high with a display matrix that turns it 90 degrees clockwise: a portrait
    # clip (other footage than _video_0.mov, so only sizes and the two backends are compared).
    path = _video("decord_tests_test_data_video_90.mov")
    turned = probe_video(path)
    assert (turned.rotation, turned.height, turned.width) == (90, 568, 320)
    by_decord = read_frames(path, [0, 2], backend="decord")
    by_pyav = read_frames(path, [0, 2], backend="pyav")
    assert by_decord.shape == by_pyav.shape == (2, 568, 320, 3)
    assert np.abs(by_decord.astype(int) - by_pyav.astype(int)).mean() < 1
    upside_down = _video("moviepy_media_fire2.mp4")
    assert probe_video(upside_down).rotation == 180
    a, b = (read_frames(upside_down, [3], backend=x) for x in ("decord", "pyav"))
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 1


def _marked_video(path: Path, rotation: int) -> None:
    """Five 64x32 frames, white top-left corner, with a display matrix of ``rotation`` degrees (CCW)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(rotation)
        for i in range(5):
            img = np.zeros((32, 64, 3), np.uint8)
            img[:8, :16] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.mark.parametrize("display, clockwise, corner", [(-90, 90, "top-right"), (180, 180, "bottom-right"),
                                                        (90, 270, "bottom-left")])
def test_display_matrix_turns_frames_the_way_players_do(tmp_path, display, clockwise, corner):
    path = tmp_path / "marked.mp4"
    _marked_video(path, display)
    assert probe_video(str(path), backend="pyav").rotation == clockwise
    for backend in ("decord", "pyav"):
        frame = read_frames(str(path), [2], backend=backend)[0].mean(axis=2)
        h, w = frame.shape
        assert (h, w) == ((32, 64) if clockwise == 180 else (64, 32))
        corners = {"top-left": frame[:4, :4], "top-right": frame[:4, -4:], "bottom-left": frame[-4:, :4],
                   "bottom-right": frame[-4:, -4:]}
        assert max(corners, key=lambda k: corners[k].mean()) == corner, backend


@needs_videos
@pytest.mark.parametrize("name", ["mmaction2_demo_demo.mp4", "imageio_test.webm"])
def test_encoded_bytes_decode_like_the_file(name):
    data = Path(_video(name)).read_bytes()
    from_bytes, _ = decode_clips(data, SMALL, random.Random(3))
    from_path, _ = decode_clips(_video(name), SMALL, random.Random(3))
    assert np.array_equal(from_bytes, from_path)
    with pytest.raises(VideoDecodeError, match="shard-000007/clip42"):
        decode_clips(data[:2000], SMALL, random.Random(3), name="shard-000007/clip42")


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_files_without_a_video_raise_naming_the_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    audio = tmp_path / "voice.m4a"
    _audio_only(audio)
    for path in (empty, text, audio, tmp_path / "missing.mp4"):
        with pytest.raises(VideoDecodeError) as err:
            decode_clips(str(path), SMALL, random.Random(0))
        assert path.name in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(VideoDecodeError, match="no video stream"):
        probe_video(str(audio))


def test_clip_indices_are_a_function_of_the_seed():
    cfg = ClipSampling(frames_per_clip=16, frame_step=4, clips_per_video=3)
    first, short = clip_indices(300, 30.0, cfg, random.Random(7))
    assert first == clip_indices(300, 30.0, cfg, random.Random(7))[0] and not short
    assert len(first) == 3
    for clip in first:
        assert len(clip) == 16 and 0 <= clip[0] and clip[-1] < 300
        assert all(b - a == 4 for a, b in zip(clip, clip[1:]))
    assert any(clip_indices(300, 30.0, cfg, random.Random(s))[0] != first for s in range(8, 12))
    rng = random.Random(0)
    starts = {clip_indices(20, 30.0, ClipSampling(4, 4), rng)[0][0][0] for _ in range(400)}
    assert starts == set(range(8))  # every start that keeps a 13-frame span inside 20 frames


def test_short_videos_loop_or_pad_and_are_flagged():
    loop, short = clip_indices(5, 30.0, ClipSampling(4, 4, short="loop"), random.Random(1))
    assert short
    start = loop[0][0]
    assert loop[0] == [(start + 4 * i) % 5 for i in range(4)]
    assert clip_indices(5, 30.0, ClipSampling(4, 4, short="pad"), random.Random(1)) == ([[0, 4, 4, 4]], True)
    assert clip_indices(13, 30.0, ClipSampling(4, 4), random.Random(1))[1] is False


@needs_videos
def test_a_short_real_video_is_padded_with_its_last_frame():
    path = _video("decord_tests_test_data_video_0.mov")  # 3 frames
    clips, short = decode_clips(path, ClipSampling(frames_per_clip=6, frame_step=1, short="pad"), random.Random(0))
    assert short
    assert np.array_equal(clips[0, 2:], np.repeat(clips[0, 2:3], 4, axis=0))
    assert not np.array_equal(clips[0, 0], clips[0, 2])


def test_target_fps_sets_the_frame_step():
    assert ClipSampling(fps=7.5).step_for(30.0) == 4
    assert ClipSampling(fps=30.0).step_for(25.0) == 1
    assert ClipSampling(fps=None, frame_step=3).step_for(30.0) == 3
    assert ClipSampling(fps=10.0, frame_step=3).step_for(0.0) == 3  # rate unknown: frame_step
    clip = clip_indices(300, 29.97, ClipSampling(frames_per_clip=4, fps=10.0), random.Random(0))[0][0]
    assert [b - a for a, b in zip(clip, clip[1:])] == [3, 3, 3]


@pytest.mark.parametrize("bad", [dict(short="crop"), dict(frames_per_clip=0), dict(frame_step=1.5),
                                 dict(fps=0), dict(clips_per_video=-1)])
def test_sampling_settings_are_checked(bad):
    with pytest.raises(JEPAError) as err:
        ClipSampling(**bad)
    assert next(iter(bad)) in str(err.value) and "\n" not in str(err.value)


@pytest.fixture
def hanging_decord(monkeypatch):
    release = threading.Event()

    def hang(src):
        release.wait(30)  # a decoder stuck in native code
        raise RuntimeError("released")

    monkeypatch.setitem(decode_mod._READERS, "decord", hang)
    yield
    release.set()


@needs_videos
def test_a_hanging_decoder_is_abandoned_after_the_timeout(hanging_decord):
    path = _video("mmaction2_tests_data_test.avi")
    t0 = time.monotonic()
    with pytest.raises(VideoDecodeError, match="timed out after 0.5 s"):
        decode_clips(path, SMALL, random.Random(0), backend="decord", timeout=0.5)
    assert time.monotonic() - t0 < 2.5
    t0 = time.monotonic()
    clips, _ = decode_clips(path, SMALL, random.Random(0), backend="auto", timeout=1.0)
    assert clips.shape == (1, 4, 240, 320, 3)  # PyAV took over after decord's second
    assert time.monotonic() - t0 < 5


@needs_videos
def test_a_stream_shorter_than_its_container_claims(monkeypatch):
    path = _video("imageio_realshort.mp4")  # 36 frames
    truth = read_frames(path, range(36), backend="pyav")
    real_init = decode_mod._PyAVReader.__init__

    def boastful(self, src):
        real_init(self, src)
        self.num_frames *= 10

    monkeypatch.setattr(decode_mod._PyAVReader, "__init__", boastful)
    cfg = ClipSampling(frames_per_clip=4, frame_step=8)
    clips, short = decode_clips(path, cfg, random.Random(2), backend="pyav")
    # Clips are picked again over the 36 frames that exist, with the same draw.
    picked = clip_indices(36, 30.0, cfg, random.Random(2))[0][0]
    assert np.array_equal(clips[0], truth[picked]) and not short
    assert read_frames(path, [0, 100, 35], backend="pyav").shape[0] == 2


def test_unknown_backend_is_a_user_error():
    with pytest.raises(JEPAError, match="backend"):
        probe_video("x.mp4", backend="opencv")


def test_resize_clip_gives_square_frames():
    frames = torch.randint(0, 256, (3, 90, 160, 3), dtype=torch.uint8)
    out = resize_clip(frames, 32)
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.uint8


@needs_videos
def test_bench_reports_clips_and_skipped_files():
    paths = [_video("mmaction2_tests_data_test.avi"), _video(CORRUPT)]
    with pytest.warns(UserWarning, match=CORRUPT):
        result = bench_decoding(paths, "pyav", workers=0, frames=16, size=32, seconds=1.0)
    assert set(result) >= {"backend", "workers", "clips", "seconds", "clips_per_s", "skipped"}
    assert result["clips"] >= 1 and result["skipped"] >= 1
