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


def probe_parser() -> argparse.ArgumentParser:
    parser = new_parser("jepa probe", "Evaluate a frozen exported encoder with a probe on labelled data; features "
                        "are extracted once and cached. Writes probe.json, summary.json and confusion.png.",
                        [example for _, example in KINDS.values()][:1])
    subs = add_subcommands(parser, "probes", dest="kind")
    for kind, (summary, example) in KINDS.items():
        p = add_subparser(subs, kind, summary, f"The {kind} probe: {summary}.", [example])
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
            p.add_argument("--epochs", type=int, default=20, help="training epochs")
        else:
            p.add_argument("--k", type=int, default=20, help="neighbours that vote")
            p.add_argument("--temperature", type=float, default=0.07, help="T of the vote weights exp(similarity / T)")
    return parser


def probe_command(argv: list[str]) -> int:
    args = parse(probe_parser(), argv)
    from .probe_cli import probe_main

    return probe_main(args, argv)
