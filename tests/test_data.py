import io
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from jepa.data import PretrainDataModule, ShapesDataset, open_image_data
from jepa.data.sampling import StepBatchSampler
from jepa.errors import JEPAError

from conftest import CIFAR, needs_cifar


def test_builtin_shapes_is_deterministic_labelled_and_split():
    a, b = ShapesDataset("train", resolution=32), ShapesDataset("train", resolution=32)
    img_a, label_a = a.load(123)
    img_b, label_b = b.load(123)
    assert img_a.size == (32, 32) and img_a.tobytes() == img_b.tobytes() and label_a == label_b
    labels = [a.label(i) for i in range(2000)]
    counts = torch.bincount(torch.tensor(labels), minlength=10)
    assert counts.min() > 150  # roughly balanced classes
    val = ShapesDataset("val", resolution=32)
    assert val.load(123)[0].tobytes() != img_a.tobytes()


def _save_images(folder: Path, n: int, size=(20, 20)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, (i * 20 % 255, 0, 0)).save(folder / f"{i}.png")


def test_folder_of_class_subfolders(tmp_path):
    _save_images(tmp_path / "cat", 3)
    _save_images(tmp_path / "dog", 2)
    data = open_image_data(str(tmp_path))
    assert data.classes == ("cat", "dog") and len(data.source) == 5
    assert data.source.load(4)[1] == 1


@pytest.mark.parametrize(
    "make, spec, message",
    [
        (lambda p: None, "{tmp}/missing", "does not exist"),
        (lambda p: (p / "empty").mkdir(), "{tmp}/empty", "holds no images"),
        (lambda p: None, "{tmp}/train-{{000000..000001}}.tar", "shard .*train-000000.tar does not exist"),
        (lambda p: None, "builtin:nope", "unknown builtin data"),
    ],
)
def test_bad_data_specs_name_the_problem(tmp_path, make, spec, message):
    make(tmp_path)
    with pytest.raises(JEPAError, match=message):
        open_image_data(spec.format(tmp=tmp_path))


def test_image_size_not_divisible_by_patch_is_refused():
    with pytest.raises(JEPAError, match="not divisible by patch size 16"):
        PretrainDataModule(image_size=100, patch_size=16)


