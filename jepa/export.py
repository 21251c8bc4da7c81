"""Exported encoders: ``model.safetensors`` + ``config.json``, and ``load_encoder`` to use them frozen.

An export holds one encoder's weights (the EMA target encoder by default, as the papers evaluate)
with the fixed position embedding included, so that timm's VisionTransformer loads the same file.
Nothing here unpickles anything a user did not create: checkpoints are read with
``torch.load(weights_only=True)`` and exports are safetensors.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .atomic import temporary_beside
from .contract import (
    ARCH_KEYS,
    CONFIG,
    CONTEXT,
    ENCODER_PREFIXES,
    EXPORT_FORMAT,
    EXPORT_VERSION,
    PREDICTOR,
    PROJECTOR,
    REQUIRED_CONFIG_KEYS,
    WEIGHTS,
    build_encoder,
    build_predictor,
    checkpoint_arch,
    checkpoint_clips,
    checkpoint_objective,
    evaluated_encoder,
    module_state,
    predictor_arch,
    read_checkpoint,
    read_format_json,
    sha256_file,
)
from .data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .errors import JEPAError
from .models.vit import VisionTransformer
from .runlock import hold_folder


def _readable_by_others(path: Path) -> None:
    """Gives ``path`` the mode a plain ``open()`` would (safetensors writes 0600), so that others on
    a shared cluster can load the export."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    """Writes ``state`` (fp32) to a temporary file beside ``path``; returns the temporary's path."""
    tmp = temporary_beside(path)
    save_file({k: v.detach().contiguous().float() for k, v in state.items()}, str(tmp), metadata={"format": "pt"})
    _readable_by_others(tmp)
    return tmp


def _encoder_state(ckpt: dict[str, Any], which: str, encoder: VisionTransformer, ckpt_path: str | Path) -> dict:
    state = module_state(ckpt, which)
    if not state:
        hint = " (its objective has no target encoder: use --which context)" if which == "target" else ""
        raise JEPAError(f"{ckpt_path} holds no {which} encoder weights{hint}")
    if hasattr(encoder, "pos_embed"):
        state["pos_embed"] = encoder.pos_embed.clone()  # fixed sin-cos, saved for timm's learned slot
    return state


def export_checkpoint(ckpt_path: str | Path, out_dir: str | Path, which: str = "auto", overwrite: bool = False,
                      with_projector: bool = False, with_predictor: bool = False) -> Path:
    """Writes ``model.safetensors`` and ``config.json`` of one encoder of a checkpoint: ``auto``
    (default) the one its objective evaluates, or ``target`` / ``context`` explicitly; with
    ``with_projector`` also ``projector.safetensors`` (the objective's projector head, if any); with
    ``with_predictor`` also ``predictor.safetensors`` and, when the exported encoder is the EMA target,
    ``context.safetensors``: the context encoder the predictor was trained with (see ``load_predictor``).

    An existing export in ``out_dir`` is replaced only with ``overwrite``; its ``probe-*`` results,
    which describe the old weights, are then removed.
    """
    if which not in ("auto", *ENCODER_PREFIXES):
        raise JEPAError(f"--which must be auto, target or context, not {which!r}")
    with hold_folder(out_dir, "jepa export", hint="give another --out"):
        return _write_export(ckpt_path, Path(out_dir), which, overwrite, with_projector, with_predictor)


