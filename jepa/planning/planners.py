"""Three planners behind ``jepa.planning.interfaces.Planner``: CEM, MPPI and gradient descent on the
action sequence. Each iteration sends all of its candidates through ONE ``model.rollout`` call.

Guardrails, common to all three: candidates that ``cost.violations`` marks are ranked below every safe
candidate (CEM elites, MPPI weights), and the returned plan is the lowest-cost safe candidate seen over
the whole search, not the final search distribution's mean; only when no safe candidate was ever seen
is the best unsafe one returned, with ``feasible=False``.

Noise is drawn on the CPU from a seeded ``torch.Generator`` and then moved to the model's device, so a
plan is reproducible and the same on CPU and GPU (up to the model's own arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import JEPAError
from .interfaces import Cost, Dynamics, PlanResult, clip_norm
from .search import BestSeen, rank_key, seeded_randn


@dataclass
class CEMSettings:
    """Cross-entropy method settings; the defaults are DINO-WM's (Zhou et al. 2024, conf/planner/cem.yaml:
    num_samples 300, opt_steps 30, topk 30, var_scale 1).

    Attributes:
        samples: candidates per iteration (the first one is the current mean itself, as in DINO-WM).
        iterations: refits of the Gaussian.
        elites: best candidates the Gaussian is refitted to.
        init_std: initial standard deviation per (step, action dim), in units of ``cost.max_action_norm``.
        seed: seeds the planner's own generator when none is given.
    """

    samples: int = 300
    iterations: int = 30
    elites: int = 30
    init_std: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        # A refit needs two elites for a standard deviation, and no more elites than samples.
        if not 2 <= self.elites <= self.samples:
            raise JEPAError(f"CEM needs 2 <= elites <= samples, got elites={self.elites}, samples={self.samples}")


@dataclass
class MPPISettings:
    """MPPI settings. The update is Williams et al.'s (2017) information-theoretic one: weights
    exp(-(cost - min) / temperature), weighted mean. The temperature 0.5 and the floor on the noise (0.05)
    are TD-MPC2's (Hansen et al. 2024), but the temperature applies to costs divided by their standard
    deviation over the batch, so it means the same whatever the cost's scale; the sample budget (300 x 30)
    is DINO-WM's CEM budget, so the two planners compare at equal compute.

    Attributes:
        samples: candidates per iteration (the first one is the current mean itself).
        iterations: weighted-mean updates.
        temperature: in units of the standard deviation of the candidates' costs.
        init_std: initial noise standard deviation, in units of ``cost.max_action_norm``.
        std_decay: the noise standard deviation is multiplied by this after every iteration...
        min_std: ...down to this floor (units of ``cost.max_action_norm``).
        seed: seeds the planner's own generator when none is given.
    """

    samples: int = 300
    iterations: int = 30
    temperature: float = 0.5
    init_std: float = 0.5
    std_decay: float = 0.9
    min_std: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature <= 0 or self.samples < 1:
            raise JEPAError(f"MPPI needs temperature > 0 and samples >= 1, got {self.temperature} and {self.samples}")


@dataclass
class GradientSettings:
    """Gradient planner settings (ours, not a published recipe: DINO-WM's GD planner runs 1000 plain SGD
    steps at lr 1; Adam with a few batched restarts gets there in far fewer rollouts).

    Attributes:
        steps: Adam steps.
        lr: Adam learning rate on the free variable u (actions = max_norm * u / sqrt(1 + |u|^2), so near
            the origin a step of lr moves an action by about lr x max_norm).
        restarts: sequences optimised together in one batch; the first starts at ``init`` (or zero), the
            others at random.
        init_std: standard deviation of the random restarts' free variable.
        seed: seeds the planner's own generator when none is given.
    """

    steps: int = 100
    lr: float = 0.1
    restarts: int = 8
    init_std: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.restarts < 1 or self.steps < 0:
            raise JEPAError(f"the gradient planner needs restarts >= 1 and steps >= 0, got {self.restarts} and {self.steps}")


class _SamplingPlanner:
    """What CEM and MPPI share: sample around a mean, score every candidate in one rollout call, update
    the mean (and spread) from the scores; the best safe candidate seen over the search is the answer.

    Args:
        settings: the search's settings.
        generator: a CPU generator for the noise; by default one seeded with ``settings.seed``.
    """

    def __init__(self, settings: Any = None, generator: torch.Generator | None = None) -> None:
        self.settings = settings or self.Settings()
        self.generator = generator or torch.Generator().manual_seed(self.settings.seed)

    def plan(self, model: Dynamics, context: Any, cost: Cost, horizon: int,
             init: torch.Tensor | None = None) -> PlanResult:
        """Plans ``horizon`` actions from ``context``.

        Args:
            model: the dynamics.
            context: the model's starting context.
            cost: what to minimise, with the hard guardrail and the action bound.
            horizon: steps H.
            init: [H, A] the initial mean (warm start); zeros by default.

        Returns:
            the best safe candidate seen, or the best one with ``feasible=False``.
        """
        s, m = self.settings, cost.max_action_norm
        device, dtype = _device_of(model, init), _dtype_of(init)
        mean = _initial(init, horizon, model.action_dim, m, device, dtype)
        std: Any = self._initial_std(mean, m)
        best = BestSeen()
        with torch.no_grad():
            for _ in range(s.iterations):
                noise = seeded_randn((s.samples, *mean.shape), self.generator, device, dtype)
                candidates = clip_norm(mean + std * noise, m)
                candidates[0] = mean  # the mean itself competes, so a good warm start is never lost
                costs, violated = best.evaluate(model, context, cost, candidates)
                mean, std = self._update(candidates, costs, violated, mean, std, m)
            best.evaluate(model, context, cost, mean.unsqueeze(0))
        return best.result()

    def _initial_std(self, mean: torch.Tensor, max_norm: float) -> Any:
        raise NotImplementedError

    def _update(self, candidates: torch.Tensor, costs: torch.Tensor, violated: torch.Tensor, mean: torch.Tensor,
                std: Any, max_norm: float) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError


class CEM(_SamplingPlanner):
    """Cross-entropy method: a Gaussian per (step, action dim) refitted to the elites, samples projected
    onto the action norm ball (DINO-WM's defaults in :class:`CEMSettings`)."""

    Settings = CEMSettings

    def _initial_std(self, mean: torch.Tensor, max_norm: float) -> torch.Tensor:
        return torch.full_like(mean, self.settings.init_std * max_norm)

    def _update(self, candidates, costs, violated, mean, std, max_norm):
        elites = candidates[rank_key(costs, violated).topk(self.settings.elites, largest=False).indices]
        return clip_norm(elites.mean(dim=0), max_norm), elites.std(dim=0)


class MPPI(_SamplingPlanner):
    """Model-predictive path integral: Gaussian noise around the mean, exponentially cost-weighted mean
    (see :class:`MPPISettings` for the defaults' sources)."""

    Settings = MPPISettings

    def _initial_std(self, mean: torch.Tensor, max_norm: float) -> float:
        return self.settings.init_std * max_norm

    def _update(self, candidates, costs, violated, mean, std, max_norm):
        s = self.settings
        weights = _mppi_weights(costs, violated, s.temperature)
        total = weights.sum()
        # A convex combination of points in the ball stays in the ball: no projection needed.
        update = torch.einsum("b,bha->ha", weights, candidates) / total.clamp_min(1e-30)
        return torch.where(total > 0, update, mean), max(std * s.std_decay, s.min_std * max_norm)


class GradientPlanner:
    """Adam on the action sequence, through the differentiable rollout. Actions are
    ``max_norm * u / sqrt(1 + |u|^2)`` of a free variable u, so the norm bound holds at every step and
    the map is smooth everywhere (a tanh of the norm is not differentiable at u = 0).

    The hard guardrail gives no gradient; what moves a restart out of a keep-out region is the cost's
    soft penalty (``GoalEnergy``'s keep-out depth). The guardrail still decides what is returned.

    Args:
        settings: the search's settings.
        generator: a CPU generator for the random restarts; by default one seeded with ``settings.seed``.
    """

    def __init__(self, settings: GradientSettings | None = None,
                 generator: torch.Generator | None = None) -> None:
        self.settings = settings or GradientSettings()
        self.generator = generator or torch.Generator().manual_seed(self.settings.seed)

    def plan(self, model: Dynamics, context: Any, cost: Cost, horizon: int,
             init: torch.Tensor | None = None) -> PlanResult:
        """Plans ``horizon`` actions from ``context``.

        Args:
            model: the dynamics (its rollout must be differentiable in the actions).
            context: the model's starting context.
            cost: what to minimise, with the hard guardrail and the action bound.
            horizon: steps H.
            init: [H, A] the first restart's starting point (warm start); zeros by default.

        Returns:
            the best safe candidate seen, or the best one with ``feasible=False``.
        """
        s, m = self.settings, cost.max_action_norm
        device, dtype = _device_of(model, init), _dtype_of(init)
        start = _initial(init, horizon, model.action_dim, m, device, dtype)
        u = s.init_std * seeded_randn((s.restarts, *start.shape), self.generator, device, dtype)
        u[0] = _unsquash(start, m)
        u.requires_grad_(True)
        optimiser = torch.optim.Adam([u], lr=s.lr)
        best = BestSeen()
        for step in range(s.steps + 1):
            with torch.enable_grad():
                actions = _squash(u, m)
                states = model.rollout(context, actions)
                costs = cost(states, actions)
            with torch.no_grad():
                best.record(actions, states, costs, cost.violations(states, actions))
            if step == s.steps:
                break
            optimiser.zero_grad(set_to_none=True)
            # Restarts are independent: the sum's gradient for each is its own cost's gradient.
            (u.grad,) = torch.autograd.grad(costs.sum(), [u])  # never into the model's own parameters
            optimiser.step()
        return best.result()


def _mppi_weights(costs: torch.Tensor, violated: torch.Tensor, temperature: float) -> torch.Tensor:
    """exp(-(cost - min) / (temperature * std)) over the safe candidates (over all of them when none is
    safe); zero for the others, i.e. an infinite penalty, so an unsafe candidate never pulls the mean."""
    pool = ~violated & torch.isfinite(costs)
    pool = torch.where(pool.any(), pool, torch.isfinite(costs))
    c = torch.where(pool, costs, torch.zeros_like(costs))
    n = pool.sum().clamp_min(1)
    mu = c.sum() / n
    spread = ((c - mu).square() * pool).sum().div(n).sqrt().clamp_min(1e-12)
    lowest = torch.where(pool, c, torch.full_like(c, float("inf"))).min()
    return torch.exp(-(c - lowest) / (temperature * spread)) * pool


def _squash(u: torch.Tensor, max_norm: float) -> torch.Tensor:
    return max_norm * u / (1.0 + u.square().sum(dim=-1, keepdim=True)).sqrt()


def _unsquash(actions: torch.Tensor, max_norm: float) -> torch.Tensor:
    """The inverse of ``_squash`` (actions on the sphere are pulled just inside it)."""
    r = (actions.norm(dim=-1, keepdim=True) / max_norm).clamp(max=0.999)
    return actions / max_norm / (1.0 - r.square()).sqrt()


def _initial(init: torch.Tensor | None, horizon: int, action_dim: int, max_norm: float,
             device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if init is None:
        return torch.zeros(horizon, action_dim, device=device, dtype=dtype)
    if tuple(init.shape) != (horizon, action_dim):
        raise ValueError(f"init must be [horizon, action_dim] = [{horizon}, {action_dim}], got {tuple(init.shape)}")
    return clip_norm(init.detach().to(device=device, dtype=dtype), max_norm)


def _dtype_of(init: torch.Tensor | None) -> torch.dtype:
    return init.dtype if init is not None and init.is_floating_point() else torch.float32


def _device_of(model: Dynamics, init: torch.Tensor | None) -> torch.device:
    """Where candidates live: the warm start's device, else the model's (a ``device`` attribute or its
    first parameter), else the CPU."""
    if init is not None:
        return init.device
    device = getattr(model, "device", None)
    if isinstance(device, torch.device | str):
        return torch.device(device)
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
    return torch.device("cpu")
