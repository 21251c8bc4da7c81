"""AdamW parameter groups: weight decay on weight matrices only."""

from __future__ import annotations

from torch import nn

# Parameters that are positions or learned tokens rather than weights: never decayed.
NO_DECAY_NAMES = ("pos_embed", "mask_token", "cls_token")


def decay_groups(modules: dict[str, nn.Module]) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Splits trainable parameters into (decayed, not decayed).

    Biases and norm weights (every 1-D parameter) and position / token parameters are not decayed,
    as in I-JEPA and timm.
    """
    decay, no_decay = [], []
    for prefix, module in modules.items():
        for name, p in module.named_parameters(prefix=prefix):
            if not p.requires_grad:
                continue
            if p.ndim <= 1 or any(key in name for key in NO_DECAY_NAMES):
                no_decay.append(p)
            else:
                decay.append(p)
    return decay, no_decay
