"""``jepa report RUN_DIR [RUN_DIR ...]``: what a run folder says, in a few lines and one picture.

Reads only the files every run writes (``summary.json``, ``metrics.csv``), so it works on runs of
``jepa pretrain`` and ``jepa world``, finished, stopped or killed, and on several at once (their
curves overlaid). Imports no torch.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import replace_atomic
from ..commandline import new_parser, parse
from ..errors import JEPAError

# (panel title, metrics.csv columns drawn in it); a panel with none of its columns is left out.
PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("loss", ("loss", "train/loss", "train/teacher", "train/rollout")),
    ("learning rate", ("train/lr",)),
    ("probe accuracy (held-out)", ("probe/linear_acc", "probe/online_acc")),
    ("RankMe (effective rank of features)", ("monitor/rankme", "probe/rankme")),
    ("feature std", ("monitor/feature_std",)),
)


@dataclass
class RunRecord:
    """A run folder read back: its summary and its logged series ``{column: [(step, value), ...]}``."""

    path: Path
    summary: dict[str, Any] = field(default_factory=dict)
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def loss_column(self) -> str | None:
        return next((c for c in ("loss", "train/loss") if c in self.series), None)

    def trained_steps(self) -> int:
        """Steps the logged training rows account for (a row is logged at the step count before it)."""
        column = self.loss_column()
        return self.series[column][-1][0] + 1 if column else 0

    @property
    def name(self) -> str:
        return self.path.name or str(self.path)

    def last(self, column: str) -> float | None:
        values = self.series.get(column)
        return values[-1][1] if values else None


def _number(text: str | None) -> float | None:
    """A CSV cell as a number (NaN and inf kept: a diverged run must look diverged), else None."""
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def read_run(run_dir: str | Path) -> RunRecord:
    """Reads ``summary.json`` and ``metrics.csv`` of a run folder; a folder with neither is refused."""
    path = Path(run_dir)
    summary_path, metrics_path = path / "summary.json", path / "metrics.csv"
    if not summary_path.is_file() and not metrics_path.is_file():
        raise JEPAError(f"{path} is not a run folder: it has no summary.json or metrics.csv "
                        "(give the run_dir of jepa pretrain or jepa world)")
    record = RunRecord(path)
    if summary_path.is_file():
        try:
            record.summary = json.loads(summary_path.read_text())
        except json.JSONDecodeError as exn:
            raise JEPAError(f"{summary_path} is not valid JSON ({exn})") from None
    if metrics_path.is_file():
        with open(metrics_path, newline="") as f:
            for row in csv.DictReader(f):
                step = _number(row.get("step"))
                if step is None:
                    continue
                for column, text in row.items():
                    value = _number(text) if column not in ("step", "epoch") else None
                    if value is not None:
                        record.series.setdefault(column, []).append((int(step), value))
    return record


def _pct(value: float | None) -> str:
    return f"{100 * value:.1f}%" if value is not None else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def summary_lines(run: RunRecord) -> list[str]:
    """A few lines: status, steps and time, probe at step 0 and at the end, RankMe, skipped inputs,
    and for world models the held-out open-loop error."""
    s = run.summary
    logged = run.trained_steps()
    if not s:
        status, steps = "no summary.json (killed before it wrote one)", logged
    elif logged > s.get("steps", 0):  # a later start (a resume) went further and did not finish
        status, steps = f"{logged} steps logged after summary.json's ({s.get('status')}): killed since", logged
    else:
        status, steps = s.get("status", "?"), s.get("steps", logged)
    lines = [f"{run.path}: {status}; {steps} steps in {_duration(s.get('wall_time_s'))}"
             + (f" on {s['device']}" if s.get("device") else "")]
    figures = []
    column = run.loss_column()
    broken = next((step for step, v in run.series.get(column, []) if not math.isfinite(v)), None) if column else None
    if broken is not None:
        figures.append(f"the loss became {run.series[column][-1][1]} at step {broken}")
    loss = s.get("final_loss") if "final_loss" in s else run.last(column) if column else None
    if loss is not None and broken is None:
        figures.append(f"final loss {loss:.4f}")
    probe = s.get("probe") or {}
    if "final_linear_acc" in probe:
        figures.append(f"linear probe {_pct(probe.get('step0_linear_acc'))} at step 0 -> "
                       f"{_pct(probe['final_linear_acc'])} at step {probe.get('final_step', steps)}")
    elif probe.get("skipped"):
        figures.append(f"probe skipped ({probe['skipped']})")
    rank, std = run.last("monitor/rankme"), run.last("monitor/feature_std")
    if rank is not None:
        figures.append(f"RankMe {rank:.1f}" + (f", feature std {std:.3f}" if std is not None else "") + " (last logged)")
    if figures:
        lines.append("  " + "; ".join(figures))
    skipped = s.get("skipped_inputs")
    if skipped is not None:
        lines.append(f"  skipped inputs: {skipped.get('count', 0)} ({skipped.get('files', 0)} distinct)")
    table = s.get("open_loop_val") or {}
    if table.get("model"):
        lines.append(f"  held-out open-loop L1, horizon 1..{len(table['model'])}: model "
                     + " ".join(f"{v:.3f}" for v in table["model"])
                     + " | copy-last " + " ".join(f"{v:.3f}" for v in table.get("copy_last", [])))
    if s.get("position_probe_error_q99") is not None:
        lines.append(f"  position probe 99% error {s['position_probe_error_q99']:.4f}")
    return lines


def plot_runs(runs: list[RunRecord], out: str | Path) -> Path:
    """Draws every panel that some run has data for, the runs overlaid; writes ``out`` (PNG)."""
    from matplotlib.figure import Figure  # no pyplot: the process's backend stays as it is

    panels = [(title, cols) for title, cols in PANELS if any(c in r.series for r in runs for c in cols)]
    open_loop = [r for r in runs if (r.summary.get("open_loop_val") or {}).get("model")]
    count = len(panels) + (1 if open_loop else 0)
    if count == 0:
        raise JEPAError(f"nothing to draw: {', '.join(str(r.path) for r in runs)} logged no steps yet "
                        "(rows reach metrics.csv every trainer.log_every_n_steps)")
    cols = min(3, count)
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(4.6 * cols, 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    many = len(runs) > 1
    for ax, (title, columns) in zip(axes, panels):
        for i, run in enumerate(runs):
            for j, column in enumerate(c for c in columns if c in run.series):
                steps, values = zip(*run.series[column])
                label = f"{run.name}: {column}" if many else column
                style = "o-" if len(steps) <= 20 else "-"
                ax.plot(steps, values, style, ms=3, lw=1.2, color=f"C{(i * 3 + j) % 10}", label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        drawn = [v for r in runs for c in columns for _, v in r.series.get(c, [])]
        if title == "loss" and min(drawn) > 0 and max(drawn) > 10 * min(drawn):  # a log axis where it helps
            ax.set_yscale("log")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if open_loop:
        ax = axes[len(panels)]
        for i, run in enumerate(open_loop):
            table = run.summary["open_loop_val"]
            horizons = range(1, len(table["model"]) + 1)
            prefix = f"{run.name}: " if many else ""
            ax.plot(horizons, table["model"], "o-", color=f"C{i}", label=f"{prefix}world model")
            if table.get("copy_last"):
                ax.plot(horizons, table["copy_last"], "x--", color=f"C{i}", alpha=0.6, label=f"{prefix}copy last")
        ax.set_title("held-out open-loop L1 error", fontsize=10)
        ax.set_xlabel("horizon (steps)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[count:]:
        ax.set_visible(False)
    fig.suptitle(" vs ".join(str(r.path) for r in runs), fontsize=11)
    out = Path(out)
    replace_atomic(out, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    return out


def write_report(run_dirs: list[str | Path], out: str | Path | None = None) -> tuple[list[str], Path | str]:
    """Reads the runs and draws them; returns the summary lines and the picture's path (default
    ``<run>/report.png`` for one run), or why nothing was drawn."""
    if out is None and len(run_dirs) > 1:
        raise JEPAError("several runs are drawn into one picture: name it with --out (each run keeps its own "
                        "report.png)")
    runs = [read_run(d) for d in run_dirs]
    lines = [line for run in runs for line in summary_lines(run)]
    try:
        return lines, plot_runs(runs, out or runs[0].path / "report.png")
    except JEPAError as exn:  # the summary still stands
        return lines, str(exn)


def report_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "jepa report", "Print what run folders of jepa pretrain / jepa world say (status, steps, time, probe at step "
        "0 and at the end, RankMe, skipped inputs, open-loop error) and draw their curves into one PNG: loss, "
        "learning rate, probe accuracy, RankMe and feature std over steps, open-loop error by horizon.",
        ["jepa report runs/quickstart", "jepa report runs/a runs/b --out compare.png"])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders; several overlay their curves")
    parser.add_argument("--out", default=None, metavar="FILE", help="the picture to write (default: report.png in RUN_DIR; required for several runs)")
    return parser


def report_main(argv: list[str]) -> int:
    args = parse(report_parser(), argv)
    lines, drawn = write_report(args.run_dirs, args.out)
    print("\n".join(lines))
    print(f"curves written to {drawn}" if isinstance(drawn, Path) else f"no picture: {drawn}")
    return 0
