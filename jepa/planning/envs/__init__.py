"""Environments for planning behind one protocol (``protocol.PlanningEnv``) and a registry of names
(``registry.py``): Two-Rooms."""

from .protocol import PlanningEnv
from .registry import ENVIRONMENTS, Environment, PipelineSizes, environment, make_env, register_envs
from .two_rooms import (
    ENV_ID,
    TwoRoomsConfig,
    TwoRoomsEnv,
    in_keep_out,
    is_free,
    render_states,
    room_of,
    step_states,
)

__all__ = ["ENVIRONMENTS", "ENV_ID", "Environment", "PipelineSizes", "PlanningEnv", "TwoRoomsConfig", "TwoRoomsEnv",
           "environment", "in_keep_out", "is_free", "make_env", "register_envs", "render_states", "room_of",
           "step_states"]