def _write_export(ckpt_path: str | Path, out: Path, which: str, overwrite: bool, with_projector: bool,
                  with_predictor: bool) -> Path:
    if (out / WEIGHTS).exists() and not overwrite:
        raise JEPAError(f"{out} already holds an export ({WEIGHTS}): choose another folder, or pass --overwrite")
    ckpt = read_checkpoint(ckpt_path)
    objective = checkpoint_objective(ckpt)
    which = evaluated_encoder(ckpt) if which == "auto" else which
    projector = module_state(ckpt, "projector")
    if with_projector and not projector:
        raise JEPAError(f"{ckpt_path} holds no projector (objective {objective} has none)")
    arch = {k: v for k, v in checkpoint_arch(ckpt).items() if k in ARCH_KEYS}
    encoder = build_encoder(arch)
    out.mkdir(parents=True, exist_ok=True)
    # Every file is complete (as a temporary beside its target) before any replaces an old one; a
    # crash in between leaves a checksum mismatch that the loaders report, never a mixed export.
    weights = out / WEIGHTS
    temporaries = {weights: _save(_encoder_state(ckpt, which, encoder, ckpt_path), weights)}
    sha = sha256_file(temporaries[weights])
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
        "sha256": sha,
        **({"clips": checkpoint_clips(ckpt)} if checkpoint_clips(ckpt) else {}),
    }
    if with_projector:
        # Next to the encoder, not in model.safetensors: that file stays loadable by timm.
        temporaries[out / PROJECTOR] = _save(projector, out / PROJECTOR)
    if with_predictor:
        if which == "context":
            context_file, context_sha = WEIGHTS, sha
        else:
            context_file = CONTEXT
            temporaries[out / CONTEXT] = _save(_encoder_state(ckpt, "context", encoder, ckpt_path), out / CONTEXT)
            context_sha = sha256_file(temporaries[out / CONTEXT])
        state = module_state(ckpt, "predictor")
        temporaries[out / PREDICTOR] = _save(state, out / PREDICTOR)
        config["context_encoder"] = {"file": context_file, "sha256": context_sha}
        config["predictor"] = {"file": PREDICTOR, "sha256": sha256_file(temporaries[out / PREDICTOR]),
                               **predictor_arch(ckpt["hyper_parameters"]["predictor"], encoder, state),
                               "encoder_sha256": sha}
    config_tmp = temporary_beside(out / CONFIG)
    config_tmp.write_text(json.dumps(config, indent=2) + "\n")
    for final, tmp in temporaries.items():
        os.replace(tmp, final)
    os.replace(config_tmp, out / CONFIG)
    for stale in sorted(out.glob("probe-*")):  # results of the old weights (folders written by jepa probe)
        if stale.is_dir() and not stale.is_symlink() and (stale / "probe.json").is_file():
            shutil.rmtree(stale)
    return out


class FrozenEncoder(nn.Module):
    """An exported encoder in eval mode with no gradients.

    ``encoder(x)`` returns tokens [B, N, D] for normalised images [B, 3, H, W] or, for a video
    encoder (``config["modality"] == "video"``), clips [B, 3, T, H, W] too
    (``encoder.normalize(x)`` normalises inputs with values in [0, 1]);
    ``encoder.features(x)`` the average-pooled feature vector [B, D];
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
        self.num_frames = vit.num_frames
        self.tubelet_size = vit.tubelet_size
        self.video = vit.video
        self.eval()

    def train(self, mode: bool = True) -> FrozenEncoder:
        return super().train(False)  # stays frozen: no dropout or drop-path ever

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] or clips [B, C, T, H, W] with values in [0, 1] (e.g. from
        ``torchvision.transforms.ToTensor``) -> the normalised input the encoder was trained on."""
        # Channels are dim 0 of one image [C, H, W], dim 1 of a batch of images or clips.
        shape = (-1, 1, 1) if images.dim() == 3 else (1, -1) + (1,) * (images.dim() - 2)
        mean = images.new_tensor(self.mean).view(shape)
        std = images.new_tensor(self.std).view(shape)
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
    config = read_format_json(path, EXPORT_FORMAT, "an encoder is loaded from a folder written by jepa export",
                              "a jepa encoder export")
    missing = [k for k in REQUIRED_CONFIG_KEYS if k not in config]
    if missing:
        raise JEPAError(f"{path} lacks {', '.join(missing)}")
    return config


def _load_vit(directory: Path, config: dict[str, Any], file: str, sha256: str, what: str) -> VisionTransformer:
    """An encoder of ``config``'s architecture from ``file``, checked against ``sha256``."""
    weights = directory / file
    if not weights.is_file():
        raise JEPAError(f"{weights} does not exist")
    if sha256_file(weights) != sha256:
        raise JEPAError(f"{weights} does not match the checksum in {directory / CONFIG}: {what}")
    state = load_file(str(weights))
    state.pop("pos_embed", None)  # recomputed from the architecture (fixed sin-cos)
    vit = build_encoder(config)
    _check_fits(vit, state, weights)
    vit.load_state_dict(state)
    return vit


