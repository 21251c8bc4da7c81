"""``jepa probe linear|attentive|knn``: the arguments, each kind with only its own flags; answered
without importing torch (the probe itself is imported once they are read)."""

from __future__ import annotations

import argparse

from ..commandline import add_subcommands, add_subparser, new_parser, parse

KINDS = {
    "linear": ("a grid of linear heads (lr x weight decay, two poolings), all trained at once",
               "jepa probe linear --encoder runs/quickstart/export --train builtin:shapes --val builtin:shapes "
               "--baselines"),
    "attentive": ("the V-JEPA attentive probe: a learned query over all tokens, then a linear head",
                  "jepa probe attentive --encoder runs/quickstart_video/export --train builtin:bouncing "
                  "--val builtin:bouncing --baselines"),
    "knn": ("k nearest neighbours by cosine similarity, votes weighted by exp(similarity / T)",
            "jepa probe knn --encoder runs/quickstart/export --train builtin:shapes --val builtin:shapes"),
    "surprise": ("intuitive physics: is the predictor more surprised by the impossible clip of a pair?",
                 "jepa probe surprise --encoder runs/quickstart_video/export --pairs builtin:voe --baselines"),
}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoder", required=True, help="folder written by jepa export (required)")
    p.add_argument("--train", required=True, help="labelled DATA spec to fit the probe on (required)")
    p.add_argument("--val", required=True, help="labelled DATA spec to score on (required)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: <encoder>/probe-<kind>)")
    p.add_argument("--overwrite", action="store_true", help="replace the results already in the output folder")
    p.add_argument("--baselines", action="store_true",
                   help="also probe random weights and raw pixels; for clips also the pretrained encoder fed "
                   "clips whose frames are all the first frame (what a probe reads without motion)")
    shots = p.add_mutually_exclusive_group()
    shots.add_argument("--fraction", type=float, help="low-shot: this fraction of each training class (default: all)")
    shots.add_argument("--per-class", type=int, help="low-shot: this many training samples per class (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seeds low-shot subsets, random weights and probe training")
    p.add_argument("--image-size", type=int, help="probe resolution (default: the encoder's)")
    p.add_argument("--frames", type=int, help="video data: frames per clip (default: as the encoder was trained)")
    p.add_argument("--frame-step", type=int,
                   help="video data: source frames between clip frames (default: as the encoder was trained, else 4)")
    p.add_argument("--fps", type=float, help="video data: sample clips at this rate instead of --frame-step "
                   "(default: as the encoder was trained)")
    p.add_argument("--max-train", type=int, help="use at most this many training samples (default: all)")
    p.add_argument("--max-val", type=int, help="use at most this many validation samples (default: all)")
    p.add_argument("--batch-size", type=int, default=128, help="feature-extraction batch size")
    p.add_argument("--workers", type=int, default=0, help="data-loading processes")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--cache-dir", default=None, help="feature cache (default: ~/.cache/jepa/features)")


