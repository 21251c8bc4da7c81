"""Exported encoders: ``model.safetensors`` + ``config.json``, and ``load_encoder`` to use them frozen.

An export holds one encoder's weights (the EMA target encoder by default, as the papers evaluate)
with the fixed position embedding included, so that timm's VisionTransformer loads the same file.
Nothing here unpickles anything a user did not create: checkpoints are read with
``torch.load(weights_only=True)`` and exports are safetensors.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .errors import JEPAError
from .models.vit import EncoderConfig, VisionTransformer

EXPORT_FORMAT = "jepa-encoder"
EXPORT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
PROJECTOR = "projector.safetensors"  # written only by jepa export --with-projector


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
    if not isinstance(ckpt, dict) or "jepa" not in ckpt or "encoder" not in ckpt.get("hyper_parameters", {}):
        raise JEPAError(f"{path} is not a checkpoint of this framework (written by jepa pretrain)")
    return ckpt


def encoder_config_from_hparams(hp: dict[str, Any]) -> dict[str, Any]:
    """Architecture of the encoder a checkpoint trained (sizes resolved, no defaults left implicit)."""
    cfg = EncoderConfig(**hp["encoder"])
    width, depth, heads, mlp_ratio = cfg.resolved()
    return {
        "arch": "vit",
        "width": width,
        "depth": depth,
        "heads": heads,
        "mlp_ratio": mlp_ratio,
        "patch_size": cfg.patch_size,
        "img_size": list(hp["image_size"]),
        "in_chans": 3,
        "num_frames": 1,  # images; video encoders will export their clip length and tubelet size
        "tubelet_size": 1,
    }


def _readable_by_others(path: Path) -> None:
    """Gives ``path`` the mode a plain ``open()`` would (safetensors writes 0600), so that others on
    a shared cluster can load the export."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


# --which: the state-dict prefix of each encoder a checkpoint can hold.
ENCODER_PREFIXES = {"target": "target_encoder.", "context": "encoder."}


def evaluated_encoder(ckpt: dict[str, Any]) -> str:
    """``target`` or ``context``: the encoder the checkpoint's objective evaluates (the EMA target
    for ``ema``, the one online encoder for ``sigreg`` and ``vicreg``; checkpoints from before
    objectives were pluggable are ``ema``)."""
    evaluated = (ckpt.get("jepa") or {}).get("evaluated", "target_encoder")
    return "target" if evaluated == "target_encoder" else "context"


