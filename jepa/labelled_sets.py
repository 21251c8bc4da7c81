"""Two real labelled image sets that no shipped recipe is tuned on, written as train and test image
shards (PNG, a ``classes.txt`` beside them) by ``jepa shards digits`` and ``jepa shards pusht-angles``:
what to point a recipe at to see whether it learns on data it was not chosen for.

- ``digits``: scikit-learn's bundled 8 x 8 scans of handwritten digits (1,797 real scans, 10
  classes; no download). Train: the first 1,438 (80%), test: the last 359.
- ``pusht-angles``: the 96 x 96 camera frames of real Push-T episodes, every ``every``-th frame,
  labelled by the T block's angle in 8 sectors of 45 degrees. Episodes are split whole (frames of
  one episode are near copies of each other): the last ``test_fraction`` of the episodes are the test set.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from .data.shard_sink import check_output
from .data.shard_writer import DEFAULT_MAX_BYTES, DEFAULT_MAX_COUNT, ShardReport, write_image_shards
from .errors import JEPAError

SETS = ("digits", "pusht-angles")
SECTORS = 8


def digit_scans() -> Iterator[tuple[str, np.ndarray, int]]:
    """(split, uint8 RGB image [8, 8, 3], digit) of each of scikit-learn's 1,797 scans."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise JEPAError("jepa shards digits needs scikit-learn (pip install scikit-learn, or the dev extra)") from None
    digits = load_digits()
    # 17 grey levels, ink high: scaled to 0-255 and inverted, dark ink on white as scanned.
    images = 255 - np.round(digits.images * (255 / 16)).astype(np.uint8)
    n_train = round(0.8 * len(images))
    for i, (image, label) in enumerate(zip(images, digits.target)):
        yield ("train" if i < n_train else "test"), np.repeat(image[..., None], 3, axis=2), int(label)


def angle_sector(angle: float, sectors: int = SECTORS) -> int:
    """The sector (0 .. sectors - 1) of ``angle`` radians, sector 0 starting at angle 0."""
    return int((angle % (2 * math.pi)) // (2 * math.pi / sectors)) % sectors


def pusht_angle_frames(episodes: str, every: int = 4, test_fraction: float = 0.2) -> Iterator[tuple[str, np.ndarray, int]]:
    """(split, uint8 frame [H, W, 3], angle sector) of every ``every``-th frame of the Push-T episode
    shards ``episodes`` (their ``state.npy`` holds the block's angle in column 4)."""
    from .planning.trajectories import held_out_count, read_episodes

    if every < 1 or not 0 < test_fraction < 1:
        raise JEPAError(f"every must be >= 1 and test_fraction between 0 and 1, got {every} and {test_fraction}")
    kept: list[tuple[np.ndarray, list[int]]] = []  # each episode's kept frames and sectors
    for ep in read_episodes(episodes):
        if ep.states is None or ep.states.shape[1] < 5:
            raise JEPAError(f"episode {ep.key} of {ep.url} has no block angle (state.npy with 5 columns): "
                            "pusht-angles needs Push-T episodes")
        kept.append((ep.frames[::every].copy(), [angle_sector(float(a)) for a in ep.states[::every, 4]]))
    if not kept:
        raise JEPAError(f"{episodes} holds no episodes")
    n_train = len(kept) - held_out_count(len(kept), test_fraction)
    for i, (frames, sectors) in enumerate(kept):
        for frame, sector in zip(frames, sectors):
            yield ("train" if i < n_train else "test"), frame, sector


def write_labelled_set(name: str, out_dir: str, src: str | None = None, every: int = 4,
                       overwrite: bool = False) -> dict[str, ShardReport]:
    """Writes set ``name`` as ``out_dir/train-%06d.tar`` and ``out_dir/test-%06d.tar`` (PNG, classes
    in ``classes.txt``), each read back and checked. Returns the report of each split."""
    if name == "digits":
        if src is not None:
            raise JEPAError("jepa shards digits takes no SRC (the scans ship with scikit-learn): give --out DIR")
        samples, classes = digit_scans(), [str(d) for d in range(10)]
    elif name == "pusht-angles":
        if src is None:
            raise JEPAError("jepa shards pusht-angles needs SRC: Push-T episode shards, e.g. "
                            "'../shared/data/pusht/pusht-{000000..000003}.tar'")
        samples = pusht_angle_frames(src, every)
        classes = [f"{45 * k:03d}-{45 * (k + 1):03d}deg" for k in range(SECTORS)]
    else:
        raise JEPAError(f"unknown labelled set {name!r}: choose one of {', '.join(SETS)}")
    for split in ("train", "test"):  # before anything is decoded: shards already there end it in one line
        check_output(str(Path(out_dir) / f"{split}-%06d.tar"), DEFAULT_MAX_COUNT, DEFAULT_MAX_BYTES, overwrite)
    with tempfile.TemporaryDirectory(prefix=f"jepa-{name}-") as tmp:
        # Every class folder in both splits, named in label order (the image-folder reader sorts
        # them): a class missing from one split must not shift the other labels.
        folders = {(split, label): Path(tmp) / split / f"{label:02d}_{c}" for split in ("train", "test")
                   for label, c in enumerate(classes)}
        for folder in folders.values():
            folder.mkdir(parents=True)
        for i, (split, image, label) in enumerate(samples):
            Image.fromarray(image).save(folders[split, label] / f"{i:06d}.png")
        reports = {split: write_image_shards(Path(tmp) / split, str(Path(out_dir) / f"{split}-%06d.tar"),
                                             overwrite=overwrite)
                   for split in ("train", "test")}
    return reports
