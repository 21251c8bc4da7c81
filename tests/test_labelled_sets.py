"""jepa shards digits / pusht-angles: two real labelled sets no recipe is tuned on, written by a command."""

import io
import math
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from jepa import cli, labelled_sets
from jepa.cli import main
from jepa.labelled_sets import angle_sector

from test_pretrain import run_cli

PUSHT = Path(__file__).resolve().parents[2] / "shared" / "data" / "pusht" / "pusht-000000.tar"


def read(pattern: str) -> list[tuple[np.ndarray, int]]:
    return [(np.asarray(Image.open(io.BytesIO(s["png"]))), int(s["cls"]))
            for s in wds.WebDataset(pattern, shardshuffle=False, empty_check=False)]


def test_the_digits_are_written_as_train_and_test_shards_with_their_labels(tmp_path):
    from sklearn.datasets import load_digits

    assert main(["shards", "digits", "--out", str(tmp_path)]) == 0
    train, test = read(str(tmp_path / "train-000000.tar")), read(str(tmp_path / "test-000000.tar"))
    assert len(train) == 1438 and len(test) == 359
    assert (tmp_path / "classes.txt").read_text().splitlines() == [f"{d:02d}_{d}" for d in range(10)]
    digits = load_digits()
    # Every scan once, with its own label (the shards are shuffled: compare as multisets).
    def key(image, label):
        return image[..., 0].tobytes(), label
    expected = sorted(key(255 - np.round(im * (255 / 16)).astype(np.uint8)[..., None].repeat(3, 2), int(y))
                      for im, y in zip(digits.images, digits.target))
    assert sorted(key(im, y) for im, y in train + test) == expected
    assert train[0][0].shape == (8, 8, 3)


@pytest.mark.skipif(not PUSHT.exists(), reason="../shared/data/pusht not present")
def test_pusht_angles_split_whole_episodes_and_label_the_block_angle(tmp_path):
    assert main(["shards", "pusht-angles", str(PUSHT), "--out", str(tmp_path), "--every", "16"]) == 0
    from jepa.planning.trajectories import read_episodes

    episodes = list(read_episodes(str(PUSHT)))
    n_test = round(0.2 * len(episodes))
    frames = lambda eps: sum(math.ceil(len(e.frames) / 16) for e in eps)  # noqa: E731
    train, test = read(str(tmp_path / "train-000000.tar")), read(str(tmp_path / "test-000000.tar"))
    assert len(train) == frames(episodes[:-n_test]) and len(test) == frames(episodes[-n_test:])
    expected = sorted(angle_sector(float(a)) for e in episodes[-n_test:] for a in e.states[::16, 4])
    assert sorted(y for _, y in test) == expected
    assert test[0][0].shape == (96, 96, 3)
    assert len((tmp_path / "classes.txt").read_text().splitlines()) == 8


def test_angle_sectors():
    assert [angle_sector(a) for a in (0.0, math.pi / 4 - 1e-6, math.pi / 4, math.pi, -1e-6, 2 * math.pi)] == \
        [0, 0, 1, 4, 7, 0]


def test_bad_labelled_set_commands_are_one_line(tmp_path):
    assert cli.LABELLED_SETS == labelled_sets.SETS
    result = run_cli("shards", "digits", str(tmp_path))
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == (
        "error: jepa shards digits takes no SRC (the scans ship with scikit-learn): give --out DIR")
    result = run_cli("shards", "pusht-angles", "--out", str(tmp_path))
    assert result.returncode == 2 and "needs SRC: Push-T episode shards" in result.stderr
    result = run_cli("shards", "images", "--out", str(tmp_path / "x-%06d.tar"))
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == (
        "error: jepa shards images needs SRC: a folder of images (class subfolders give labels)")
    assert main(["shards", "digits", "--out", str(tmp_path / "d")]) == 0
    result = run_cli("shards", "digits", "--out", str(tmp_path / "d"))
    assert result.returncode == 2 and "already exists" in result.stderr and "--overwrite" in result.stderr
    assert "Traceback" not in result.stderr
