"""``jepa probe surprise``: does the frozen JEPA find the impossible clip of each pair more surprising?

Writes ``surprise.json`` (settings, per model and event the scores, every pair's surprise),
``surprise.png`` (surprise over time for example pairs, the event frame marked) and ``summary.json``,
and prints the table. Baselines: the same architecture at random weights (several seeds) and a
predictor that copies the last context frame's tokens forward.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_json_atomic
from ..data.pairs import CutSettings, open_pairs
from ..errors import JEPAError
from ..export import FrozenPredictor, load_predictor
from ..progress import Progress
from ..runlock import folders_released_after, take_folder
from ..stopping import StopRequested, exit_code, raise_if_stop_requested, stop_signals
from .surprise import SurpriseModel, Windows, random_jepa
from .surprise_metrics import EventScore, relative_accuracy, score_event

HELD_OUT_PAIRS = 50  # per event, from builtin:voe's train split, for --context-frames auto


def _context(args: argparse.Namespace, jepa: FrozenPredictor) -> int | str:
    window, tubelet = jepa.target.num_frames, jepa.target.tubelet_size
    if args.context_frames is None:
        return max(tubelet, window // 2 // tubelet * tubelet)
    if args.context_frames == "auto":
        if args.pairs != "builtin:voe":
            raise JEPAError("--context-frames auto chooses on held-out builtin:voe twins: with cut pairs give a number")
        return "auto"
    try:
        return int(args.context_frames)
    except ValueError:
        raise JEPAError(f"--context-frames must be a number of frames or auto, not {args.context_frames!r}") from None


def _choose_context(jepa: FrozenPredictor, args: argparse.Namespace, frames: int) -> tuple[int, dict[str, float]]:
    """The context length whose mean relative accuracy is best on held-out twins (builtin:voe train)."""
    window, tubelet = jepa.target.num_frames, jepa.target.tubelet_size
    held = open_pairs("builtin:voe", tuple(jepa.target.img_size), frames, split="train",
                      pairs_per_event=min(HELD_OUT_PAIRS, args.pairs_per_event))
    twins = [held.pair(i) for i in range(len(held))]
    found = {}
    for context in range(tubelet, window, tubelet):
        model = SurpriseModel(jepa, Windows(window, args.stride, context), device=args.device)
        possible = np.array([model.series(t.possible).mean() for t in twins])
        impossible = np.array([model.series(t.impossible).mean() for t in twins])
        found[str(context)] = relative_accuracy(possible, impossible)
    best = max(found, key=lambda c: (found[c], -int(c)))
    return int(best), found


def _models(jepa: FrozenPredictor, windows: Windows, args: argparse.Namespace) -> dict[str, SurpriseModel]:
    models = {"pretrained": SurpriseModel(jepa, windows, device=args.device)}
    if args.baselines:
        for k in range(args.seeds):
            models[f"random weights (seed {args.seed + k})"] = SurpriseModel(
                random_jepa(jepa, args.seed + k, args.device), windows, device=args.device)
        models["copy last frame"] = SurpriseModel(jepa, windows, copy_last=True, device=args.device)
    return models


def table(scores: dict[str, dict[str, EventScore]]) -> str:
    rows = [f"{'event':<16} {'model':<26} {'pairs':>5}  {'rel. acc. (mean) [95% CI]':<26} "
            f"{'rel. acc. (max) [95% CI]':<26} {'abs. acc.':>9} {'AUROC':>6}"]
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    for event, by_model in scores.items():
        for model, s in by_model.items():
            mean = f"{pct(s.mean_accuracy)} [{pct(s.mean_interval[0])}, {pct(s.mean_interval[1])}]"
            peak = f"{pct(s.max_accuracy)} [{pct(s.max_interval[0])}, {pct(s.max_interval[1])}]"
            rows.append(f"{event:<16} {model:<26} {s.pairs:>5}  {mean:<26} {peak:<26} "
                        f"{pct(s.absolute_accuracy):>9} {s.auroc:>6.3f}")
    return "\n".join(rows)


def plot_examples(examples: list[dict[str, Any]], windows: Windows, path: Path) -> None:
    """Surprise over time (at each window's first target frame) of example pairs, the event marked."""
    from matplotlib.figure import Figure  # no pyplot: the process's backend stays as it is

    cols = min(4, len(examples))
    rows = (len(examples) + cols - 1) // cols
    fig = Figure(figsize=(3.6 * cols, 2.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax, ex in zip(axes, examples):
        x = [s + windows.context for s in windows.starts(ex["frames"])]
        ax.plot(x, ex["possible"], "o-", ms=3, color="C0", label="possible")
        ax.plot(x, ex["impossible"], "o-", ms=3, color="C3", label="impossible")
        ax.axvline(ex["event_frame"], color="0.5", ls="--", lw=1)
        ax.set_title(f"{ex['event']}: {ex['variant']}", fontsize=9)
        ax.set_xlabel("first predicted frame")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(examples):]:
        ax.set_visible(False)
    fig.suptitle("surprise (L1 of the predicted target tokens) per window; dashed: the event frame", fontsize=10)
    fig.savefig(path, dpi=110)


def surprise_main(args: argparse.Namespace, argv: list[str]) -> int:
    """``jepa probe surprise`` with its arguments read (``jepa.eval.probe_args``)."""
    with stop_signals("stopping after the current pair"), folders_released_after():
        try:
            return _surprise(args, argv)
        except StopRequested as stop:
            print(f"{stop}: nothing was written to the probe folder", file=sys.stderr, flush=True)
            return exit_code(stop.signum)


def _surprise(args: argparse.Namespace, argv: list[str]) -> int:
    t0 = time.perf_counter()
    jepa = load_predictor(args.encoder, args.device)
    if not jepa.target.video:
        raise JEPAError(f"{args.encoder} is an image encoder: the surprise probe needs a video encoder")
    out = Path(args.out or Path(args.encoder) / "probe-surprise")
    take_folder(out, "jepa probe surprise", hint="give another --out")
    if (out / "surprise.json").exists() and not args.overwrite:
        raise JEPAError(f"{out} already holds a surprise.json: pass --overwrite to replace it, or another --out")
    if args.pairs_per_event < 2 or args.pairs_per_event % 2:
        raise JEPAError(f"--pairs-per-event must be even (each pair comes with its mirror), not {args.pairs_per_event}")
    window = jepa.target.num_frames
    frames = args.frames or window + 12
    if frames < window:
        raise JEPAError(f"--frames {frames} is shorter than one window ({window} frames)")
    context = _context(args, jepa)
    chosen: dict[str, Any] = {"rule": "fixed in advance" if context != "auto" else "auto"}
    if context == "auto":
        context, accuracies = _choose_context(jepa, args, frames)
        chosen.update(rule=f"best mean relative accuracy on {HELD_OUT_PAIRS} held-out builtin:voe train pairs per event",
                      held_out_accuracy=accuracies)
    windows = Windows(window, args.stride, context)
    step = args.frame_step or (jepa.config.get("clips") or {}).get("frame_step") or 4
    length = window + 8
    cut = CutSettings(length=length, cut=length // 2 + 1, skip=args.skip, every=args.cut_every, frame_step=step)
    pairs = open_pairs(args.pairs, tuple(jepa.target.img_size), frames, pairs_per_event=args.pairs_per_event,
                       cut=cut, max_pairs=args.max_pairs)
    models = _models(jepa, windows, args)
    series: dict[str, dict[str, list[dict[str, Any]]]] = {m: {} for m in models}
    examples: list[dict[str, Any]] = []
    bar = Progress(len(pairs), "pairs")
    for i in range(len(pairs)):
        raise_if_stop_requested()
        twin = pairs.pair(i)
        for name, model in models.items():
            possible, impossible = model.series(twin.possible), model.series(twin.impossible)
            series[name].setdefault(twin.event, []).append(
                {"key": twin.key, "variant": twin.variant, "event_frame": twin.event_frame,
                 "possible": possible.round(6).tolist(), "impossible": impossible.round(6).tolist()})
            if name == "pretrained" and sum(e["event"] == twin.event for e in examples) < args.examples:
                examples.append({"event": twin.event, "variant": twin.variant, "event_frame": twin.event_frame,
                                 "frames": len(twin.possible), "possible": possible, "impossible": impossible})
        bar.update(i + 1, twin.event)
    bar.close()
    scores = {event: {name: score_event([np.array(p["possible"]) for p in series[name][event]],
                                        [np.array(p["impossible"]) for p in series[name][event]],
                                        args.bootstrap, args.seed) for name in models}
              for event in series["pretrained"]}
    out.mkdir(parents=True, exist_ok=True)
    skipped = list(getattr(pairs, "skipped", []))
    report = {
        "probe": "surprise", "encoder": str(Path(args.encoder).resolve()), "encoder_step": jepa.config.get("step"),
        "pairs": args.pairs, "windows": asdict(windows), "context_choice": chosen,
        **({"cut": asdict(cut)} if args.pairs != "builtin:voe" else {"frames_per_clip": frames}),
        "scores": {event: {name: asdict(s) for name, s in by.items()} for event, by in scores.items()},
        "skipped_clips": skipped, "series": series,
    }
    write_json_atomic(out / "surprise.json", report)
    plot_examples(examples, windows, out / "surprise.png")
    write_json_atomic(out / "summary.json", {
        "command": " ".join(["jepa", "probe", *argv]), "wall_time_s": round(time.perf_counter() - t0, 2),
        "headline": {event: {name: s.mean_accuracy for name, s in by.items()} for event, by in scores.items()},
        "skipped_inputs": {"count": len(skipped), "examples": skipped[:20]}})
    print(table(scores))
    if skipped:
        print(f"skipped {len(skipped)} clips (too short for a pair, or unreadable; listed in surprise.json)")
    print(f"context: {context} of {window} frames per window ({chosen['rule']}); written to {out} "
          "(surprise.json, surprise.png, summary.json)")
    return 0
