"""Progress that reads well wherever it goes: a bar redrawn in place on a terminal, and one line
every few percent in a file (CI and SLURM logs), where a redrawn bar would become thousands of
carriage-return frames on a single line."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


class Progress:
    """Reports ``done`` of ``total`` units.

    Args:
        total: units of the whole job (steps, episodes).
        unit: their name, for the text.
        stream: where to write (default: standard error).
        every: in a file, the fraction of the job between two lines.
    """

    def __init__(self, total: int, unit: str = "steps", stream: TextIO | None = None, every: float = 0.05) -> None:
        self.total, self.unit = max(1, int(total)), unit
        self.stream = stream or sys.stderr
        self.terminal = is_terminal(self.stream)
        self.ticks = max(1, round(1 / every))  # lines in a file over the whole job
        self.last_tick = -1
        self.first: int | None = None
        self.t0 = time.perf_counter()

    def update(self, done: int, note: str = "", total: int | None = None) -> None:
        """Shows ``done`` units (of ``total``, when the job's size changed since it began)."""
        if total is not None:
            self.total = max(1, int(total))
        tick = min(self.ticks, done * self.ticks // self.total)
        if self.first is None:  # a resumed job starts part-way: its rate counts from here
            self.first, self.t0 = done, time.perf_counter()
            self.last_tick = tick if done < self.total else -1
        frac = min(1.0, done / self.total)
        rate = (done - self.first) / max(time.perf_counter() - self.t0, 1e-9)
        text = f"{done}/{self.total} {self.unit} ({100 * frac:.0f}%, {rate:.2f}/s){' ' + note if note else ''}"
        if self.terminal:
            bar = "#" * int(30 * frac)
            print(f"\r[{bar:<30}] {text}", end="", file=self.stream, flush=True)
        elif tick > self.last_tick:  # integer ticks: exactly one line per step of the fraction
            print(text, file=self.stream, flush=True)
            self.last_tick = tick

    def close(self) -> None:
        if self.terminal:
            print(file=self.stream, flush=True)
