"""Training: the LightningModule, EMA, schedules, optimizer groups and callbacks."""

from .module import EMAConfig, OptimConfig, PretrainModule
from .probe_eval import ProbeEvaluation
from .summary import RunSummary

__all__ = ["EMAConfig", "OptimConfig", "PretrainModule", "ProbeEvaluation", "RunSummary"]
