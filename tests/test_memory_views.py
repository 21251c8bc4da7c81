"""The in-memory data path (uint8 cache, crops on the device) and multi-view inputs."""

import itertools
import logging
import os
import random

import pytest
import torch
import torch.nn.functional as F

from jepa.cli import main
from jepa.data.color import ColorConfig, color_params, distort_colors
from jepa.data.device_crops import crop_boxes, resized_crops
from jepa.data.memory import MemoryImages, cache_path
from jepa.data.spec import open_image_data
from jepa.data.transforms import IMAGENET_MEAN, IMAGENET_STD, random_resized_crop_box
from jepa.errors import JEPAError
from jepa.seeding import mix_seed

from conftest import write_tiny_config
from helpers import read_records
from test_pretrain import record_callbacks, run_cli, with_callbacks


def _normalized(x: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    s = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    return (x.float() - m) / s


def test_batched_crops_match_a_plain_crop_and_resize():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 32, 32), generator=gen, dtype=torch.uint8)
    full = torch.tensor([[0.0, 0.0, 32.0, 32.0]] * 3)
    no_flip, flip = torch.zeros(3, dtype=torch.bool), torch.tensor([False, True, False])
    torch.testing.assert_close(resized_crops(images, full, no_flip, (32, 32)), _normalized(images), atol=1e-4, rtol=0)
    flipped = resized_crops(images, full, flip, (32, 32))
    torch.testing.assert_close(flipped[1], _normalized(images)[1].flip(-1), atol=1e-4, rtol=0)
    # A sub-box resized: the same as cropping it out and resizing it bilinearly (half-pixel centres),
    # except on the outermost output pixels, which here blend in the image just outside the box
    # where a crop-then-resize repeats the box's edge.
    box = torch.tensor([[4.0, 8.0, 16.0, 12.0]] * 3)
    expected = F.interpolate(images[:, :, 4:20, 8:20].float(), size=(16, 16), mode="bilinear", align_corners=False)
    got = resized_crops(images, box, no_flip, (16, 16))
    torch.testing.assert_close(got[..., 1:-1, 1:-1], _normalized(expected)[..., 1:-1, 1:-1], atol=1e-3, rtol=0)


def test_memory_crops_are_drawn_like_the_streaming_crops():
    boxes, flips = crop_boxes(32, 32, seed=7, step=3, indices=[5, 11], scale=(0.3, 1.0), ratio=(3 / 4, 4 / 3),
                              hflip=True)
    for row, index in enumerate([5, 11]):
        rng = random.Random(mix_seed(7, 3, index, 1))
        assert tuple(boxes[row].int().tolist()) == random_resized_crop_box(32, 32, (0.3, 1.0), (3 / 4, 4 / 3), rng)
        assert bool(flips[row]) == (rng.random() < 0.5)


def _image_folder(root, n=6, color=40):
    from PIL import Image

    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (20, 24), (color + i, 10, 200)).save(root / cls / f"{i}.png")


def test_the_cache_is_written_once_read_back_and_rebuilt_when_stale(tmp_path, caplog):
    _image_folder(tmp_path / "imgs")
    data = open_image_data(str(tmp_path / "imgs"))
    first = MemoryImages.load_or_build(data, (16, 16), "train", torch.device("cpu"), estimate_count=12)
    path = cache_path(data, (16, 16), "train")
    assert path.parent == tmp_path / "imgs" / "a" and path.is_file()  # next to the data
    assert first.images.shape == (12, 3, 16, 16) and first.images.dtype == torch.uint8
    assert first.labels.tolist() == [0] * 6 + [1] * 6
    stamp = path.stat().st_mtime_ns
    again = MemoryImages.load_or_build(data, (16, 16), "train", torch.device("cpu"))
    assert torch.equal(again.images, first.images) and path.stat().st_mtime_ns == stamp  # read, not rebuilt
    # A changed image makes the cache stale: it is detected, said in one line, and rebuilt.
    from PIL import Image

    Image.new("RGB", (20, 24), (250, 250, 250)).save(tmp_path / "imgs" / "a" / "0.png")
    os.utime(tmp_path / "imgs" / "a" / "0.png", ns=(stamp + 10**9, stamp + 10**9))
    with caplog.at_level(logging.WARNING, logger="jepa"):
        rebuilt = MemoryImages.load_or_build(open_image_data(str(tmp_path / "imgs")), (16, 16), "train",
                                             torch.device("cpu"))
    stale = [r.getMessage() for r in caplog.records if "stale" in r.getMessage()]
    assert len(stale) == 1 and str(path) in stale[0] and "rebuilding" in stale[0]
    assert rebuilt.images[0].float().mean() > 240 and not torch.equal(rebuilt.images, first.images)