def export_checkpoint(ckpt_path: str | Path, out_dir: str | Path, which: str = "auto", overwrite: bool = False,
                      with_projector: bool = False) -> Path:
    """Writes ``model.safetensors`` and ``config.json`` of one encoder of a checkpoint: ``auto``
    (default) the one its objective evaluates, or ``target`` / ``context`` explicitly; with
    ``with_projector`` also ``projector.safetensors`` (the objective's projector head, if any).

    An existing export in ``out_dir`` is replaced only with ``overwrite``; its ``probe-*`` results,
    which describe the old weights, are then removed.
    """
    if which not in ("auto", *ENCODER_PREFIXES):
        raise JEPAError(f"--which must be auto, target or context, not {which!r}")
    out = Path(out_dir)
    if (out / WEIGHTS).exists() and not overwrite:
        raise JEPAError(f"{out} already holds an export ({WEIGHTS}): choose another folder, or pass --overwrite")
    ckpt = read_checkpoint(ckpt_path)
    objective = (ckpt.get("jepa") or {}).get("objective", "ema")
    which = evaluated_encoder(ckpt) if which == "auto" else which
    prefix = ENCODER_PREFIXES[which]
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not state:
        hint = " (its objective has no target encoder: use --which context)" if which == "target" else ""
        raise JEPAError(f"{ckpt_path} holds no {which} encoder weights{hint}")
    projector = {k[len("projector."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("projector.")}
    if with_projector and not projector:
        raise JEPAError(f"{ckpt_path} holds no projector (objective {objective} has none)")
    arch = encoder_config_from_hparams(ckpt["hyper_parameters"])
    encoder = build_encoder(arch)
    state["pos_embed"] = encoder.pos_embed.clone()  # fixed sin-cos, saved for timm's learned slot
    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS
    tmp = out / f".{WEIGHTS}.tmp{os.getpid()}"
    save_file({k: v.detach().contiguous().float() for k, v in state.items()}, str(tmp), metadata={"format": "pt"})
    _readable_by_others(tmp)
    config = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        **arch,
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "which": which,
        "objective": objective,
        "projector": PROJECTOR if with_projector else None,
        "step": int(ckpt.get("global_step", 0)),
        "source_checkpoint": str(Path(ckpt_path).resolve()),
        "sha256": sha256_file(tmp),
    }
    if with_projector:
        # Next to the encoder, not in model.safetensors: that file stays loadable by timm.
        proj_tmp = out / f".{PROJECTOR}.tmp{os.getpid()}"
        save_file({k: v.detach().contiguous().float() for k, v in projector.items()}, str(proj_tmp))
        _readable_by_others(proj_tmp)
        os.replace(proj_tmp, out / PROJECTOR)
    config_tmp = out / f".{CONFIG}.tmp{os.getpid()}"
    config_tmp.write_text(json.dumps(config, indent=2) + "\n")
    # Both files are complete before either replaces the old one; a crash in between leaves a
    # checksum mismatch that load_encoder reports, never a silently mixed export.
    os.replace(tmp, weights)
    os.replace(config_tmp, out / CONFIG)
    for stale in sorted(out.glob("probe-*")):  # results of the old weights (folders written by jepa probe)
        if stale.is_dir() and not stale.is_symlink() and (stale / "probe.json").is_file():
            shutil.rmtree(stale)
    return out


def build_encoder(arch: dict[str, Any]) -> VisionTransformer:
    return VisionTransformer(
        img_size=tuple(arch["img_size"]),
        patch_size=arch["patch_size"],
        in_chans=arch.get("in_chans", 3),
        embed_dim=arch["width"],
        depth=arch["depth"],
        num_heads=arch["heads"],
        mlp_ratio=arch["mlp_ratio"],
    )


class FrozenEncoder(nn.Module):
    """An exported encoder in eval mode with no gradients.

    ``encoder(images)`` returns patch tokens [B, N, D] for normalised images [B, 3, H, W]
    (``encoder.normalize(x)`` normalises images with values in [0, 1]);
    ``encoder.features(images)`` the average-pooled feature vector [B, D];
    ``encoder.last_layers(images, n)`` the last ``n`` blocks' tokens (each through the final norm).
    ``config`` is the export's config.json; ``mean``/``std`` its input normalisation.
    """

    def __init__(self, vit: VisionTransformer, config: dict[str, Any]) -> None:
        super().__init__()
        self.vit = vit.requires_grad_(False).eval()
        self.config = config
        self.mean = tuple(config["normalization"]["mean"])
        self.std = tuple(config["normalization"]["std"])
        self.embed_dim = vit.embed_dim
        self.patch_size = vit.patch_size
        self.img_size = vit.img_size
        self.eval()

    def train(self, mode: bool = True) -> FrozenEncoder:
        return super().train(False)  # stays frozen: no dropout or drop-path ever

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Images with values in [0, 1] (e.g. from ``torchvision.transforms.ToTensor``) -> the
        normalised input the encoder was trained on."""
        mean = images.new_tensor(self.mean).view(-1, 1, 1)
        std = images.new_tensor(self.std).view(-1, 1, 1)
        return (images - mean) / std

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.vit(images)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.vit.pooled(images)

    @torch.no_grad()
    def last_layers(self, images: torch.Tensor, n: int = 4) -> list[torch.Tensor]:
        return self.vit.last_layers(images, n)


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG
    if not path.is_file():
        raise JEPAError(f"{path} does not exist: an encoder is loaded from a folder written by jepa export")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exn:
        raise JEPAError(f"{path} is not valid JSON ({exn})") from None
    if config.get("format") != EXPORT_FORMAT:
        raise JEPAError(f"{path} is not a jepa encoder export (format {config.get('format')!r})")
    missing = [k for k in ("width", "depth", "heads", "mlp_ratio", "patch_size", "img_size", "sha256") if k not in config]
    if missing:
        raise JEPAError(f"{path} lacks {', '.join(missing)}")
    return config


def load_encoder(directory: str | Path, device: str | torch.device = "cpu") -> FrozenEncoder:
    """Loads an export written by ``jepa export``: a frozen encoder in eval mode.

    Refuses a missing file, a checksum mismatch and weights that do not fit ``config.json``,
    each with one line naming the problem.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise JEPAError(f"encoder folder {directory} does not exist")
    config = _read_config(directory)
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise JEPAError(f"{weights} does not exist")
    if sha256_file(weights) != config["sha256"]:
        raise JEPAError(f"{weights} does not match the checksum in {directory / CONFIG}: the file changed or is corrupt")
    state = load_file(str(weights))
    state.pop("pos_embed", None)  # recomputed from the architecture (fixed sin-cos)
    vit = build_encoder(config)
    expected = vit.state_dict()
    wrong = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    extra = [k for k in state if k not in expected]
    if wrong or extra:
        what = wrong[0] if wrong else extra[0]
        shape = tuple(state[what].shape) if what in state else "missing"
        raise JEPAError(
            f"{weights} does not fit config.json ({len(wrong) + len(extra)} mismatched tensors, e.g. {what}: {shape})"
        )
    vit.load_state_dict(state)
    return FrozenEncoder(vit, config).to(device)


def timm_model_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments that make timm's VisionTransformer match an export (no class token,
    average pooling over the final-normed tokens, no head)."""
    return {
        "img_size": tuple(config["img_size"]),
        "patch_size": config["patch_size"],
        "embed_dim": config["width"],
        "depth": config["depth"],
        "num_heads": config["heads"],
        "mlp_ratio": config["mlp_ratio"],
        "class_token": False,
        "global_pool": "avg",
        "fc_norm": False,
        "num_classes": 0,
    }


def timm_encoder(directory: str | Path) -> nn.Module:
    """The export as a timm VisionTransformer (``model(images)`` = the pooled features)."""
    import timm

    directory = Path(directory)
    config = load_encoder(directory).config  # validates files, checksum and shapes first
    return timm.create_model(
        "vit_base_patch16_224",
        pretrained=True,
        pretrained_cfg_overlay={"file": str(directory / WEIGHTS)},
        **timm_model_kwargs(config),
    ).eval()
