"""Collate samples into a batch and draw their masks, inside the data-loader workers."""

from __future__ import annotations

from typing import Any

import torch

from .groups import GroupMasker
from .multiblock import MultiBlockMasker


def mask_groups(drawn: tuple[torch.Tensor, torch.Tensor] | list[tuple[torch.Tensor, torch.Tensor]]
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A masker's draw as a list of groups: the 2-D masker returns one (context, targets) pair."""
    return list(drawn) if isinstance(drawn, list) else [drawn]


class MaskCollator:
    """Stacks samples and attaches their masks.

    Each sample is a dict with ``input`` (an image [C, H, W] or a clip [C, T, H, W]), ``index`` and
    ``step`` (ints), optionally ``label`` (int) and ``skipped`` (list of strings naming inputs that
    failed and were replaced). The batch dict has ``inputs`` [B, C, (T,) H, W], ``labels`` [B] (or
    absent), ``index`` [B], ``step`` (int), ``masks`` (a list of mask groups, each (context indices
    [B, K], target indices [B, M, T]): one for I-JEPA, two for V-JEPA's short- and long-range
    blocks), ``skipped`` (list of strings) and, with multi-view inputs, ``views``:
    {"global": [[B, C, H, W], ...], "local": [[B, C, h, w], ...]}.
    """

    def __init__(self, masker: MultiBlockMasker | GroupMasker | None) -> None:
        self.masker = masker

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        steps = {s["step"] for s in samples}
        if len(steps) != 1:
            raise ValueError(f"a batch must come from one step, got steps {sorted(steps)}")
        step = steps.pop()
        indices = [int(s["index"]) for s in samples]
        batch: dict[str, Any] = {
            "inputs": torch.stack([s["input"] for s in samples]),
            "index": torch.tensor(indices, dtype=torch.long),
            "step": step,
            "skipped": [reason for s in samples for reason in s.get("skipped", ())],
            # Videos shorter than a clip (looped or padded, as data.clips.short says), by name.
            "short": [name for s in samples for name in s.get("short", ())],
        }
        if "views" in samples[0]:  # {"global": [view tensors], "local": [...]} per sample
            batch["views"] = {kind: [torch.stack([s["views"][kind][v] for s in samples]) for v in range(len(views))]
                              for kind, views in samples[0]["views"].items()}
        if all(s.get("label") is not None for s in samples):
            batch["labels"] = torch.tensor([int(s["label"]) for s in samples], dtype=torch.long)
        if self.masker is not None:
            batch["masks"] = mask_groups(self.masker.batch(step, indices))
        return batch