def _check_fits(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = module.state_dict()
    wrong = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    extra = [k for k in state if k not in expected]
    if wrong or extra:
        what = wrong[0] if wrong else extra[0]
        shape = tuple(state[what].shape) if what in state else "missing"
        raise JEPAError(
            f"{path} does not fit config.json ({len(wrong) + len(extra)} mismatched tensors, e.g. {what}: {shape})"
        )


def load_encoder(directory: str | Path, device: str | torch.device = "cpu") -> FrozenEncoder:
    """Loads an export written by ``jepa export``: a frozen encoder in eval mode.

    Refuses a missing file, a checksum mismatch and weights that do not fit ``config.json``,
    each with one line naming the problem.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise JEPAError(f"encoder folder {directory} does not exist")
    config = _read_config(directory)
    vit = _load_vit(directory, config, WEIGHTS, config["sha256"], "the file changed or is corrupt")
    return FrozenEncoder(vit, config).to(device)


@dataclass
class FrozenPredictor:
    """An export's whole JEPA, frozen: the encoder that makes targets (``target``, model.safetensors),
    the context encoder the predictor was trained with (``context``: the same encoder for sigreg and
    vicreg, the online encoder beside an EMA target) and the predictor, which maps context tokens to
    predicted target tokens (``predictor(z, ctx_idx, tgt_idx, grid)``, see ``jepa.models.predictor``).
    """

    target: FrozenEncoder
    context: FrozenEncoder
    predictor: nn.Module
    config: dict[str, Any]


def load_predictor(directory: str | Path, device: str | torch.device = "cpu") -> FrozenPredictor:
    """Loads an export written by ``jepa export --with-predictor``: target encoder, context encoder
    and predictor, frozen. Refuses, in one line, an export without a predictor and a predictor or
    context encoder that does not belong to the export's encoder (checksums)."""
    directory = Path(directory)
    target = load_encoder(directory, device)
    config = target.config
    spec, context_spec = config.get("predictor"), config.get("context_encoder")
    if not isinstance(spec, dict) or not isinstance(context_spec, dict):
        raise JEPAError(f"{directory} was exported without its predictor: export the checkpoint again with "
                        f"jepa export {config.get('source_checkpoint', 'CKPT')} --with-predictor")
    if spec.get("encoder_sha256") != config["sha256"]:
        raise JEPAError(f"the predictor in {directory} belongs to another encoder (made for {spec.get('encoder_sha256')}, "
                        f"the encoder is {config['sha256']}): export both from one checkpoint")
    belongs = "it belongs to another export (export both from one checkpoint)"
    context = target if context_spec["file"] == WEIGHTS else FrozenEncoder(
        _load_vit(directory, config, context_spec["file"], context_spec["sha256"], belongs), config).to(device)
    path = directory / spec["file"]
    if not path.is_file():
        raise JEPAError(f"{path} does not exist")
    if sha256_file(path) != spec["sha256"]:
        raise JEPAError(f"{path} does not match the checksum in {directory / CONFIG}: {belongs}")
    predictor = build_predictor(spec, target.vit)
    state = load_file(str(path))
    _check_fits(predictor, state, path)
    predictor.load_state_dict(state)
    return FrozenPredictor(target, context, predictor.requires_grad_(False).eval().to(device), config)


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
    """The export as a timm VisionTransformer (``model(images)`` = the pooled features).

    Image encoders with sin-cos positions only: timm's VisionTransformer has a 2-D patch embedding
    and one learned position table, so it cannot hold a video (tubelet) encoder or rotary positions."""
    import timm

    directory = Path(directory)
    config = load_encoder(directory).config  # validates files, checksum and shapes first
    if config.get("modality", "image") != "image" or config.get("pos", "sincos") != "sincos":
        raise JEPAError(f"{directory} holds a {config.get('modality')} encoder with {config.get('pos')} positions: "
                        "timm's VisionTransformer holds only image encoders with sin-cos positions; use jepa.load_encoder")
    return timm.create_model(
        "vit_base_patch16_224",
        pretrained=True,
        pretrained_cfg_overlay={"file": str(directory / WEIGHTS)},
        **timm_model_kwargs(config),
    ).eval()
