"""Schedules as pure functions of the optimizer step, so resuming needs no scheduler state."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total: int, warmup: int, start: float, peak: float, final: float) -> float:
    """Linear warmup from ``start`` to ``peak`` over ``warmup`` steps, then cosine down to ``final`` at ``total``."""
    if step < warmup:
        return start + (peak - start) * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final + (peak - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine(step: int, total: int, start: float, end: float) -> float:
    """Cosine interpolation from ``start`` (step 0) to ``end`` (step ``total``)."""
    progress = min(1.0, step / max(1, total))
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear(step: int, total: int, start: float, end: float) -> float:
    """Linear interpolation from ``start`` (step 0) to ``end`` (step ``total``)."""
    return start + (end - start) * min(1.0, step / max(1, total))
