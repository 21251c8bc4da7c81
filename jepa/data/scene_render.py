"""Drawing the procedural disc scenes: anti-aliased discs, solid walls, an occluding bar, a gradient
background and per-frame sensor noise, as uint8 clips.

A disc's radius, colour and visibility may change from frame to frame (the violation-of-expectation
twins of ``builtin:voe`` change them); everything else is drawn per frame from the same arrays, so
two scenes that agree up to a frame render identical pixels up to that frame, noise included.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .bouncing import BouncingScene


def _per_frame(values: np.ndarray, num_frames: int, extra: tuple[int, ...] = ()) -> np.ndarray:
    """A disc property given per disc ([N, *extra]) or per frame ([T, N, *extra]) as [T, N, *extra]."""
    values = np.asarray(values)
    return values if values.ndim == 2 + len(extra) else np.broadcast_to(values, (num_frames, *values.shape))


def render_clip(scene: BouncingScene, resolution: int) -> np.ndarray:
    """Renders a scene as a uint8 clip [T, H, W, 3] with anti-aliased edges.

    Discs, walls and the bar are coverage masks from distance fields with a one-pixel ramp, so
    sub-pixel motion changes the edge pixels. Draw order: background, distractors, main object,
    walls, bar, noise.

    Args:
        scene: the scene to draw.
        resolution: side H = W of the frames in pixels.

    Returns:
        The clip as uint8 [T, H, W, 3].
    """
    num_frames = scene.positions.shape[0]
    radii = _per_frame(scene.radii, num_frames).astype(np.float32)
    colours = _per_frame(scene.colours, num_frames, (3,)).astype(np.float32)
    grid = (np.arange(resolution, dtype=np.float32) + 0.5) / resolution  # pixel centres in box units
    xs, ys = grid[None, None, :], grid[None, :, None]
    # Coverage of every layer in draw order: distractors, then the main object in front, then the walls
    # and the bar. A layer's colour is [T, 1, 1] per channel, so colours may change from frame to frame.
    layers, layer_colours = [], []
    for k in [*range(1, radii.shape[1]), 0]:
        cx = scene.positions[:, k, 0].astype(np.float32)[:, None, None]
        cy = scene.positions[:, k, 1].astype(np.float32)[:, None, None]
        dist = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
        coverage = np.clip((radii[:, k, None, None] - dist) * resolution + 0.5, 0, 1)
        if scene.visible is not None:
            coverage = coverage * scene.visible[:, k, None, None].astype(np.float32)
        layers.append(coverage)
        layer_colours.append(colours[:, k, None, None, :])
    for wall in scene.walls:
        # Signed distance to the rectangle: outside, the distance to it; inside, minus the depth.
        dx = np.maximum(np.maximum(wall.x0 - xs[0], xs[0] - wall.x1), 0)
        dy = np.maximum(np.maximum(wall.y0 - ys[0], ys[0] - wall.y1), 0)
        depth = np.minimum(np.minimum(xs[0] - wall.x0, wall.x1 - xs[0]), np.minimum(ys[0] - wall.y0, wall.y1 - ys[0]))
        outside = np.sqrt(dx * dx + dy * dy)
        signed = np.where(outside > 0, outside, -depth)
        layers.append(np.broadcast_to(np.clip(0.5 - signed * resolution, 0, 1), layers[0].shape))
        layer_colours.append(np.asarray(scene.wall_colour, dtype=np.float32)[None, None, None, :])
    bx, by, ba, half_length, half_width = scene.bar
    ux, uy = math.cos(ba), math.sin(ba)
    px, py = xs[0] - bx, ys[0] - by
    along = np.clip(px * ux + py * uy, -half_length, half_length)
    dist = np.sqrt((px - along * ux) ** 2 + (py - along * uy) ** 2)
    layers.append(np.broadcast_to(np.clip((half_width - dist) * resolution + 0.5, 0, 1), layers[0].shape))
    layer_colours.append(np.asarray(scene.bar_colour, dtype=np.float32)[None, None, None, :])
    # "Over" compositing in closed form: layer k shows with weight alpha_k times the transmittance of the
    # layers above it. Weights are one channel, so this costs a third of blending RGB layer by layer.
    weights = []
    transmittance = np.ones_like(layers[0])
    for layer in reversed(layers):
        weights.append(layer * transmittance)
        transmittance *= 1 - layer
    weights.reverse()
    theta = scene.gradient_angle
    ramp = np.clip(math.cos(theta) * (xs[0] - 0.5) + math.sin(theta) * (ys[0] - 0.5) + 0.5, 0, 1)
    c0, c1 = scene.background.astype(np.float32)
    background = c0 + (c1 - c0) * ramp[..., None]
    # Elementwise sums rather than a BLAS matmul: as fast single-threaded, bit-identical on every CPU, and
    # not slowed 4x by OpenBLAS threads fighting data-loader workers for cores.
    clip = np.empty((*transmittance.shape, 3), dtype=np.float32)
    for c in range(3):
        channel = transmittance * background[..., c]
        for weight, colour in zip(weights, layer_colours):
            channel += weight * colour[..., c]
        clip[..., c] = channel
    # Grey sensor noise, fresh in every frame, so that a plain frame difference is not yet the answer.
    noise = np.random.default_rng(scene.noise_seed).standard_normal(
        (num_frames, resolution, resolution, 1), dtype=np.float32)
    clip += float(scene.noise_sigma) * noise + 0.5  # + 0.5: the uint8 cast below truncates, this rounds
    return np.clip(clip, 0, 255, out=clip).astype(np.uint8)