def test_a_dataset_too_large_for_memory_is_refused_with_its_size(tmp_path, monkeypatch):
    _image_folder(tmp_path / "imgs")
    monkeypatch.setattr("jepa.data.memory.available_memory", lambda device: 10_000)
    with pytest.raises(JEPAError) as err:
        MemoryImages.load_or_build(open_image_data(str(tmp_path / "imgs")), (64, 64), "train",
                                   torch.device("cpu"), estimate_count=1_000_000)
    message = str(err.value)
    assert "decodes to 11.4 GiB at 64x64 but 0.0 GiB of cpu memory is available" in message
    assert "set data.memory_cache false to stream it from disk instead" in message


@pytest.mark.parametrize("views", ["{local_views: 2, local_size: 32}", "{local_views: 1, local_size: 2}",
                                   "{global_views: 1, global_scale: [0.5, 1.5]}",
                                   "{global_views: 1, color: {jitter: 1.5}}",
                                   "{global_views: 1, color: {jitter: 0.8, brightness: -0.2}}"])
def test_impossible_views_are_one_line(tmp_path, views):
    cfg = write_tiny_config(tmp_path, steps=1)
    result = run_cli("pretrain", "--config", str(cfg), "--data.views", views)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "data.views." in lines[0], result.stderr[-2000:]


def test_views_reach_the_batch_in_both_data_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from jepa.data.datamodule import PretrainDataModule
    from jepa.data.views import ViewsConfig

    for memory in (False, True):
        dm = PretrainDataModule("builtin:shapes", image_size=16, patch_size=4, batch_size=4, num_workers=0,
                             views=ViewsConfig(global_views=1, local_views=2, local_size=8), memory_cache=memory)
        batch = next(iter(dm.train_dataloader()))
        assert [v.shape for v in batch["views"]["global"]] == [(4, 3, 16, 16)]
        assert [v.shape for v in batch["views"]["local"]] == [(4, 3, 8, 8)] * 2
        assert batch["inputs"].shape == (4, 3, 16, 16) and batch["masks"][0][0].shape[0] == 4


def test_color_distortion_identity_grayscale_and_determinism():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8, 8, generator=gen)
    identity = torch.tensor([[1.0, 1.0, 1.0, 0.0]] * 2)
    torch.testing.assert_close(distort_colors(x, identity), x)
    gray = distort_colors(x, torch.tensor([[1.0, 1.0, 1.0, 1.0]] * 2))
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    # Brightness 0 is black whatever the other factors; saturation 0 equals gray.
    assert distort_colors(x, torch.tensor([[0.0, 1.5, 1.2, 0.0]] * 2)).abs().max() == 0
    torch.testing.assert_close(distort_colors(x, torch.tensor([[1.0, 1.0, 0.0, 0.0]] * 2)), gray)
    cfg = ColorConfig(jitter=0.8, grayscale=0.2)
    a, b = color_params(cfg, 3, 5, list(range(64)), 100), color_params(cfg, 3, 5, list(range(64)), 100)
    assert torch.equal(a, b) and not torch.equal(a, color_params(cfg, 3, 6, list(range(64)), 100))
    jittered = (a[:, :3] != 1).any(1).float().mean().item()
    assert 0.6 < jittered < 0.95 and 0.05 < a[:, 3].mean().item() < 0.4
    assert torch.equal(color_params(ColorConfig(), 3, 5, [0, 1], 100), torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0, 0.0]] * 2))
    # Blur and solarize are drawn after the colours: the colours of a run without them are unchanged.
    more = color_params(ColorConfig(jitter=0.8, grayscale=0.2, blur=0.5, solarize=0.2), 3, 5, list(range(64)), 100)
    assert torch.equal(more[:, :4], a[:, :4]) and 0.3 < (more[:, 4] > 0).float().mean() < 0.7
    assert ((more[:, 4] == 0) | ((more[:, 4] >= 0.1) & (more[:, 4] <= 2.0))).all()
    assert 0.05 < more[:, 5].mean().item() < 0.4


def test_blur_and_solarize():
    from jepa.data.color import gaussian_blur

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 16, 16, generator=gen)
    blurred = gaussian_blur(x, torch.tensor([0.0, 1.0, 2.0]))
    torch.testing.assert_close(blurred[0], x[0])  # sigma 0 leaves an image as it is
    # A blur keeps the mean (reflected borders, normalised kernel: up to the borders) and lowers the
    # pixel-to-pixel variation, more for a wider kernel.
    step = lambda y: (y[..., 1:] - y[..., :-1]).abs().mean().item()  # noqa: E731
    assert step(x[1]) > 2 * step(blurred[1]) > 2 * step(blurred[2])
    torch.testing.assert_close(blurred.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=0.02, rtol=0)
    # One image of the batch blurred alone is blurred the same (the kernel reaches the same radius).
    torch.testing.assert_close(gaussian_blur(x[1:2], torch.tensor([1.0])), blurred[1:2], atol=1e-6, rtol=0)
    solarized = distort_colors(x, torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0, 1.0]] * 3))
    torch.testing.assert_close(solarized, torch.where(x >= 0.5, 1 - x, x))
    assert solarized.max() <= 0.5


