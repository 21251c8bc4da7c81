"""Training: the LightningModule, EMA, schedules, optimizer groups and callbacks."""

from .module import OptimConfig, PretrainModule
from .probe_eval import ProbeEvaluation
from .summary import RunSummary

__all__ = ["OptimConfig", "PretrainModule", "ProbeEvaluation", "RunSummary"]
