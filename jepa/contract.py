"""The checkpoint and export contract: what a ``jepa pretrain`` checkpoint holds, what an export
folder holds, and how to read each without unpickling anything.

A checkpoint (Lightning's dict, read with ``torch.load(weights_only=True)``) holds:
- ``state_dict`` with one prefix per module: ``encoder.`` (the context / online encoder),
  ``target_encoder.`` (the EMA target, ``ema`` only), ``predictor.``, ``projector.`` (objectives
  with a projector head), ``probe.`` (the online probe);
- ``hyper_parameters``: the module's constructor arguments as plain types (``encoder``, ``image_size``,
  ``num_frames``, ``objective``, ...), used to refuse a resume into another architecture;
- ``jepa`` (``TrainingState``): RNG state, skipped-input counts, the objective's name, the encoder it
  evaluates, and ``encoder_arch``, the architecture read from the encoder itself (format 2).

An export folder holds ``model.safetensors`` (one encoder's weights, fp32, plus the fixed sin-cos
``pos_embed`` for timm) and ``config.json``: ``format``/``version``, the architecture keys of
``ARCH_KEYS`` (modality, frames, tubelet and positions included), ``normalization``, ``which``,
``objective``, ``projector``, ``step``, ``source_checkpoint``, the weights' ``sha256`` and, for video
encoders, ``clips`` (frames_per_clip, frame_step, fps of the training clips: probes' defaults).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .errors import JEPAError
from .models.predictor import Predictor, PredictorConfig
from .models.vit import EncoderConfig, VisionTransformer

CHECKPOINT_KEY = "jepa"
CHECKPOINT_FORMAT = 2  # 2: records encoder_arch; 1: architecture only in the hyper-parameters

# The state-dict prefix of each module a checkpoint can hold.
PREFIXES = {"context": "encoder.", "target": "target_encoder.", "predictor": "predictor.", "projector": "projector."}
# --which of jepa export: the encoders a checkpoint can hold.
ENCODER_PREFIXES = {k: PREFIXES[k] for k in ("target", "context")}

# Hyper-parameters that fix the shapes of the weights: a checkpoint resumes only into the same
# (an older checkpoint without num_frames is an image checkpoint: 1 frame).
ARCHITECTURE_KEYS = ("encoder", "predictor", "image_size", "num_frames", "num_classes")
ARCHITECTURE_DEFAULTS = {"num_frames": 1}

EXPORT_FORMAT = "jepa-encoder"
EXPORT_VERSION = 2  # 2: modality, num_frames, tubelet_size and pos are read from the model
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
PROJECTOR = "projector.safetensors"  # written only by jepa export --with-projector
PREDICTOR = "predictor.safetensors"  # written only by jepa export --with-predictor
CONTEXT = "context.safetensors"  # with --with-predictor: the context encoder, when model.safetensors is the target
ARCH_KEYS = ("arch", "modality", "width", "depth", "heads", "mlp_ratio", "patch_size", "img_size", "in_chans",
             "num_frames", "tubelet_size", "pos")
REQUIRED_CONFIG_KEYS = ("width", "depth", "heads", "mlp_ratio", "patch_size", "img_size", "sha256")


def training_state(torch_rng: torch.Tensor, skipped_count: int, skipped_examples: list[str], objective: str,
                   evaluated: str, encoder: VisionTransformer, skipped_files: list[str] | None = None,
                   short_videos: list[str] | None = None) -> dict[str, Any]:
    """The ``jepa`` entry of a checkpoint (plain types and tensors only)."""
    return {
        "torch_rng": torch_rng,
        "skipped_count": skipped_count,
        "skipped_examples": list(skipped_examples),
        "skipped_files": sorted(skipped_files or ()),  # distinct inputs that failed (a file fails every epoch)
        "short_videos": sorted(short_videos or ()),  # distinct videos shorter than a clip (looped or padded)
        "objective": objective,
        "evaluated": evaluated,  # module name of the encoder jepa export writes by default
        "encoder_arch": encoder.arch(),
        "format": CHECKPOINT_FORMAT,
    }


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_sharded(path: Path) -> dict[str, Any]:
    """A sharded (FSDP) checkpoint folder: ``meta.pt`` plus torch.distributed.checkpoint shards,
    gathered into one state dict on CPU without a process group."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.format_utils import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    ckpt = torch.load(path / "meta.pt", map_location="cpu", weights_only=True)
    tensors: dict[str, Any] = {}
    _load_state_dict(tensors, storage_reader=FileSystemReader(path), planner=_EmptyStateDictLoadPlanner(), no_dist=True)
    ckpt["state_dict"] = tensors.get("model", tensors.get("state_dict", {}))
    return ckpt


def _load_reason(exn: Exception) -> str:
    """A short reason a file did not load, without torch's advice to unpickle it anyway."""
    text = str(exn).strip()
    if "Unsupported global" in text:
        return "it holds objects other than tensors and plain types, which are not unpickled"
    if any(m in text for m in ("weights_only", "Unpickler", "invalid load key", "zip archive", "magic number")):
        return "not a torch checkpoint"
    return text.splitlines()[0][:200] if text else type(exn).__name__


