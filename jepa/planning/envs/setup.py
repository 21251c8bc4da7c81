"""What every planning environment's constructor does: its config with overrides checked, its render
mode, and its spaces (uint8 frames, 2-D actions in a norm box)."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium
import numpy as np


def configure(env: gymnasium.Env, config: Any, overrides: dict[str, Any], render_mode: str | None) -> None:
    """Sets ``env.config`` (``config`` or its class's default, with ``overrides``), ``env.render_mode``,
    ``env.observation_space`` ([resolution, resolution, 3] uint8) and ``env.action_space`` ([2] within
    ``max_action_norm``). An unknown option is a TypeError naming it, a bad render mode a ValueError."""
    config = config or env.config_class()
    fields = {f.name for f in dataclasses.fields(env.config_class)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown {env.name} option {unknown[0]!r}: options are {', '.join(sorted(fields))}")
    env.config = dataclasses.replace(config, **overrides) if overrides else config
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
    env.render_mode = render_mode
    res, high = env.config.resolution, env.config.max_action_norm
    env.observation_space = gymnasium.spaces.Box(0, 255, (res, res, 3), np.uint8)
    env.action_space = gymnasium.spaces.Box(-high, high, (2,), np.float32)
