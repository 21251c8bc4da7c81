"""The action-conditioned predictor: given the representations of the last few frames and the
action taken at each, predicts the representation of the next frame (V-JEPA 2-AC, DINO-WM).

Each frame is one token (its representation, projected). Blocks are frame-causal self-attention and
an MLP, and the action of each frame enters every block through AdaLN (a per-token scale, shift and
gate computed from the action, as DiT conditions on its timestep). AdaLN rather than action tokens:
the sequence stays one token per frame, so a planner's thousands of candidate rollouts cost half the
attention, and the action modulates every layer instead of being one token among others. The
predictor outputs a change: the next representation is the last one plus the prediction, so an
untrained model starts as "nothing moves" (the copy-last baseline) rather than as noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class WorldModelConfig:
    """Architecture of the predictor.

    Args:
        width: token width.
        depth: number of blocks.
        heads: attention heads.
        history: frames the predictor looks back over (its causal window).
        mlp_ratio: MLP hidden size over width.
    """

    width: int = 256
    depth: int = 3
    heads: int = 4
    history: int = 3
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"world model width {self.width} is not divisible by heads {self.heads}")
        if self.history < 1:
            raise ValueError(f"world model history must be >= 1, got {self.history}")

    def to_dict(self) -> dict:
        return asdict(self)


class AdaLNBlock(nn.Module):
    """Pre-norm transformer block whose norms are modulated by a condition (the frame's action)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.modulation = nn.Linear(width, 6 * width)
        # Zero init: each block starts as the identity (DiT's adaLN-Zero), so depth never hurts at step 0.
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.modulated(x, self.modulation(cond))

    def modulated(self, x: torch.Tensor, modulation: torch.Tensor, one_frame: bool = False) -> torch.Tensor:
        """The block given its modulation (``self.modulation(cond)``). ``one_frame``: every token is a
        frame of its own (no attention between them), so ``x`` [..., W] and ``modulation`` [..., 6W]
        may broadcast against each other (``WorldModel.step_each``)."""
        shift1, scale1, gate1, shift2, scale2, gate2 = modulation.chunk(6, dim=-1)
        h = self.norm1(x) * (1 + scale1) + shift1
        w = h.shape[-1]
        if one_frame or x.shape[-2] == 1:
            # One frame attends to itself alone: the softmax weight is exactly 1, so attention is its
            # value. Skipping q, k and the attention kernel is exact and a third of a planning rollout
            # step with history 1 (every CEM candidate, every step).
            h = F.linear(h, self.qkv.weight[2 * w:], self.qkv.bias[2 * w:])
            x = x + gate1 * self.proj(h)
        else:
            b, t, _ = h.shape
            q, k, v = self.qkv(h).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
            h = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + gate1 * self.proj(h.transpose(1, 2).reshape(b, t, w))
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.mlp(h)


class WorldModel(nn.Module):
    """``forward(reps [B, T, D], actions [B, T, A]) -> [B, T, D]``: output t predicts the representation
    after action t, seeing frames <= t only (frame-causal), T <= ``history``. ``rep_dim`` D comes from
    the encoder and its pooling, ``action_dim`` A from the data."""

    def __init__(self, config: WorldModelConfig, rep_dim: int, action_dim: int) -> None:
        super().__init__()
        self.config = config
        c = config
        self.rep_dim, self.action_dim = rep_dim, action_dim
        self.embed = nn.Linear(rep_dim, c.width)
        self.action_embed = nn.Sequential(nn.Linear(action_dim, c.width), nn.SiLU(), nn.Linear(c.width, c.width))
        self.pos = nn.Parameter(torch.zeros(1, c.history, c.width))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(AdaLNBlock(c.width, c.heads, c.mlp_ratio) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.width, eps=1e-6)
        self.head = nn.Linear(c.width, rep_dim)
        nn.init.zeros_(self.head.weight)  # starts as copy-last
        nn.init.zeros_(self.head.bias)
        # Actions come in the data's own units (Push-T: pixels of a 512 workspace; Two-Rooms: world
        # units); standardising them here lets planners pass raw actions.
        self.register_buffer("action_mean", torch.zeros(action_dim))
        self.register_buffer("action_std", torch.ones(action_dim))
        # Representations are standardised per dimension over the training frames: most of a pooled
        # frame is static background, and what moves (the agent) is a small change that raw L1 would
        # drown; in standard units every dimension counts alike, for the loss and the goal energy.
        self.register_buffer("rep_mean", torch.zeros(rep_dim))
        self.register_buffer("rep_std", torch.ones(rep_dim))

    def set_action_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        if mean.shape != (self.action_dim,) or std.shape != (self.action_dim,):
            raise ValueError(f"action statistics must have {self.action_dim} values")
        self.action_mean.copy_(mean)
        self.action_std.copy_(std.clamp_min(1e-6))

    def set_rep_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        if mean.shape != (self.rep_dim,) or std.shape != (self.rep_dim,):
            raise ValueError(f"representation statistics must have {self.rep_dim} values")
        self.rep_mean.copy_(mean)
        self.rep_std.copy_(std.clamp_min(1e-6))

    def normalize(self, reps: torch.Tensor) -> torch.Tensor:
        """Representations in standard units (what the loss and the latent goal energy compare)."""
        return (reps - self.rep_mean) / self.rep_std

    def forward(self, reps: torch.Tensor, actions: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Predicted next representations [B, T, D] (``last_only``: the last one only, [B, 1, D])."""
        t = reps.shape[1]
        if t > self.config.history:
            raise ValueError(f"the world model sees at most {self.config.history} frames, got {t}")
        # Positions count from the oldest frame seen, as in training's causal prefixes: an agent with
        # two frames of history is in the situation of training's second output.
        z = self.normalize(reps)
        x = self.embed(z) + self.pos[:, :t]
        cond = self.action_embed((actions - self.action_mean) / self.action_std)
        for block in self.blocks:
            x = block(x, cond)
        if last_only:  # a rollout needs the newest prediction only: skip the head for the others
            z, x = z[:, -1:], x[:, -1:]
        return self.rep_mean + self.rep_std * (z + self.head(self.norm(x)))

    def step_each(self, reps: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Each of N frames under each of M actions, one frame of history: [N, D], [M, A] -> [N, M, D].

        The same as ``step`` on every (frame, action) pair, but each action's conditioning (its
        embedding and every block's modulation, a third of a block's work at width 256) is computed
        once instead of N times, and each frame's embedding once instead of M times: a graph search
        expands every node with the same few codes.
        """
        z = self.normalize(reps)[:, None]  # [N, 1, D]
        x = self.embed(z) + self.pos[:, :1]
        cond = self.action_embed((actions - self.action_mean) / self.action_std)[None]  # [1, M, W]
        if not len(self.blocks):  # nothing to broadcast against: every action gives the same frame
            x = x.expand(-1, actions.shape[0], -1)
        for block in self.blocks:
            x = block.modulated(x, block.modulation(cond), one_frame=True)  # [N, 1, W] -> [N, M, W] at the first
        return self.rep_mean + self.rep_std * (z + self.head(self.norm(x)))

    def step(self, reps: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The representation after the last action of a window: [B, T, D], [B, T, A] -> [B, D]."""
        h = self.config.history
        return self.forward(reps[:, -h:], actions[:, -h:], last_only=True)[:, -1]

    def unroll(self, reps: torch.Tensor, past_actions: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Imagines the future open loop from known frames.

        Args:
            reps: [B, K, D] the known frames' representations (K >= 1, newest last).
            past_actions: [B, K - 1, A] the actions taken between the known frames.
            actions: [B, H, A] the actions to imagine, the first taken at the newest known frame.

        Returns:
            [B, H, D] the representation after each action.
        """
        if self.config.history == 1:
            return self._unroll_markov(reps[:, -1], actions)
        frames, acts, out = reps, past_actions, []
        for i in range(actions.shape[1]):
            acts = torch.cat([acts, actions[:, i:i + 1]], dim=1)
            nxt = self.step(frames, acts)
            out.append(nxt)
            frames = torch.cat([frames, nxt[:, None]], dim=1)[:, -self.config.history:]
            acts = acts[:, -(self.config.history - 1):] if self.config.history > 1 else acts[:, :0]
        return torch.stack(out, dim=1)

    def _unroll_markov(self, rep: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``unroll`` with one frame of history ([B, D], [B, H, A] -> [B, H, D]), the same arithmetic
        arranged for planning: a step's conditioning depends on its action alone, so the action
        embedding and every block's modulation (a third of a step's products at width 128) run once
        over all H steps, H times as many rows per product, instead of once per step; and the
        imagined representation stays in standard units between steps instead of being scaled out
        and back in."""
        cond = self.action_embed((actions - self.action_mean) / self.action_std)  # [B, H, W]
        modulations = [block.modulation(cond) for block in self.blocks]
        z = self.normalize(rep)[:, None]  # [B, 1, D]
        out = []
        for i in range(actions.shape[1]):
            x = self.embed(z) + self.pos[:, :1]
            for block, modulation in zip(self.blocks, modulations):
                x = block.modulated(x, modulation[:, i:i + 1], one_frame=True)
            z = z + self.head(self.norm(x))
            out.append(z)
        return self.rep_mean + self.rep_std * torch.cat(out, dim=1)


@dataclass
class LatentContext:
    """Where a rollout starts: the known frames' representations [K, D] and the actions between them
    [K - 1, A] (what the agent has seen and done, newest last)."""

    reps: torch.Tensor
    past_actions: torch.Tensor


class LatentDynamics:
    """A trained world model behind the planners' ``Dynamics`` interface (one call per candidate batch)."""

    def __init__(self, model: WorldModel) -> None:
        self.model = model
        self.action_dim = model.action_dim

    def rollout(self, context: LatentContext, actions: torch.Tensor) -> torch.Tensor:
        b = actions.shape[0]
        reps = context.reps[None].expand(b, *context.reps.shape)
        past = context.past_actions[None].expand(b, *context.past_actions.shape)
        return self.model.unroll(reps, past, actions)
