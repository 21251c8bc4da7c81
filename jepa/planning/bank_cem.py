"""The cross-entropy method over a bank of allowed actions: the high level of the two-level planner,
whose candidates are macro-action codes seen in training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import JEPAError
from .interfaces import Cost, Dynamics, PlanResult
from .search import BestSeen, rank_key, seeded_randn


@dataclass
class BankCEMSettings:
    """Settings of the cross-entropy method over a bank of allowed actions (the high level of the
    two-level planner: macro-action codes seen in training).

    Attributes:
        samples: candidate sequences per iteration.
        iterations: refits.
        elites: best candidates the Gaussian is refitted to.
        seed: seeds the planner's own generator.
    """

    samples: int = 300
    iterations: int = 10
    elites: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.elites <= self.samples or self.iterations < 1:
            raise JEPAError(f"the bank CEM needs 2 <= elites <= samples and iterations >= 1, got elites={self.elites}, "
                            f"samples={self.samples}, iterations={self.iterations}")


class BankCEM:
    """CEM whose candidates are drawn from a bank of allowed actions [N, A] only (Hi-LeWM: searching
    freely over learned macro-actions proposes subgoals no training chunk reaches): the first
    iteration draws bank entries uniformly; later ones sample the refitted Gaussian and snap each
    sample to its nearest bank entry. The best plan seen is kept (the first candidate of every
    iteration), and guardrails rank as in CEM. ``plan(model, context, cost, horizon, bank)``.
    """

    def __init__(self, settings: BankCEMSettings | None = None) -> None:
        self.settings = settings or BankCEMSettings()
        self.generator = torch.Generator().manual_seed(self.settings.seed)

    def plan(self, model: Dynamics, context: Any, cost: Cost, horizon: int, bank: torch.Tensor,
             init: torch.Tensor | None = None) -> PlanResult:
        """``init`` [horizon, C] (bank codes, e.g. the previous plan) is the first candidate."""
        s = self.settings
        n, dim = bank.shape
        idx = torch.randint(n, (s.samples, horizon), generator=self.generator)
        candidates = bank[idx.to(bank.device)]
        if init is not None:
            candidates[0] = init.to(candidates)
        best = BestSeen()
        with torch.no_grad():
            for i in range(s.iterations):
                costs, violated = best.evaluate(model, context, cost, candidates)
                if i == s.iterations - 1:
                    break
                elites = candidates[rank_key(costs, violated).argsort()[: s.elites]]
                mean, std = elites.mean(0), elites.std(0).clamp_min(1e-3)
                noise = seeded_randn((s.samples, horizon, dim), self.generator, bank.device, bank.dtype)
                drawn = (mean + std * noise).reshape(-1, dim)
                candidates = bank[torch.cdist(drawn, bank).argmin(dim=1)].reshape(s.samples, horizon, dim)
                assert best.safe is not None and best.any is not None
                candidates[0] = best.safe[1] if bool(torch.isfinite(best.safe[0])) else best.any[1]
        return best.result()
