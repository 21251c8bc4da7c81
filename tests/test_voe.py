"""builtin:voe: violation-of-expectation twins that differ only from their event on, balanced by
their mirrors, every frame like the training scenes'; and builtin:physics, the scenes they come from."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from jepa.data.bouncing import DISTRACTOR_RADIUS, MAIN_RADIUS, PhysicsDataset
from jepa.data.voe import EVENTS, VoETwins

PER_EVENT = 4


@pytest.fixture(scope="module")
def twins():
    voe = VoETwins("val", pairs_per_event=PER_EVENT, resolution=32, num_frames=20)
    return voe, [voe.pair(i) for i in range(len(voe))]


def test_twins_are_identical_before_the_event_and_differ_after(twins):
    voe, pairs = twins
    assert len(pairs) == len(EVENTS) * PER_EVENT and {p.event for p in pairs} == set(EVENTS)
    lo, hi = voe.event_range
    for p in pairs:
        assert p.possible.shape == p.impossible.shape == (20, 32, 32, 3) and p.possible.dtype == np.uint8
        assert np.array_equal(p.possible[: p.event_frame], p.impossible[: p.event_frame]), p.key
        assert not np.array_equal(p.possible[p.event_frame:], p.impossible[p.event_frame:]), p.key
        assert lo <= p.event_frame <= hi + 3, (p.key, p.event_frame)
    again = voe.pair(5)  # a pure function of (split, index)
    assert np.array_equal(again.impossible, pairs[5].impossible)


def _frames(clips) -> list[str]:
    return sorted(hashlib.sha256(frame.tobytes()).hexdigest() for clip in clips for frame in clip)


@pytest.mark.parametrize("event", ["teleport", "vanish", "vanish_occluded", "colour", "size", "solidity"])
def test_mirrored_pairs_hold_the_same_frames_only_in_another_order(twins, event):
    """(A, A-then-B) and (B, B-then-A): the possible and the impossible clips show the same frames."""
    _, pairs = twins
    of_event = [p for p in pairs if p.event == event]
    for first, mirror in zip(of_event[::2], of_event[1::2]):
        assert first.variant != mirror.variant
        assert _frames([first.possible, mirror.possible]) == _frames([first.impossible, mirror.impossible])


def test_every_frame_of_an_impossible_clip_is_like_a_training_frame(twins):
    """Counts, sizes and colours stay within what builtin:physics shows (1 main disc and 2-3 others)."""
    voe, _ = twins
    for i in range(len(voe)):
        _, _, _, impossible, _ = voe.scenes(i)
        t, n = impossible.positions.shape[:2]
        radii = np.broadcast_to(impossible.radii, (t, n))
        visible = np.ones((t, n), bool) if impossible.visible is None else impossible.visible
        assert set(visible.sum(1).tolist()) <= {3, 4}, i
        assert ((radii[:, 0] >= MAIN_RADIUS[0]) & (radii[:, 0] <= MAIN_RADIUS[1])).all()
        assert ((radii[:, 1:] >= DISTRACTOR_RADIUS[0]) & (radii[:, 1:] <= DISTRACTOR_RADIUS[1])).all()
        colours = np.broadcast_to(impossible.colours, (t, n, 3))
        assert (colours[:, 0] >= 190).all() and ((colours[:, 1:] >= 80) & (colours[:, 1:] <= 170)).all()


def test_physics_scenes_never_enter_a_wall_and_the_solidity_twin_does():
    data = PhysicsDataset("train", num_frames=24)
    walled = 0
    for i in range(40):
        scene = data.scene(i)
        for wall in scene.walls:
            walled += 1
            for k, r in enumerate(scene.radii):
                assert (wall.distance(scene.positions[:, k]) > r - 0.01).all(), (i, k)
    assert 10 <= walled <= 30  # about half the scenes have a wall
    voe = VoETwins("val", pairs_per_event=2, events=["solidity"])
    _, _, possible, impossible, _ = voe.scenes(0)
    wall, r = possible.walls[0], possible.radii[1]
    assert (wall.distance(possible.positions[:, 1]) > r - 0.01).all()
    side = np.sign(possible.positions[:, 1, 1] - (wall.y0 + wall.y1) / 2)
    crossed = np.sign(impossible.positions[:, 1, 1] - (wall.y0 + wall.y1) / 2)
    assert len(set(side.tolist())) == 1 and len(set(crossed.tolist())) == 2  # the impossible disc changes side


def test_gravity_twins_leave_the_ballistic_path_by_several_pixels_within_a_window():
    voe = VoETwins("val", pairs_per_event=6, events=["gravity"])
    for i in range(len(voe)):
        _, variant, possible, impossible, _ = voe.scenes(i)
        gap = np.linalg.norm(possible.positions[:, 0] - impossible.positions[:, 0], axis=1)
        frame = int(np.argmax(gap > 0))
        assert gap[frame:frame + 8].max() * 64 >= 3, (variant, gap.max() * 64)  # pixels at 64 px


def test_what_jumps_or_vanishes_departs_from_the_last_frame_more_than_what_goes_on_possibly():
    """Copying the frame before the event forward, in pixels, where the twins ever differ: the impossible
    clip departs from it several times more than the possible one in every teleport and vanish pair. A
    disc vanishing at the top of its arc did not: it fell right after, changing as many pixels."""
    voe = VoETwins("val", pairs_per_event=8, resolution=64, num_frames=20, events=["teleport", "vanish"])

    def change(clip: np.ndarray, last: int, where: np.ndarray) -> int:
        return int(np.abs(clip[last:last + 5].astype(int) - clip[last].astype(int))[:, where].sum())

    for i in range(len(voe)):
        p = voe.pair(i)
        last, where = p.event_frame - 1, (p.possible != p.impossible).any(axis=(0, 3))
        assert change(p.impossible, last, where) > 3 * change(p.possible, last, where), (p.key, p.variant)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="splits train and val"):
        VoETwins("test")
    with pytest.raises(ValueError, match="unknown event 'gravityy'"):
        VoETwins(events=["gravityy"])
