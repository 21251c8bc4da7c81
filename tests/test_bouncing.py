"""builtin:bouncing: deterministic labelled clips whose label needs motion to read."""

import dataclasses

import numpy as np
import pytest
import torch

from jepa.data.bouncing import (
    GRAVITY,
    BouncingDataset,
    direction_sector,
    render_clip,
    simulate,
)


def test_clips_are_deterministic_uint8_and_split():
    a, b = BouncingDataset("train"), BouncingDataset("train")
    clip, label = a.load(123)
    assert clip.shape == (16, 64, 64, 3) and clip.dtype == np.uint8
    again, label_again = b.load(123)
    assert np.array_equal(clip, again) and label == label_again == a.label(123)
    assert not np.array_equal(BouncingDataset("val").load(123)[0], clip)
    assert not np.array_equal(a.load(124)[0], clip)
    assert a.describe(5) == "builtin:bouncing/train/5" and len(a) == 50_000
    small = BouncingDataset("val", length=10, resolution=32, num_frames=8)
    assert small.load(0)[0].shape == (8, 32, 32, 3) and len(small) == 10
    with pytest.raises(ValueError):
        BouncingDataset("test")


def test_labels_are_balanced_and_are_the_initial_direction():
    data = BouncingDataset("train")
    assert len(data.classes) == 8 and data.classes[0] == "E" and data.classes[2] == "N"
    counts = np.bincount([data.label(i) for i in range(2000)], minlength=8)
    assert counts.min() > 180  # 250 expected per class
    for i in range(50):
        scene = data.scene(i)
        assert direction_sector(scene.velocities[0, 0]) == scene.label == data.label(i)


def test_a_dropped_disc_bounces_elastically_off_the_floor():
    positions, velocities = simulate(np.array([[0.5, 0.7]]), np.array([[0.0, 0.01]]), np.array([0.1]), 40)
    y, vy = positions[:, 0, 1], velocities[:, 0, 1]
    assert y.max() <= 0.9 + 1e-12  # the floor, for a disc of radius 0.1
    flips = np.flatnonzero((vy[:-1] > 0) & (vy[1:] < 0))
    assert len(flips) >= 1 and y[flips[0]:flips[0] + 2].max() > 0.88  # it turned at the floor
    energy = 0.5 * (velocities[:, 0] ** 2).sum(-1) - GRAVITY * y
    assert np.ptp(energy) < 1e-12
    assert abs(y[flips[0] + 1:].min() - (0.7 - 0.01**2 / (2 * GRAVITY))) < 2e-3  # elastic: back to its apex


def test_discs_bounce_off_walls_and_stay_in_the_box():
    positions, velocities = simulate(np.array([[0.85, 0.5]]), np.array([[0.03, 0.0]]), np.array([0.1]), 10)
    assert velocities[0, 0, 0] > 0 and velocities[-1, 0, 0] < 0 and positions[:, 0, 0].max() <= 0.9
    data = BouncingDataset("val")
    for i in range(100):
        scene = data.scene(i)
        r = scene.radii[None, :, None]
        assert (scene.positions >= r - 1e-9).all() and (scene.positions <= 1 - r + 1e-9).all()
        travelled = np.linalg.norm(np.diff(scene.positions[:, 0], axis=0), axis=-1).sum()
        assert travelled > 0.2  # about 13 pixels at least: the main object really moves


def test_sub_pixel_motion_changes_the_frame():
    scene = dataclasses.replace(BouncingDataset("train", num_frames=1).scene(7), noise_sigma=0.0)
    shifted = dataclasses.replace(scene, positions=scene.positions + np.array([0.25 / 64, 0.0]))
    assert not np.array_equal(render_clip(scene, 64), render_clip(shifted, 64))


def _bright_centroid(frames: np.ndarray) -> np.ndarray:
    """Centre (x, y) in box units of the pixels bright enough to be the main disc, [n, H, W, 3] -> [n, 2]."""
    mask = (frames.astype(np.float32).mean(-1) > 180).astype(np.float32)
    grid = (np.arange(frames.shape[1]) + 0.5) / frames.shape[1]
    total = mask.sum((1, 2)) + 1e-6
    return np.stack([(mask * grid).sum((1, 2)) / total, (mask * grid[:, None]).sum((1, 2)) / total], axis=1)


def _cells(centres: np.ndarray, k: int = 6) -> np.ndarray:
    """One-hot k x k grid cell of each position: lets a linear classifier use any function of position."""
    cell = np.clip((centres * k).astype(int), 0, k - 1)
    onehot = np.zeros((len(centres), k * k), np.float32)
    onehot[np.arange(len(centres)), cell[:, 1] * k + cell[:, 0]] = 1
    return onehot


def _pooled(frames: np.ndarray) -> np.ndarray:
    """8 x 8 average-pooled RGB, [n, 64, 64, 3] -> [n, 192]."""
    return frames.astype(np.float32).reshape(len(frames), 8, 8, 8, 8, 3).mean((2, 4)).reshape(len(frames), -1)


def _accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """Held-out accuracy of an L2-regularised multinomial logistic regression."""
    torch.manual_seed(0)
    x, xt = torch.tensor(train_x, dtype=torch.float32), torch.tensor(test_x, dtype=torch.float32)
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, xt = (x - mean) / std, (xt - mean) / std
    y = torch.tensor(train_y)
    linear = torch.nn.Linear(x.shape[1], 8)
    opt = torch.optim.LBFGS(linear.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(x), y) + 1e-2 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (linear(xt).argmax(1) == torch.tensor(test_y)).float().mean().item()


def test_one_frame_says_nothing_about_the_label_but_motion_does():
    # Train on 400 train clips, score on 400 held-out val clips; chance is 1/8.
    train = [BouncingDataset("train").load(i) for i in range(400)]
    val = [BouncingDataset("val").load(i) for i in range(400)]
    clips, labels = np.stack([c for c, _ in train]), np.array([y for _, y in train])
    val_clips, val_labels = np.stack([c for c, _ in val]), np.array([y for _, y in val])

    def score(feature) -> float:
        return _accuracy(feature(clips), labels, feature(val_clips), val_labels)

    # Frame 0 alone: neither its pixels nor where the main disc is tell the direction.
    assert score(lambda c: _pooled(c[:, 0])) < 0.25
    assert score(lambda c: _cells(_bright_centroid(c[:, 0]))) < 0.25
    # Mid-clip, the walls leak a little (a disc heading east has left the west band), but far less than motion.
    assert score(lambda c: _cells(_bright_centroid(c[:, 8]))) < 0.3
    # The main disc's displacement from frame 0 to frame 2 gives the direction away.
    assert score(lambda c: _bright_centroid(c[:, 2]) - _bright_centroid(c[:, 0])) > 0.6
