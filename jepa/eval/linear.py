"""Linear classifiers trained on frozen features: a whole grid of (lr, weight decay) at once."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LinearProbeResult:
    lr: float
    weight_decay: float
    val_acc: float
    selection_acc: float


@dataclass
class LinearGrid:
    """Trained heads: ``weight`` [G, D, C], ``bias`` [G, 1, C], over features standardised with
    the training split's ``mean`` and ``std``; ``grid`` lists each head's (lr, weight decay)."""

    weight: torch.Tensor
    bias: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    grid: list[tuple[float, float]]

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.float() - self.mean) / self.std
        return torch.einsum("nd,gdc->gnc", z, self.weight) + self.bias

    def accuracies(self, x: torch.Tensor, y: torch.Tensor) -> list[float]:
        pred = self.logits(x).argmax(-1)
        return (pred == y.unsqueeze(0)).float().mean(1).tolist()


def fit_linear_grid(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2),
    weight_decays: tuple[float, ...] = (1e-4,),
    epochs: int = 50,
    batch_size: int = 256,
    seed: int = 0,
    stop_check: Callable[[], None] | None = None,
) -> LinearGrid:
    """Trains one linear head per (lr, weight decay) on standardised features, all in one batched
    AdamW loop (cosine learning rate). Every head sees the same mini-batches; gradients do not mix.
    ``stop_check`` runs before every epoch (``jepa probe`` ends there when asked to stop)."""
    grid = [(lr, wd) for lr in lrs for wd in weight_decays]
    g, d, c = len(grid), x.shape[1], num_classes
    device = x.device
    mean = x.float().mean(0, keepdim=True)
    std = x.float().std(0, keepdim=True).clamp_min(1e-6)
    z = (x.float() - mean) / std
    gen = torch.Generator().manual_seed(seed)
    weight = (torch.randn(g, d, c, generator=gen) * 0.01).to(device)
    bias = torch.zeros(g, 1, c, device=device)
    lr = torch.tensor([p[0] for p in grid], device=device).view(g, 1, 1)
    wd = torch.tensor([p[1] for p in grid], device=device).view(g, 1, 1)
    params = [weight, bias]
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    n = z.shape[0]
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    total, t = epochs * steps_per_epoch, 0
    for _ in range(epochs):
        if stop_check is not None:
            stop_check()
        perm = torch.randperm(n, generator=gen).to(device)
        for k in range(steps_per_epoch):
            idx = perm[k * batch_size : (k + 1) * batch_size]
            for p in params:
                p.requires_grad_(True)
            logits = torch.einsum("nd,gdc->gnc", z[idx], weight) + bias
            # Sum over heads of each head's mean loss: each head gets exactly its own gradient.
            loss = F.cross_entropy(logits.reshape(-1, c), y[idx].repeat(g), reduction="sum") / idx.numel()
            grads = torch.autograd.grad(loss, params)
            t += 1
            step_lr = lr * 0.5 * (1 + math.cos(math.pi * (t - 1) / total))
            with torch.no_grad():
                for p, grad, (m, v) in zip(params, grads, moments):
                    p.requires_grad_(False)
                    m.mul_(beta1).add_(grad, alpha=1 - beta1)
                    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    if p is weight:
                        p.mul_(1 - step_lr * wd)
                    p.sub_(step_lr * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps))
    return LinearGrid(weight, bias, mean, std, grid)


def holdout_linear_probe(
    fit_x: torch.Tensor,
    fit_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    num_classes: int,
    holdout: float = 0.1,
    seed: int = 0,
    **grid_kwargs,
) -> LinearProbeResult:
    """Chooses (lr, weight decay) on a held-out part of the *fit* split and reports that head's
    accuracy on ``val``: the reported number is never used for selection."""
    n = fit_x.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(fit_x.device)
    k = max(1, int(n * holdout))
    sel, tr = perm[:k], perm[k:]
    heads = fit_linear_grid(fit_x[tr], fit_y[tr], num_classes, seed=seed, **grid_kwargs)
    sel_acc = heads.accuracies(fit_x[sel], fit_y[sel])
    best = max(range(len(sel_acc)), key=sel_acc.__getitem__)
    val_acc = heads.accuracies(val_x, val_y)[best]
    lr, wd = heads.grid[best]
    return LinearProbeResult(lr, wd, val_acc, sel_acc[best])
