"""Environments for planning: the two-rooms navigation task."""

from .two_rooms import (
    ENV_ID,
    TwoRoomsConfig,
    TwoRoomsEnv,
    in_keep_out,
    is_free,
    make_env,
    register_envs,
    render_states,
    room_of,
    step_states,
)

__all__ = ["ENV_ID", "TwoRoomsConfig", "TwoRoomsEnv", "in_keep_out", "is_free", "make_env", "register_envs",
           "render_states", "room_of", "step_states"]