def test_undecodable_image_is_skipped_and_reported(tmp_path):
    _save_images(tmp_path / "a", 7)
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png at all")
    dm = PretrainDataModule(str(tmp_path), image_size=16, patch_size=4, batch_size=8, num_workers=0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["inputs"].shape == (8, 3, 16, 16)  # the bad input was replaced: shapes stay static
    assert len(batch["skipped"]) == 1 and "broken.png" in batch["skipped"][0]


def test_step_batch_sampler_disjoint_ranks_and_resume():
    ranks = [StepBatchSampler(100, 4, seed=1, rank=r, world_size=2) for r in range(2)]
    seen = [{i for batch in s for i, _ in batch} for s in ranks]
    assert not seen[0] & seen[1] and len(seen[0]) == len(seen[1]) == 48
    full = list(StepBatchSampler(100, 4, seed=1))
    resumed = StepBatchSampler(100, 4, seed=1)
    resumed.start = 30  # epoch 1 (25 batches each), batch 5
    second_epoch = list(StepBatchSampler(100, 4, seed=1)._batches(25))
    assert list(resumed) == second_epoch[5:]
    assert [b[0][1] for b in full] == list(range(25))  # the global batch number rides along
    assert full != second_epoch  # each epoch is a new permutation


def test_builtin_loader_resumes_where_it_stopped():
    dm = PretrainDataModule(image_size=16, patch_size=4, batch_size=4, num_workers=0)
    loader = dm.train_dataloader()
    straight = [b for _, b in zip(range(6), loader)]
    loader2 = dm.train_dataloader()
    loader2.position = 3
    resumed = [b for _, b in zip(range(3), loader2)]
    for a, b in zip(straight[3:], resumed):
        assert torch.equal(a["inputs"], b["inputs"]) and torch.equal(a["masks"][0][0], b["masks"][0][0])
        assert a["step"] == b["step"]


def _write_shard(path: Path, n: int, broken: set[int] = frozenset()) -> None:
    with tarfile.open(path, "w") as tar:
        for i in range(n):
            buf = io.BytesIO()
            Image.new("RGB", (16, 16), (i * 9 % 255, i * 5 % 255, 0)).save(buf, format="JPEG")
            data = b"garbage" if i in broken else buf.getvalue()
            for name, payload in ((f"{i:05d}.jpg", data), (f"{i:05d}.cls", str(i % 3).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


@pytest.mark.parametrize("workers", [0, 2])
def test_shard_stream_resumes_mid_epoch_exactly(tmp_path, workers):
    for k in range(3):
        _write_shard(tmp_path / f"s-{k}.tar", 20)
    spec = str(tmp_path / "s-{0..2}.tar")
    dm = PretrainDataModule(spec, image_size=16, patch_size=4, batch_size=4, num_workers=workers, shuffle_buffer=8)
    loader = dm.train_dataloader()
    assert len(loader) == 15
    straight = [b for _, b in zip(range(8), loader)]
    assert [b["step"] for b in straight] == list(range(8))
    loader2 = dm.train_dataloader()
    loader2.position = 5
    resumed = [b for _, b in zip(range(3), loader2)]
    for a, b in zip(straight[5:], resumed):
        assert a["step"] == b["step"]
        assert torch.equal(a["inputs"], b["inputs"]) and torch.equal(a["masks"][0][1], b["masks"][0][1])


def test_shard_stream_skips_undecodable_samples(tmp_path):
    _write_shard(tmp_path / "s-0.tar", 12, broken={3})
    dm = PretrainDataModule(str(tmp_path / "s-0.tar"), image_size=16, patch_size=4, batch_size=4, num_workers=0)
    batches = [b for _, b in zip(range(2), dm.train_dataloader())]
    assert all(b["inputs"].shape == (4, 3, 16, 16) for b in batches)
    skipped = [r for b in batches for r in b["skipped"]]
    assert len(skipped) <= 1  # the broken sample is skipped if the shuffled stream reached it
    dm2 = PretrainDataModule(str(tmp_path / "s-0.tar"), image_size=16, patch_size=4, batch_size=11, num_workers=0,
                          shuffle_buffer=1, samples_per_epoch=11)
    batch = next(iter(dm2.train_dataloader()))
    assert any("00003" in r for r in batch["skipped"])


@needs_cifar()
def test_cifar_shards_load_with_labels_and_classes():
    dm = PretrainDataModule(str(CIFAR / "train-{000000..000009}.tar"), val=str(CIFAR / "test-{000000..000001}.tar"),
                         image_size=32, patch_size=4, batch_size=16, num_workers=0, samples_per_epoch=50000,
                         probe_train_samples=100, probe_val_samples=50)
    assert dm.num_classes == 10
    batch = next(iter(dm.train_dataloader()))
    assert batch["inputs"].shape == (16, 3, 32, 32) and batch["labels"].max() < 10
    fit, score = dm.probe_dataloaders()
    assert sum(len(y) for _, y, _ in score) == 50


def test_shards_without_classes_file_name_it_when_the_probe_is_skipped(tmp_path):
    import json

    from jepa.cli import main

    from conftest import write_tiny_config

    shards = tmp_path / "shards"
    shards.mkdir()
    _write_shard(shards / "train-000000.tar", 24)
    cfg = write_tiny_config(tmp_path, steps=1)
    spec = str(shards / "train-000000.tar")
    assert main(["pretrain", "--config", str(cfg), "--data.train", spec, "--data.val", spec]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "classes.txt" in summary["probe"]["skipped"], summary["probe"]