def _surprise(p: argparse.ArgumentParser) -> None:
    p.description = (
        "V-JEPA's surprise probe on pairs of clips identical up to an event: windows slide over each clip, the "
        "first frames of a window are context, the predictor predicts the rest, and the L1 error against the "
        "layer-normed target tokens is the window's surprise. Per event: how often the impossible clip is the "
        "more surprising (by the mean and by the maximum over windows, with bootstrap 95% intervals), absolute "
        "accuracy and AUROC. Needs an export with its predictor (jepa export --with-predictor).")
    p.add_argument("--encoder", required=True, help="a video export written with --with-predictor (required)")
    p.add_argument("--pairs", required=True,
                   help="builtin:voe (violation-of-expectation twins), or jumpcut:DATA, freeze:DATA, reverse:DATA "
                   "(pairs cut from the clips of a video folder, list or shards) (required)")
    p.add_argument("--context-frames", default=None,
                   help="context frames of each window, a multiple of the tubelet size, or 'auto' (chosen on the "
                   "held-out train split of builtin:voe, never on the scored pairs) (default: half the window)")
    p.add_argument("--stride", type=int, default=2, help="frames between two windows")
    p.add_argument("--pairs-per-event", type=int, default=200, help="builtin:voe: pairs of each event (even)")
    p.add_argument("--frames", type=int, default=None,
                   help="builtin:voe: frames per clip (default: the window and 12 more)")
    p.add_argument("--frame-step", type=int, default=None,
                   help="cut pairs: source frames between sampled frames (default: as the encoder was trained, else 4)")
    p.add_argument("--cut-every", type=int, default=4, help="cut pairs: sampled frames between two pairs of a clip")
    p.add_argument("--skip", type=int, default=8, help="jumpcut pairs: sampled frames cut out")
    p.add_argument("--max-pairs", type=int, help="cut pairs: use at most this many (default: all)")
    p.add_argument("--baselines", action="store_true",
                   help="also score random weights (--seeds of them) and copying the last context frame forward")
    p.add_argument("--seeds", type=int, default=3, help="random-weight baselines")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws of each interval")
    p.add_argument("--examples", type=int, default=2, help="pairs of each event drawn in surprise.png")
    p.add_argument("--seed", type=int, default=0, help="seeds the random weights and the bootstrap")
    p.add_argument("--out", metavar="DIR", help="output folder (default: <encoder>/probe-surprise)")
    p.add_argument("--overwrite", action="store_true", help="replace the results already in the output folder")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")


def probe_parser() -> argparse.ArgumentParser:
    parser = new_parser("jepa probe", "Evaluate a frozen exported encoder with a probe on labelled data; features "
                        "are extracted once and cached. Writes probe.json, summary.json and confusion.png.",
                        [example for _, example in KINDS.values()][:1])
    subs = add_subcommands(parser, "probes", dest="kind")
    for kind, (summary, example) in KINDS.items():
        p = add_subparser(subs, kind, summary, f"The {kind} probe: {summary}.", [example])
        if kind == "surprise":
            _surprise(p)
            continue
        _common(p)
        if kind == "linear":
            p.add_argument("--epochs", type=int, default=50, help="training epochs of every head")
            p.add_argument("--select", choices=("val", "holdout"), default="val",
                           help="how the setting (pooling, lr, weight decay) is chosen: val = best on the scored "
                           "split (optimistic); holdout = best on a held-out 10%% of the training features, trained "
                           "on the other 90%% (never looks at the scored split)")
            p.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2, 3e-2], help="learning rates")
            p.add_argument("--wds", type=float, nargs="+", default=[0.0, 1e-4, 1e-3], help="weight decays")
        elif kind == "attentive":
            p.add_argument("--max-steps", type=int, default=4000, help="optimizer steps at most")
            p.add_argument("--min-steps", type=int, default=500, help="optimizer steps at least")
            p.add_argument("--eval-every", type=int, default=100,
                           help="optimizer steps between two scorings on the held-out 10%% of the training clips")
            p.add_argument("--patience", type=int, default=5,
                           help="held-out scorings without improvement before the probe stops (the best is kept)")
        else:
            p.add_argument("--k", type=int, default=20, help="neighbours that vote")
            p.add_argument("--temperature", type=float, default=0.07, help="T of the vote weights exp(similarity / T)")
    return parser


# The attentive probe trains to convergence on held-out training clips instead of for a number of epochs.
ATTENTIVE_RENAMED = {"--epochs": "--max-steps (the attentive probe stops when held-out accuracy stops improving)"}


def probe_command(argv: list[str]) -> int:
    args = parse(probe_parser(), argv, renamed=ATTENTIVE_RENAMED if argv[:1] == ["attentive"] else None)
    if args.kind == "surprise":
        from .surprise_cli import surprise_main

        return surprise_main(args, argv)
    from .probe_cli import probe_main

    return probe_main(args, argv)
