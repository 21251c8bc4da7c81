"""Training: the LightningModule, EMA, schedules, optimizer groups, callbacks and the run folder.

Nothing is imported here, so that light modules of this package (``run_report``) load without torch;
the names below are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .module import OptimConfig, PretrainModule
    from .probe_eval import ProbeEvaluation
    from .summary import RunSummary

_WHERE = {"OptimConfig": ".module", "PretrainModule": ".module", "ProbeEvaluation": ".probe_eval",
          "RunSummary": ".summary"}
__all__ = ["OptimConfig", "PretrainModule", "ProbeEvaluation", "RunSummary"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
