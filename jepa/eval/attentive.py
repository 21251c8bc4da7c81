"""The V-JEPA attentive probe: one learned query cross-attends over all frozen tokens, then a linear head."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..stopping import raise_if_stop_requested


class AttentiveProbe(nn.Module):
    """Cross-attention pooling with one learned query token, an MLP block, and a linear classifier."""

    def __init__(self, dim: int, num_classes: int, num_heads: int = 4, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        num_heads = math.gcd(num_heads, dim) or 1
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.norm_kv = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))
        self.head = nn.Linear(dim, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(tokens.float())
        q = self.query.expand(tokens.shape[0], -1, -1)
        x = q + self.attn(q, kv, kv, need_weights=False)[0]
        x = x + self.mlp(self.norm_mlp(x))
        return self.head(x[:, 0])


@dataclass(frozen=True)
class ProbeSchedule:
    """How long an attentive probe trains: to convergence, judged on held-out training clips.

    The probe trains on all but ``holdout`` of the training tokens, with a constant learning rate after
    a short warm-up; every ``eval_every`` optimizer steps it is scored on the held-out part, and it stops
    once that accuracy has not improved for ``patience`` evaluations (after at least ``min_steps``), or
    at ``max_steps``. The weights of the best evaluation are kept. A fixed number of epochs is not
    enough: 1,000 clips for 20 epochs is 80 optimizer steps, far from converged (on ``builtin:bouncing``
    motion, 2,000 clips: random weights 63.3% after 20 epochs, 82.6% trained to convergence).
    """

    max_steps: int = 4000
    min_steps: int = 500
    eval_every: int = 100
    patience: int = 5
    holdout: float = 0.1
    warmup_steps: int = 100

    def __post_init__(self) -> None:
        if not 0 < self.holdout < 1:
            raise ValueError(f"the probe's held-out share must be between 0 and 1, not {self.holdout}")
        if not 0 < self.eval_every <= self.max_steps or self.min_steps > self.max_steps or self.patience < 1:
            raise ValueError(f"the probe's schedule needs 0 < eval_every <= max_steps, min_steps <= max_steps "
                             f"and patience >= 1, not {self}")


def train_attentive_probe(
    train_tokens: torch.Tensor,
    train_y: torch.Tensor,
    num_classes: int,
    schedule: ProbeSchedule | None = None,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    batch_size: int = 256,
    num_heads: int = 4,
    seed: int = 0,
) -> tuple[AttentiveProbe, dict[str, Any]]:
    """Trains an attentive probe on cached tokens [N, T, D] with AdamW until held-out accuracy stops
    improving (``ProbeSchedule``); ``jepa probe`` ends between steps when asked to stop.

    Returns:
        (the probe at its best held-out evaluation, in eval mode; a record of the training: steps run,
        the best step, its held-out accuracy, why it stopped, and the held-out accuracy curve).
    """
    schedule = schedule or ProbeSchedule()
    gen = torch.Generator().manual_seed(seed)
    n = train_tokens.shape[0]
    perm = torch.randperm(n, generator=gen).to(train_tokens.device)
    k = min(n - 1, max(1, round(schedule.holdout * n)))
    held, fit = perm[:k], perm[k:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = AttentiveProbe(train_tokens.shape[-1], num_classes, num_heads).to(train_tokens.device)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
    warmup = max(1, schedule.warmup_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    best = (-1.0, 0, copy.deepcopy(probe.state_dict()))
    curve: list[list[float]] = []
    stopped = "max_steps"

    def batches():  # shuffled passes over the fitting part, without end
        while True:
            yield from fit[torch.randperm(len(fit), generator=gen).to(train_tokens.device)].split(batch_size)

    probe.train()
    for step, idx in zip(range(1, schedule.max_steps + 1), batches()):
        raise_if_stop_requested()
        loss = F.cross_entropy(probe(train_tokens[idx]), train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % schedule.eval_every and step != schedule.max_steps:
            continue
        probe.eval()
        acc = (attentive_scores(probe, train_tokens[held]).argmax(-1) == train_y[held]).float().mean().item()
        probe.train()
        curve.append([step, acc])
        if acc > best[0]:
            best = (acc, step, copy.deepcopy(probe.state_dict()))
        if step >= schedule.min_steps and (step - best[1]) // schedule.eval_every >= schedule.patience:
            stopped = "no_improvement"
            break
    probe.load_state_dict(best[2])
    record = {"steps": step, "best_step": best[1], "holdout_acc": best[0], "holdout_samples": int(k),
              "stopped": stopped, "curve": curve}
    return probe.eval(), record


@torch.no_grad()
def attentive_scores(probe: AttentiveProbe, tokens: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    return torch.cat([probe(t) for t in tokens.split(batch_size)])
