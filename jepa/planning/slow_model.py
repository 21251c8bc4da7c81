"""The slow world model of a two-level planner: from the representation of one frame and a
macro-action, the representation ``steps`` environment steps later (HWM, Zhang et al. 2026: a second
predictor in the same latent space as the fast one, jumping k steps under a learned code of the
k-step action chunk).

A macro-action is a ``code_dim``-vector in [-1, 1] made by ``MacroEncoder`` from a chunk of ``steps``
actions, trained together with the predictor, so a code means "whatever these k actions do". The
predictor is the fast model's AdaLN transformer (``WorldModel``) with one frame of history and the
code as its action: the same residual "change from the current representation" and the same
standardisation of representations. After training, ``bank`` holds codes of training chunks: the
high-level planner searches among codes seen in training only (Hi-LeWM: unconstrained search over
macro-actions proposes subgoals no chunk reaches).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .world_model import WorldModel, WorldModelConfig


@dataclass
class SlowModelConfig:
    """Architecture of the slow model.

    Args:
        steps: k, environment steps per macro-action.
        code_dim: size of a macro-action code.
        width: token width of the predictor (and hidden width of the macro encoder).
        depth: predictor blocks.
        heads: predictor attention heads.
        mlp_ratio: predictor MLP hidden size over width.
        bank_size: codes of training chunks kept for the high-level search.
    """

    steps: int = 10
    code_dim: int = 4
    width: int = 128
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    bank_size: int = 2048

    def __post_init__(self) -> None:
        if self.steps < 2:
            raise ValueError(f"the slow model's steps (k) must be >= 2, got {self.steps}")
        if self.code_dim < 1 or self.bank_size < 1:
            raise ValueError(f"code_dim and bank_size must be >= 1, got {self.code_dim} and {self.bank_size}")

    @property
    def predictor(self) -> WorldModelConfig:
        return WorldModelConfig(self.width, self.depth, self.heads, history=1, mlp_ratio=self.mlp_ratio)

    def to_dict(self) -> dict:
        return asdict(self)


class MacroEncoder(nn.Module):
    """An action chunk [..., k, A] (standardised) -> a code [..., C] in [-1, 1]: an MLP over the
    flattened chunk (the chunk is short and fixed-length, so order is kept by position)."""

    def __init__(self, steps: int, action_dim: int, code_dim: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(steps * action_dim, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
                                 nn.Linear(width, code_dim), nn.Tanh())

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        return self.net(chunks.flatten(-2))


class SlowWorldModel(nn.Module):
    """``forward(reps [B, D], codes [B, M, C]) -> [B, M, D]``: the representation after each of M
    macro-actions, open loop. ``encode(chunks [B, M, k, A]) -> codes [B, M, C]``."""

    def __init__(self, config: SlowModelConfig, rep_dim: int, action_dim: int) -> None:
        super().__init__()
        self.config = config
        self.rep_dim, self.action_dim, self.code_dim = rep_dim, action_dim, config.code_dim
        self.macro = MacroEncoder(config.steps, action_dim, config.code_dim, config.width)
        self.predictor = WorldModel(config.predictor, rep_dim, config.code_dim)
        self.register_buffer("action_mean", torch.zeros(action_dim))
        self.register_buffer("action_std", torch.ones(action_dim))
        self.register_buffer("bank", torch.zeros(config.bank_size, config.code_dim))
        # The action chunks the bank's codes were made from: another slow model encodes the same chunks
        # to search beside this one (``SlowEnsemble``). NaN in exports written before they were kept.
        self.register_buffer("bank_actions", torch.full((config.bank_size, config.steps, action_dim), float("nan")))
        self._register_load_state_dict_pre_hook(self._chunks_unknown)

    def _chunks_unknown(self, state: dict, prefix: str, *args: object) -> None:
        """Loads a slow model saved before its bank chunks were kept: they stay unknown (NaN)."""
        state.setdefault(prefix + "bank_actions", torch.full_like(self.bank_actions, float("nan")))

    def set_action_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        if mean.shape != (self.action_dim,) or std.shape != (self.action_dim,):
            raise ValueError(f"action statistics must have {self.action_dim} values")
        self.action_mean.copy_(mean)
        self.action_std.copy_(std.clamp_min(1e-6))

    def set_rep_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.predictor.set_rep_stats(mean, std)

    def normalize(self, reps: torch.Tensor) -> torch.Tensor:
        """Representations in standard units (the same units as the fast model's)."""
        return self.predictor.normalize(reps)

    def encode(self, chunks: torch.Tensor) -> torch.Tensor:
        """Codes of action chunks: [..., k, A] -> [..., C]."""
        return self.macro((chunks - self.action_mean) / self.action_std)

    def forward(self, reps: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        empty = codes[:, :0]
        return self.predictor.unroll(reps[:, None], empty, codes)

    def successors(self, reps: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """One macro-step from each of N representations under each of M codes: [N, D], [M, C] ->
        [N, M, D] (what a graph search expands a frontier with; ``WorldModel.step_each``)."""
        return self.predictor.step_each(reps, codes)


class MacroDynamics:
    """A slow model (or a ``SlowEnsemble``) behind the planners' ``Dynamics`` interface: actions are
    macro-action codes, the context is the current representation [D]."""

    def __init__(self, model: SlowWorldModel) -> None:
        self.model = model
        self.action_dim = model.code_dim

    def rollout(self, context: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.model(context[None].expand(actions.shape[0], -1), actions)
