"""The environments the planning agent knows, by name: one line per environment.

A new environment is one file (a gymnasium environment with what ``protocol.PlanningEnv`` lists)
plus one ``Environment`` entry below; ``make_env``, ``jepa world episodes --env``, ``jepa plan --env``
and ``jepa plan pipeline --env`` then take its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium

from ...errors import JEPAError
from .four_rooms import FourRoomsConfig, FourRoomsEnv
from .protocol import PlanningEnv
from .push_t import PushTConfig, PushTEnv
from .two_rooms import TwoRoomsConfig, TwoRoomsEnv


@dataclass(frozen=True)
class PipelineSizes:
    """What ``jepa plan pipeline`` runs for an environment: exploration episodes and their length,
    encoder, world-model and slow-model optimizer steps, evaluation episodes."""

    episodes: int
    length: int
    encoder_steps: int
    world_steps: int
    eval_episodes: int
    slow_steps: int = 6000  # the slow world models' optimizer steps, shared by the members (--hierarchy 2)
    frame_every: int = 4  # every k-th episode frame becomes an encoder training image
    slow_members: int = 1  # slow world models planned with as one ensemble (--hierarchy 2)


@dataclass(frozen=True)
class Environment:
    """A registered environment: its names, class and config, and its pipeline recipe (shipped
    configs under ``configs/planning/`` and sizes)."""

    name: str
    gym_id: str
    env_class: type
    config_class: type
    encoder_config: str
    world_config: str
    sizes: dict[str, PipelineSizes]
    slow_config: str = "slow_world.yaml"
    from_recordings: bool = False  # the pipeline replays recorded episodes (--replay) instead of exploring
    # The encoder learns from the episodes' frames and actions (jepa world encoder) instead of from
    # frame shards by image pretraining (jepa pretrain).
    encoder_from_episodes: bool = False

    def make(self, **kwargs: Any) -> PlanningEnv:
        return self.env_class(**kwargs)


ENVIRONMENTS: dict[str, Environment] = {env.name: env for env in (
    Environment("two-rooms", "jepa/TwoRooms-v0", TwoRoomsEnv, TwoRoomsConfig, "two_rooms_encoder.yaml",
                "two_rooms_world.yaml", {"full": PipelineSizes(400, 100, 600, 3000, 50),
                                         "tiny": PipelineSizes(12, 24, 4, 6, 2, 6)}),
    # The same encoder and world-model recipes (64 x 64 frames, 2-D actions); longer episodes for the
    # smaller step. Two slow models of 3,000 steps each, trained at once, as one ensemble: one model's
    # hierarchical arm spread over 76-88% with its seed and bank draw (docs/planning.md).
    Environment("four-rooms", "jepa/FourRooms-v0", FourRoomsEnv, FourRoomsConfig, "two_rooms_encoder.yaml",
                "two_rooms_world.yaml", {"full": PipelineSizes(400, 150, 600, 3000, 50, slow_members=2),
                                         "tiny": PipelineSizes(12, 24, 4, 6, 2, 6)}),
    # gym-pusht's simulation (the extra 'pusht'). Its pipeline starts from recorded episodes (--replay):
    # tasks from the held-out ones, noisy replays of the others as training episodes (length: each
    # recording's own); 100 evaluation tasks. Its encoder is trained through the dynamics (jepa world
    # encoder): on I-JEPA's the world model reached 21% of the tasks (docs/push-t.md).
    Environment("push-t", "jepa/PushT-v0", PushTEnv, PushTConfig, "pusht_world_encoder.yaml", "pusht_world.yaml",
                {"full": PipelineSizes(1650, 0, 1500, 3000, 100),
                 "tiny": PipelineSizes(16, 0, 4, 6, 2, 6)},
                from_recordings=True, encoder_from_episodes=True),
)}


def environment(name: str) -> Environment:
    """The entry of ``name`` (its short name or gymnasium id); unknown names end in one line."""
    for env in ENVIRONMENTS.values():
        if name in (env.name, env.gym_id):
            return env
    raise JEPAError(f"unknown environment {name!r}: available are {', '.join(ENVIRONMENTS)}")


def register_envs() -> None:
    """Registers every environment's id with gymnasium (once), so that ``gymnasium.make`` finds it."""
    for env in ENVIRONMENTS.values():
        if env.gym_id not in gymnasium.registry:
            # No TimeLimit wrapper: the environments truncate at max_episode_steps themselves.
            gymnasium.register(id=env.gym_id, entry_point=env.env_class)


def make_env(name: str, **kwargs: Any) -> PlanningEnv:
    """Builds an environment by name (unwrapped: no gymnasium checker or wrappers).

    Args:
        name: a registered name (``"two-rooms"``) or gymnasium id (``"jepa/TwoRooms-v0"``).
        **kwargs: ``config``, ``render_mode`` and fields of the environment's config (overriding ``config``'s).

    Raises:
        JEPAError: unknown name, unknown option or invalid value (one line).
    """
    entry = environment(name)
    register_envs()
    try:
        return entry.make(**kwargs)
    except (TypeError, ValueError) as err:
        raise JEPAError(f"{entry.name}: {err}") from err

