"""Frozen-feature extraction, done once per (encoder, data) and cached on disk.

Every probe reads the same cached features: average of the last layer's tokens, the concatenated
averages of the last four layers, the labels and, for the attentive probe, the last layer's tokens.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from ..atomic import save_safetensors_atomic
from ..data.clip_transforms import ClipEvalTransform, ClipFrames
from ..data.eval_loader import eval_loader
from ..data.spec import Data
from ..data.transforms import EvalTransform
from ..data.video.clips import ClipSampling
from ..errors import JEPAError
from ..export import FrozenEncoder
from ..stopping import raise_if_stop_requested

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: skipped inputs recorded in the metadata
Backbone = Literal["encoder", "random", "pixels"]


@dataclass
class Features:
    pooled: torch.Tensor  # [N, D] average of the last layer's tokens
    pooled4: torch.Tensor  # [N, 4D] concatenated averages of the last 4 layers
    labels: torch.Tensor  # [N]
    tokens: torch.Tensor | None = None  # [N, T, D] last layer (float16), attentive probe only
    skipped: list[str] = field(default_factory=list)  # inputs that failed to decode, and why

    def subset(self, idx: torch.Tensor) -> Features:
        tokens = self.tokens[idx] if self.tokens is not None else None
        return replace(self, pooled=self.pooled[idx], pooled4=self.pooled4[idx], labels=self.labels[idx], tokens=tokens)


def default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "jepa" / "features"


def cache_key(backbone_id: str, data: Data, split: str, image_size: tuple[int, int], limit: int | None,
              tokens: bool, clips: ClipSampling | None = None) -> str:
    spec = data.spec if data.spec.startswith("builtin:") else os.path.abspath(data.spec)
    desc = {"v": CACHE_VERSION, "backbone": backbone_id, "data": spec, "split": split,
            "size": list(image_size), "limit": limit, "tokens": tokens}
    if data.modality == "video" and clips is not None:
        desc["clips"] = [clips.frames_per_clip, clips.frame_step, clips.fps]
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:32]


# Raw clips are pooled to this many cells per frame side before they are probed: a 16-frame clip
# of 64 x 64 pixels is 196,608 numbers, too many for a linear probe on a few thousand clips.
PIXEL_GRID = 8


def raw_pixel_features(x: torch.Tensor) -> torch.Tensor:
    """The raw-pixels baseline's features: images flattened; clips average-pooled to an 8 x 8 grid
    per frame, then flattened (motion stays visible frame to frame)."""
    if x.dim() == 5:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        x = torch.nn.functional.adaptive_avg_pool2d(frames, (min(PIXEL_GRID, h), min(PIXEL_GRID, w))).reshape(b, t, -1)
    return x.flatten(1)


def _patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    if images.dim() == 5:  # one token per frame and patch
        b, c, t, h, w = images.shape
        return _patchify(images.transpose(1, 2).reshape(b * t, c, h, w), patch).reshape(b, -1, c * patch * patch)
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


@torch.no_grad()
def _extract(backbone: FrozenEncoder | None, patch: int, loader: DataLoader, limit: int | None, tokens: bool,
             device: torch.device) -> Features:
    pooled, pooled4, labels, toks, skipped = [], [], [], [], []
    seen = 0
    for images, y, reasons in loader:
        raise_if_stop_requested()  # extraction is jepa probe's longest part: stop between batches
        for reason in reasons:
            log.warning("skipped an input that failed to load: %s", reason)
        skipped.extend(reasons)
        if images is None:
            continue
        images = images.to(device)
        if backbone is None:  # raw pixels
            flat = raw_pixel_features(images).cpu()
            pooled.append(flat)
            pooled4.append(flat)
            if tokens:
                toks.append(_patchify(images, patch).half().cpu())
        else:
            layers = backbone.last_layers(images, 4)
            pooled.append(layers[-1].mean(1).float().cpu())
            pooled4.append(torch.cat([t.mean(1) for t in layers], dim=1).float().cpu())
            if tokens:
                toks.append(layers[-1].half().cpu())
        labels.append(y)
        seen += images.shape[0]
        if limit is not None and seen >= limit:
            break
    if not labels:
        raise JEPAError("the data yielded no images or clips")
    out = Features(torch.cat(pooled), torch.cat(pooled4), torch.cat(labels).long(), torch.cat(toks) if tokens else None,
                   skipped)
    return out.subset(torch.arange(min(limit, len(out.labels)))) if limit is not None else out


def extract_features(
    backbone: FrozenEncoder | None,
    backbone_id: str,
    data: Data,
    split: str,
    image_size: tuple[int, int],
    patch_size: int,
    normalization: tuple[tuple[float, ...], tuple[float, ...]],
    limit: int | None = None,
    tokens: bool = False,
    batch_size: int = 128,
    workers: int = 0,
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    clips: ClipSampling | None = None,
) -> tuple[Features, bool]:
    """Features of ``data`` under ``backbone`` (None: raw pixels), from the cache when present;
    video data is cut into one clip per video as ``clips`` says (start fixed per sample).

    Returns (features, whether they came from the cache).
    """
    if data.classes is None and data.source is not None and getattr(data.source, "classes", 1) is None:
        raise JEPAError(f"{data.spec} has no labels (a flat folder): probes need class subfolders or .cls labels")
    key = cache_key(backbone_id, data, split, image_size, limit, tokens, clips)
    path = Path(cache_dir or default_cache_dir()) / f"{key}.safetensors"
    if path.is_file():
        t = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            skipped = json.loads((f.metadata() or {}).get("skipped", "[]"))
        return Features(t["pooled"], t["pooled4"], t["labels"], t.get("tokens"), skipped), True
    if data.modality == "video":
        if clips is None:
            raise JEPAError(f"{data.spec} holds videos: give the clip sampling to probe it")
        transform: EvalTransform | ClipEvalTransform = ClipEvalTransform(image_size, ClipFrames(clips), *normalization)
    else:
        transform = EvalTransform(image_size, *normalization)
    loader = eval_loader(data, transform, limit, batch_size, workers)
    feats = _extract(backbone, patch_size, loader, limit, tokens, torch.device(device))
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"pooled": feats.pooled, "pooled4": feats.pooled4, "labels": feats.labels}
    if feats.tokens is not None:
        tensors["tokens"] = feats.tokens
    save_safetensors_atomic(path, tensors, metadata={"skipped": json.dumps(feats.skipped)})
    return feats, False


def low_shot_indices(labels: torch.Tensor, fraction: float | None = None, per_class: int | None = None,
                     seed: int = 0) -> torch.Tensor:
    """Seeded subset of training samples: a fraction of each class, or a fixed number per class."""
    if fraction is None and per_class is None:
        return torch.arange(len(labels))
    if fraction is not None and not 0 < fraction <= 1:
        raise JEPAError(f"--fraction must be in (0, 1], got {fraction}")
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        take = per_class if per_class is not None else max(1, round(fraction * len(idx)))
        chosen.append(idx[:take])
    return torch.cat(chosen).sort().values