def test_colored_views_are_the_same_on_the_streaming_and_memory_paths():
    from PIL import Image

    from jepa.data.views import ViewMaker, ViewsConfig

    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (2, 3, 16, 16), generator=gen, dtype=torch.uint8)
    maker = ViewMaker(ViewsConfig(global_views=1, global_scale=(1.0, 1.0),
                                  color=ColorConfig(jitter=1.0, grayscale=0.5, blur=0.5, solarize=0.3)),
                      (16, 16), patch_size=4, hflip=False)
    batched = maker.apply(images, maker.boxes(16, 16, seed=0, step=2, indices=[4, 9]))["global"][0]
    for row, index in enumerate([4, 9]):
        pil = Image.fromarray(images[row].permute(1, 2, 0).numpy())
        single = maker.pil(pil, seed=0, step=2, index=index)["global"][0]
        torch.testing.assert_close(single, batched[row], atol=2e-3, rtol=0)
    plain = resized_crops(images, torch.tensor([[0.0, 0.0, 16.0, 16.0]] * 2), torch.zeros(2, dtype=torch.bool), (16, 16))
    assert (batched - plain).abs().amax(dim=(1, 2, 3)).min() > 0.05  # every view's colours changed


def test_memory_batches_are_the_same_with_planner_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from jepa.data.datamodule import PretrainDataModule
    from jepa.data.views import ViewsConfig

    batches = {}
    for workers in (0, 2):
        dm = PretrainDataModule("builtin:shapes", image_size=16, patch_size=4, batch_size=4, num_workers=workers,
                             views=ViewsConfig(global_views=1, local_views=1, local_size=8,
                                               color=ColorConfig(jitter=0.8, grayscale=0.2)), memory_cache=True)
        loader = dm.train_dataloader()
        loader.position = len(loader) - 3  # the last batches of an epoch and the first of the next
        batches[workers] = list(itertools.islice(itertools.chain(loader, loader), 6))
    assert len(batches[0]) == len(batches[2]) == 6
    for a, b in zip(batches[0], batches[2]):
        for key in ("inputs", "index"):
            assert torch.equal(a[key], b[key]), key
        assert all(torch.equal(x, y) for ga, gb in zip(a["masks"], b["masks"]) for x, y in zip(ga, gb))
        assert torch.equal(a["views"]["local"][0], b["views"]["local"][0])


CASES = [("sigreg", None, False), ("ema", "{global_views: 1, local_views: 2, local_size: 8}", True),
         ("sigreg", "{global_views: 1, local_views: 2, local_size: 8, color: {jitter: 0.8, grayscale: 0.2}}", True),
         ("lejepa", "{global_views: 2, local_views: 2, local_size: 8, color: {jitter: 0.8, grayscale: 0.2}}", True)]


@pytest.mark.parametrize("objective, views, memory", CASES,
                         ids=["sigreg", "ema-views-memory", "sigreg-color-views-memory", "lejepa-color-views-memory"])
def test_resume_is_bit_exact_for_objectives_views_and_the_memory_cache(tmp_path, monkeypatch, objective, views, memory):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    extra = ["--model.objective", objective, "--data.memory_cache", str(memory).lower(), "--probe.enabled", "false"]
    if views:
        extra += ["--data.views", views]
    straight = with_callbacks(write_tiny_config(tmp_path / "a", steps=6, ckpt_every=3), record_callbacks(tmp_path / "a.jsonl"))
    assert main(["pretrain", "--config", str(straight), *extra]) == 0
    first = with_callbacks(write_tiny_config(tmp_path / "b", steps=6, ckpt_every=3),
                           record_callbacks(tmp_path / "b.jsonl", stop_at=3))
    assert main(["pretrain", "--config", str(first), *extra]) == 0
    (tmp_path / "b.jsonl.rank0").unlink()
    second = with_callbacks(write_tiny_config(tmp_path / "b", steps=6, ckpt_every=3), record_callbacks(tmp_path / "b.jsonl"))
    assert main(["pretrain", "--config", str(second), *extra, "--ckpt_path", "last"]) == 0
    a = [r for r in read_records(tmp_path / "a.jsonl") if "loss" in r]
    b = [r for r in read_records(tmp_path / "b.jsonl") if "loss" in r]
    assert [r["step"] for r in b] == [4, 5, 6]
    assert [r["loss"] for r in a[3:]] == [r["loss"] for r in b]  # bit-identical