def read_checkpoint(path: str | Path, tensors: bool = True) -> dict[str, Any]:
    """Loads a ``jepa pretrain`` checkpoint (a file, or a sharded FSDP folder) without unpickling
    code; refuses anything else. ``tensors=False`` reads what a resume check needs (step and
    hyper-parameters) without gathering the shards of a sharded checkpoint."""
    path = Path(path)
    if not path.exists():
        raise JEPAError(f"checkpoint {path} does not exist")
    try:
        if path.is_dir():
            if not (path / "meta.pt").is_file():
                raise ValueError("a folder without meta.pt")
            ckpt = _read_sharded(path) if tensors else torch.load(path / "meta.pt", map_location="cpu", weights_only=True)
        else:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=not tensors)
    except Exception as exn:
        raise JEPAError(f"{path} is not a checkpoint of this framework ({_load_reason(exn)})") from None
    if not isinstance(ckpt, dict) or CHECKPOINT_KEY not in ckpt or "encoder" not in ckpt.get("hyper_parameters", {}):
        raise JEPAError(f"{path} is not a checkpoint of this framework (written by jepa pretrain)")
    return ckpt


def checkpoint_arch(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Architecture of the encoder a checkpoint trained: as the encoder recorded it (format 2), or
    rebuilt from the hyper-parameters of an older, image-only checkpoint."""
    state = ckpt.get(CHECKPOINT_KEY) or {}
    if "encoder_arch" in state:
        return dict(state["encoder_arch"])
    hp = ckpt["hyper_parameters"]
    cfg = EncoderConfig(**hp["encoder"])
    width, depth, heads, mlp_ratio = cfg.resolved()
    return {"arch": "vit", "modality": "image", "width": width, "depth": depth, "heads": heads, "mlp_ratio": mlp_ratio,
            "patch_size": cfg.patch_size, "img_size": list(hp["image_size"]), "in_chans": 3, "num_frames": 1,
            "tubelet_size": 1, "pos": "sincos"}


def checkpoint_clips(ckpt: dict[str, Any]) -> dict[str, Any] | None:
    """How the training clips were cut (None for image runs and older checkpoints)."""
    return ckpt.get("hyper_parameters", {}).get("clip_sampling")


def evaluated_encoder(ckpt: dict[str, Any]) -> str:
    """``target`` or ``context``: the encoder the checkpoint's objective evaluates (the EMA target
    for ``ema``, the one online encoder for ``sigreg``, ``vicreg`` and ``lejepa``; checkpoints from before
    objectives were pluggable are ``ema``)."""
    evaluated = (ckpt.get(CHECKPOINT_KEY) or {}).get("evaluated", "target_encoder")
    return "target" if evaluated == "target_encoder" else "context"


def checkpoint_objective(ckpt: dict[str, Any]) -> str:
    return (ckpt.get(CHECKPOINT_KEY) or {}).get("objective", "ema")


def module_state(ckpt: dict[str, Any], module: str) -> dict[str, torch.Tensor]:
    """The weights of one module (a key of ``PREFIXES``), prefix removed; empty when absent."""
    prefix = PREFIXES[module]
    return {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}


def predictor_arch(config: dict[str, Any], encoder: VisionTransformer, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The predictor's architecture as an export records it: width, depth and heads resolved (the
    config may leave heads to the encoder's), its mlp ratio read from the weights."""
    built = Predictor.from_config(PredictorConfig(**config), encoder.embed_dim, encoder.grid_size, encoder.num_heads,
                                  pos=encoder.pos)
    hidden = state["blocks.0.mlp.fc1.weight"].shape[0] if "blocks.0.mlp.fc1.weight" in state else 4 * built.width
    return {"width": built.width, "depth": len(built.blocks), "heads": built.num_heads,
            "mlp_ratio": hidden / built.width}


def build_predictor(arch: dict[str, Any], encoder: VisionTransformer) -> Predictor:
    """The predictor an export's ``config.json`` describes, for ``encoder``'s token grid and positions."""
    return Predictor(encoder.embed_dim, encoder.grid_size, arch["width"], arch["depth"], arch["heads"],
                     mlp_ratio=arch.get("mlp_ratio", 4.0), pos=encoder.pos)


def build_encoder(arch: dict[str, Any]) -> VisionTransformer:
    """An encoder of the architecture an export's config.json (or ``checkpoint_arch``) describes;
    exports of version 1 are image encoders with sin-cos positions."""
    return VisionTransformer(
        img_size=tuple(arch["img_size"]),
        patch_size=arch["patch_size"],
        in_chans=arch.get("in_chans", 3),
        embed_dim=arch["width"],
        depth=arch["depth"],
        num_heads=arch["heads"],
        mlp_ratio=arch["mlp_ratio"],
        num_frames=arch.get("num_frames", 1),
        tubelet_size=arch.get("tubelet_size", 1),
        pos=arch.get("pos", "sincos"),
    )


def read_format_json(path: Path, fmt: str, missing: str, kind: str) -> dict[str, Any]:
    """Reads a JSON description file (an export's ``config.json``, a world model's ``world.json``) and
    checks its ``format``; every problem is one JEPAError line. ``missing`` says where such a file
    comes from; ``kind`` names what the format is."""
    if not path.is_file():
        raise JEPAError(f"{path} does not exist: {missing}")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exn:
        raise JEPAError(f"{path} is not valid JSON ({exn})") from None
    if not isinstance(config, dict) or config.get("format") != fmt:
        found = config.get("format") if isinstance(config, dict) else None
        raise JEPAError(f"{path} is not {kind} (format {found!r})")
    return config
