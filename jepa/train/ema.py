"""The exponential moving average that makes the target encoder."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update_(target: list[torch.Tensor], online: list[torch.Tensor], momentum: float) -> None:
    """``target = momentum * target + (1 - momentum) * online`` for every pair, in one foreach kernel."""
    if momentum >= 1.0:
        return
    torch._foreach_lerp_(target, online, 1.0 - momentum)


def frozen_copy_params(online: nn.Module, target: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Matching (target, online) parameter lists; refuses modules whose parameters differ."""
    t = dict(target.named_parameters())
    o = dict(online.named_parameters())
    if t.keys() != o.keys():
        raise ValueError("target and online encoders have different parameters")
    names = list(o)
    return [t[n].data for n in names], [o[n].data for n in names]
