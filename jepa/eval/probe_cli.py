"""``jepa probe {linear,attentive,knn}``: frozen-feature evaluation, with honest baselines."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_json_atomic
from ..contract import ARCH_KEYS, build_encoder
from ..data.spec import Data, open_data
from ..data.video.clips import ClipSampling
from ..errors import JEPAError
from ..export import FrozenEncoder, load_encoder
from ..metrics import rankme
from ..runlock import folders_released_after, take_folder
from ..stopping import StopRequested, exit_code, raise_if_stop_requested, stop_signals
from .attentive import ProbeSchedule, attentive_scores, train_attentive_probe
from .features import Features, default_cache_dir, extract_features, low_shot_indices
from .knn import knn_predict
from .linear import fit_linear_grid
from .report import confusion_matrix, format_table, save_confusion_png


def _peek(data: Data) -> tuple[tuple[int, int] | None, int | None]:
    """(width, height) (None for encoded videos) and label of the first sample, to check labels
    and resolution up front."""
    if data.is_stream:
        from ..data.shards import SkipLog, decode_image, raw_samples

        for raw in raw_samples(data.urls[0], SkipLog()):
            img, label = decode_image(raw)
            return getattr(img, "size", None), label
        raise JEPAError(f"{data.urls[0]} holds no samples")
    img, label = data.source.load(0)
    if hasattr(img, "shape"):  # frames made in code [T, H, W, 3]
        return (img.shape[2], img.shape[1]), label
    return getattr(img, "size", None), label


def check_data(data: Data, image_size: tuple[int, int], which: str) -> None:
    size, label = _peek(data)
    if label is None:
        raise JEPAError(f"--{which} {data.spec} has no labels: probes need class subfolders or .cls labels")
    if size is not None and min(size) * 2 < min(image_size):
        raise JEPAError(
            f"--{which} images are {size[0]}x{size[1]} px but the encoder takes {image_size[0]}x{image_size[1]}: "
            f"pass --image-size near the data's size (a multiple of the patch size)"
        )


def label_remap(train_data: Data, val_data: Data) -> torch.Tensor | None:
    """Maps val label indices onto train label indices by class name (folders may list different
    classes); refuses a val class that train lacks. None when the data carry no names."""
    if not train_data.classes or not val_data.classes or train_data.classes == val_data.classes:
        return None
    index = {name: i for i, name in enumerate(train_data.classes)}
    missing = [name for name in val_data.classes if name not in index]
    if missing:
        raise JEPAError(f"class {missing[0]} is in --val but not in --train: a probe cannot predict it")
    return torch.tensor([index[name] for name in val_data.classes])


class FirstFrameOnly(torch.nn.Module):
    """The encoder fed clips whose frames are all the clip's first frame: what a probe can read
    from the encoder without any motion (the bar a video encoder must clear on motion labels)."""

    def __init__(self, encoder: FrozenEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    @torch.no_grad()
    def last_layers(self, clips: torch.Tensor, n: int = 4) -> list[torch.Tensor]:
        return self.encoder.last_layers(clips[:, :, :1].expand_as(clips).contiguous(), n)


def _backbones(enc: FrozenEncoder, baselines: bool, seed: int,
               video: bool = False) -> list[tuple[str, FrozenEncoder | FirstFrameOnly | None, str]]:
    out: list[tuple[str, FrozenEncoder | FirstFrameOnly | None, str]] = [
        ("pretrained", enc, f"encoder:{enc.config['sha256']}")]
    if baselines and video:
        out.append(("first frame only", FirstFrameOnly(enc), f"first-frame:{enc.config['sha256']}"))
    if baselines:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random_vit = build_encoder(enc.config)
        arch = json.dumps({k: enc.config.get(k) for k in ARCH_KEYS})
        out.append(("random weights", FrozenEncoder(random_vit, enc.config).to(next(enc.parameters()).device),
                    f"random:{seed}:{arch}"))
        out.append(("raw pixels", None, "pixels"))
    return out


HOLDOUT = 0.1  # --select holdout: the fraction of training features that choose the setting


def _run_linear(tr: Features, va: Features, num_classes: int, args) -> list[dict[str, Any]]:
    rows = []
    train_idx = sel_idx = torch.arange(len(tr.labels))
    if args.select == "holdout":
        perm = torch.randperm(len(tr.labels), generator=torch.Generator().manual_seed(args.seed))
        k = max(1, int(HOLDOUT * len(perm)))
        sel_idx, train_idx = perm[:k], perm[k:]
    for pooling in ("avg", "avg4"):
        x_tr, x_va = (tr.pooled, va.pooled) if pooling == "avg" else (tr.pooled4, va.pooled4)
        heads = fit_linear_grid(x_tr[train_idx], tr.labels[train_idx], num_classes, tuple(args.lrs), tuple(args.wds),
                                epochs=args.epochs, seed=args.seed, stop_check=raise_if_stop_requested)
        accs = heads.accuracies(x_va, va.labels)
        sel = heads.accuracies(x_tr[sel_idx], tr.labels[sel_idx]) if args.select == "holdout" else accs
        logits = heads.logits(x_va)
        for i, (lr, wd) in enumerate(heads.grid):
            rows.append({"pooling": pooling, "lr": lr, "weight_decay": wd, "val_acc": accs[i],
                         "selection_acc": sel[i], "_pred": logits[i].argmax(-1)})
    return rows


def _run(kind: str, tr: Features, va: Features, num_classes: int, args) -> list[dict[str, Any]]:
    if kind == "linear":
        return _run_linear(tr, va, num_classes, args)
    if kind == "knn":
        pred = knn_predict(tr.pooled, tr.labels, va.pooled, num_classes, args.k, args.temperature).argmax(-1)
        acc = (pred == va.labels).float().mean().item()
        return [{"k": args.k, "temperature": args.temperature, "val_acc": acc, "_pred": pred}]
    try:
        schedule = ProbeSchedule(max_steps=args.max_steps, min_steps=args.min_steps, eval_every=args.eval_every,
                                 patience=args.patience)
    except ValueError as exn:
        raise JEPAError(f"--max-steps/--min-steps/--eval-every/--patience: {exn}") from None
    probe, training = train_attentive_probe(tr.tokens.float(), tr.labels, num_classes, schedule, seed=args.seed)
    pred = attentive_scores(probe, va.tokens.float()).argmax(-1)
    return [{"training": training, "val_acc": (pred == va.labels).float().mean().item(), "_pred": pred}]


def _selection(args: argparse.Namespace) -> str:
    if args.kind == "attentive":
        return ("one setting, trained on 90% of the training clips until its accuracy on the other 10% stopped "
                "improving; the weights of its best scoring are kept (results.*.best.training)")
    if args.kind == "linear" and args.select == "holdout":
        return ("setting chosen on a held-out 10% of the training features, trained on the other 90% "
                "(the scored split is never looked at)")
    return "best setting on the validation split (the full grid is listed)"


def _setting(kind: str, row: dict[str, Any]) -> str:
    if kind == "linear":
        return f"{row['pooling']} lr={row['lr']:g} wd={row['weight_decay']:g}"
    if kind == "knn":
        return f"k={row['k']} T={row['temperature']:g}"
    t = row["training"]
    return f"{t['best_step']} of {t['steps']} steps ({t['stopped'].replace('_', ' ')}; held-out {100 * t['holdout_acc']:.1f}%)"


def probe_main(args: argparse.Namespace, argv: list[str]) -> int:
    """``jepa probe`` with its arguments read (``jepa.eval.probe_args``); ``argv`` as typed, for summary.json."""
    # A stop signal ends the probe between batches or epochs; data workers ignore it.
    with stop_signals("stopping at the next batch or epoch"), folders_released_after():
        try:
            return _probe(args, argv)
        except StopRequested as stop:
            print(f"{stop}: nothing was written to the probe folder; features extracted in full are cached in "
                  f"{args.cache_dir or default_cache_dir()}, so the same command continues from them",
                  file=sys.stderr, flush=True)
            return exit_code(stop.signum)


def _probe(args: argparse.Namespace, argv: list[str]) -> int:
    t0 = time.perf_counter()
    enc = load_encoder(args.encoder, device=args.device)
    image_size = (args.image_size, args.image_size) if args.image_size else tuple(enc.img_size)
    if image_size[0] % enc.patch_size or image_size[1] % enc.patch_size:
        raise JEPAError(f"--image-size {image_size[0]} is not a multiple of the encoder's patch size {enc.patch_size}")
    resolution = max(image_size)
    trained = enc.config.get("clips") or {}
    frames = args.frames or trained.get("frames_per_clip") or enc.num_frames
    step = args.frame_step or trained.get("frame_step") or 4
    fps = args.fps if args.fps is not None else (trained.get("fps") if args.frame_step is None else None)
    try:
        clips = ClipSampling(frames_per_clip=frames, frame_step=step, fps=fps)
    except JEPAError as exn:
        raise JEPAError(f"--frames/--frame-step/--fps: {exn}") from None
    span = clips.span
    train_data = open_data(args.train, "train", resolution, span)
    val_data = open_data(args.val, "val", resolution, span)
    video = train_data.modality == "video"
    if val_data.modality != train_data.modality:
        raise JEPAError(f"--train holds {train_data.modality}s but --val holds {val_data.modality}s")
    if video and not enc.video:
        raise JEPAError(f"--train {args.train} holds videos but {args.encoder} is an image encoder: "
                        "probe it on images, or pretrain a video encoder")
    if video and frames % enc.tubelet_size:
        raise JEPAError(f"--frames {frames} is not a multiple of the encoder's tubelet size {enc.tubelet_size}")
    check_data(train_data, image_size, "train")
    check_data(val_data, image_size, "val")
    classes = list(train_data.classes) if train_data.classes else None
    remap = label_remap(train_data, val_data)
    out_dir = Path(args.out or Path(args.encoder) / f"probe-{args.kind}")
    take_folder(out_dir, f"jepa probe {args.kind}", hint="give another --out")
    if (out_dir / "probe.json").exists() and not args.overwrite:
        raise JEPAError(f"{out_dir} already holds a probe.json: pass --overwrite to replace it, or another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    normalization = (enc.mean, enc.std)
    common = dict(image_size=image_size, patch_size=enc.patch_size, normalization=normalization,
                  tokens=args.kind == "attentive", batch_size=args.batch_size, workers=args.workers,
                  device=args.device, cache_dir=args.cache_dir, clips=clips if video else None)
    table: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    cached_any = False
    for name, backbone, backbone_id in _backbones(enc, args.baselines, args.seed, video):
        tr, hit_tr = extract_features(backbone, backbone_id, train_data, "train", limit=args.max_train, **common)
        va, hit_va = extract_features(backbone, backbone_id, val_data, "val", limit=args.max_val, **common)
        cached_any |= hit_tr or hit_va
        if remap is not None:
            va = replace(va, labels=remap[va.labels])
        missing = sorted(set(va.labels.tolist()) - set(tr.labels.tolist()))
        if missing:
            label = classes[missing[0]] if classes and missing[0] < len(classes) else missing[0]
            raise JEPAError(f"class {label} is in --val but not in --train: a probe cannot predict it")
        tr = tr.subset(low_shot_indices(tr.labels, args.fraction, args.per_class, args.seed))
        num_classes = len(classes) if classes else int(max(tr.labels.max(), va.labels.max())) + 1
        rows = _run(args.kind, tr, va, num_classes, args)
        best = max(rows, key=lambda r: r.get("selection_acc", r["val_acc"]))
        table.append({"backbone": name, "probe": args.kind, "setting": _setting(args.kind, best), "val_acc": best["val_acc"]})
        results[name] = {"best": {k: v for k, v in best.items() if not k.startswith("_")},
                         # effective rank of the scored features: a collapsed encoder shows here
                         "rankme": rankme(va.pooled).item(),
                         "grid": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
                         "train_samples": len(tr.labels), "val_samples": len(va.labels)}
        if name == "pretrained":
            skipped = tr.skipped + va.skipped  # the baselines read the same inputs
            cm = confusion_matrix(best["_pred"], va.labels, num_classes)
            save_confusion_png(cm, classes, out_dir / "confusion.png",
                               f"{args.kind} probe, {100 * best['val_acc']:.1f}% ({_setting(args.kind, best)})")
    report = {
        "probe": args.kind,
        "encoder": str(Path(args.encoder).resolve()),
        "encoder_step": enc.config.get("step"),
        "train": args.train,
        "val": args.val,
        "image_size": list(image_size),
        **({"clips": {"frames": frames, "frame_step": step, "fps": fps}} if video else {}),
        "low_shot": {"fraction": args.fraction, "per_class": args.per_class, "seed": args.seed},
        "selection": _selection(args),
        "results": results,
    }
    write_json_atomic(out_dir / "probe.json", report)
    summary = {"command": " ".join(["jepa", "probe", *argv]), "wall_time_s": round(time.perf_counter() - t0, 2),
               "features_from_cache": cached_any, "headline": {r["backbone"]: r["val_acc"] for r in table},
               "skipped_inputs": {"count": len(skipped), "examples": skipped[:20]}}
    write_json_atomic(out_dir / "summary.json", summary)
    print(format_table(table))
    if skipped:
        print(f"skipped {len(skipped)} inputs that failed to load (listed in summary.json)", file=sys.stdout)
    print(f"written to {out_dir} (probe.json, confusion.png, summary.json)", file=sys.stdout)
    return 0
