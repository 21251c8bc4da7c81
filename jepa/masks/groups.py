"""The interface every masker offers to the collator: a list of (context, target) mask groups per batch.

V-JEPA draws two mask groups per batch (short- and long-range blocks) and runs the context encoder
once per group; I-JEPA draws one (its masker returns that one pair, which ``collator.mask_groups``
makes a one-group list). Giving both the same shape of answer lets one training step
handle images and videos: loop over the groups and average their losses.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

MaskGroups = list[tuple[Tensor, Tensor]]
"""One (context [B, K], target [B, num_target_sets, M]) pair of sorted token indices per group."""


@runtime_checkable
class GroupMasker(Protocol):
    """A masker that draws, per batch, one or more groups of (context, target) token indices.

    Read-only properties rather than plain attributes, so a class holding a narrower type
    (``tuple[int, int]`` or ``tuple[int, int, int]``) still satisfies the protocol.
    """

    @property
    def grid(self) -> tuple[int, ...]:
        """Token grid the indices refer to: (H', W') for images, (T', H', W') for videos."""
        ...

    @property
    def num_groups(self) -> int:
        """Length of the list that ``batch`` returns."""
        ...

    def batch(self, step: int, indices: list[int]) -> MaskGroups:
        """Masks of the samples ``indices`` of batch ``step``, one (ctx, tgt) pair per group."""
        ...
