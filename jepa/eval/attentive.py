"""The V-JEPA attentive probe: one learned query cross-attends over all frozen tokens, then a linear head."""

from __future__ import annotations

import math

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


def train_attentive_probe(
    train_tokens: torch.Tensor,
    train_y: torch.Tensor,
    num_classes: int,
    epochs: int = 20,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    batch_size: int = 256,
    num_heads: int = 4,
    seed: int = 0,
) -> AttentiveProbe:
    """Trains an attentive probe on cached tokens [N, T, D] with AdamW and a cosine schedule
    (``jepa probe`` ends before an epoch when asked to stop)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = AttentiveProbe(train_tokens.shape[-1], num_classes, num_heads).to(train_tokens.device)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
    n = train_tokens.shape[0]
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    probe.train()
    for _ in range(epochs):
        raise_if_stop_requested()
        perm = torch.randperm(n, generator=gen).to(train_tokens.device)
        for idx in perm.split(batch_size):
            loss = F.cross_entropy(probe(train_tokens[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return probe.eval()


@torch.no_grad()
def attentive_scores(probe: AttentiveProbe, tokens: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    return torch.cat([probe(t) for t in tokens.split(batch_size)])
