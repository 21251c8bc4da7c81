"""``metrics.csv`` that survives a resume: Lightning's CSVLogger deletes the file it finds."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from ..atomic import replace_atomic


def _kept(row: dict[str, str | None], resume_step: int) -> bool:
    """Whether a row of the interrupted run belongs before the checkpoint it resumes from.

    Training rows are logged at the number of optimizer steps done before them, so those at or
    after ``resume_step`` were logged after the checkpoint and are logged again by the resumed run.
    A probe evaluation at step S is logged at S but runs before checkpoint S is written, so it is
    in the checkpoint and is not repeated: it stays. Rows cut short by a kill are dropped.
    """
    if None in row or any(v is None for v in row.values()):
        return False
    try:
        step = int(float(row.get("step") or ""))
    except ValueError:
        return False
    if step < resume_step:
        return True
    filled = [k for k, v in row.items() if v not in ("", None) and k not in ("step", "epoch")]
    return step == resume_step and bool(filled) and all(k.startswith("probe/") for k in filled)


class _ContinuingWriter(ExperimentWriter):
    """Keeps the rows of the interrupted run that precede the checkpoint and appends after them."""

    def __init__(self, log_dir: str, resume_step: int | None) -> None:
        self.resume_step = resume_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if self.resume_step is None or not os.path.isfile(self.metrics_file_path):
            super()._check_log_dir_exists()
            return
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            keys = list(reader.fieldnames or [])
            rows = [r for r in reader if _kept(r, self.resume_step)]

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=sorted(keys))  # Lightning appends in sorted-key order
                writer.writeheader()
                writer.writerows(rows)

        replace_atomic(self.metrics_file_path, write)
        self.metrics_keys = sorted(keys)


class RunCSVLogger(CSVLogger):
    """CSVLogger writing ``<run_dir>/metrics.csv``; a resumed run continues the file of its run."""

    def __init__(self, run_dir: str, resume_step: int | None = None) -> None:
        # Rows reach the file every step, so a killed job loses none of the steps it checkpointed.
        super().__init__(run_dir, name="", version="", flush_logs_every_n_steps=1)
        self.resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(self.log_dir, self.resume_step)
        return self._experiment
