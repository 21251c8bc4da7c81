"""SIGReg: Sketched Isotropic Gaussian Regularization (LeJEPA, Balestriero & LeCun, 2025).

Embeddings are pushed towards an isotropic Gaussian, the distribution that LeJEPA shows minimises
the downstream risk of linear probes, which also rules out collapse. The test is sketched: the
embeddings are projected on random unit directions ("slices") and each 1-D projection is compared
with N(0, 1) by the Epps-Pulley statistic, a weighted distance between characteristic functions.
It is smooth, needs no sorting and has bounded gradients.
"""

from __future__ import annotations

import torch


def epps_pulley(x: torch.Tensor, knots: int = 17, t_max: float = 5.0) -> torch.Tensor:
    """Epps-Pulley statistic of each column of ``x`` [N, M] against N(0, 1): [M].

    ``N * integral of |phi_N(t) - exp(-t^2/2)|^2 * exp(-t^2/2) dt`` over [-t_max, t_max], where
    phi_N is the empirical characteristic function (trapezoid rule on ``knots`` points). Samples
    from N(0, 1) give values of order 1 whatever N is; a collapsed column gives a value of order N.
    """
    n = x.shape[0]
    t = torch.linspace(-t_max, t_max, knots, device=x.device, dtype=torch.float32)
    target = torch.exp(-0.5 * t * t)  # characteristic function of N(0, 1)
    xt = x.float().unsqueeze(-1) * t  # [N, M, T]
    real = torch.cos(xt).mean(0)
    imag = torch.sin(xt).mean(0)
    err = ((real - target) ** 2 + imag**2) * target
    return n * torch.trapezoid(err, t, dim=-1)


def sigreg(embeddings: torch.Tensor, num_slices: int = 256, generator: torch.Generator | None = None,
           knots: int = 17, t_max: float = 5.0) -> torch.Tensor:
    """Mean Epps-Pulley statistic of ``embeddings`` over ``num_slices`` random unit directions.

    ``embeddings`` is [N, D] (N samples), or [N, P, D]: P groups (token positions) tested each on
    its own across the N samples, on the same directions, so that no group can borrow spread from
    another (a token that only encodes its position is a collapsed token however the positions
    spread). The directions are drawn from ``generator`` (seed it with the step for a reproducible,
    resumable run) on the generator's device and moved to the embeddings' device (a no-op when they
    agree).
    """
    if embeddings.dim() not in (2, 3):
        raise ValueError(f"sigreg expects embeddings [N, D] or [N, P, D], got shape {tuple(embeddings.shape)}")
    d = embeddings.shape[-1]
    where = generator.device if generator is not None else embeddings.device
    directions = torch.randn(d, num_slices, generator=generator, device=where)
    directions = (directions / directions.norm(dim=0, keepdim=True)).to(embeddings.device)
    # In fp32 under bf16 autocast too: the characteristic function needs the projections' tails.
    with torch.autocast(embeddings.device.type, enabled=False):
        projected = embeddings.float() @ directions  # [N, S] or [N, P, S]
        return epps_pulley(projected.flatten(1), knots=knots, t_max=t_max).mean()
