"""What the planner minimises and what it must never do: the goal energy (distance between imagined
states and the goal's representation), a keep-out guardrail in position space and the position probe
that reads positions out of representations.

The guardrail is checked at the imagined states after each action (not along the segments between
them); ``margin`` has to absorb the probe's error, and if the world checks motion continuously, half
an action's length too.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Literal

import torch

from ..errors import JEPAError

PositionFn = Callable[[torch.Tensor], torch.Tensor]


class KeepOut:
    """A rectangle in position space that no imagined step may enter (a hard guardrail).

    Args:
        rect: (x0, y0, x1, y1) with x0 < x1 and y0 < y1, in world units.
        position_of: maps states [..., D] to positions [..., 2]: a probe such as :class:`PositionProbe`
            for a learned model, ``lambda s: s[..., :2]`` when the state is the position.
        margin: world units added on every side of the rectangle, to absorb the probe's error
            (e.g. ``PositionProbe.error_quantile``).
        goal_position: the goal (x, y), checked once here: a goal inside the inflated rectangle can
            never be reached safely, which is the user's problem to fix, not the planner's.

    Raises:
        JEPAError: on an empty rectangle, a negative margin or a goal inside the inflated rectangle.
    """

    def __init__(self, rect: tuple[float, float, float, float], position_of: PositionFn,
                 margin: float = 0.0, goal_position: tuple[float, float] | None = None) -> None:
        x0, y0, x1, y1 = (float(v) for v in rect)
        if not (x0 < x1 and y0 < y1):
            raise JEPAError(f"the keep-out rectangle {rect} is empty: it needs x0 < x1 and y0 < y1")
        if margin < 0:
            raise JEPAError(f"the keep-out margin must be >= 0, got {margin}")
        self.rect = (x0, y0, x1, y1)
        self.margin = float(margin)
        self.position_of = position_of
        if goal_position is not None:
            gx, gy = (float(v) for v in goal_position)
            if self.contains(torch.tensor([gx, gy])).item():
                raise JEPAError(f"the goal ({gx:g}, {gy:g}) lies inside the keep-out region {self.rect} "
                                f"(margin {self.margin:g}): no plan can reach it safely")

    def _inflated(self) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = self.rect
        m = self.margin
        return x0 - m, y0 - m, x1 + m, y1 + m

    def contains(self, positions: torch.Tensor) -> torch.Tensor:
        """Whether positions [..., 2] lie in the inflated rectangle (its border included): bool [...]."""
        x0, y0, x1, y1 = self._inflated()
        x, y = positions[..., 0], positions[..., 1]
        return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)

    def violates(self, states: torch.Tensor) -> torch.Tensor:
        """Whether any imagined step of each candidate enters the inflated rectangle.

        Args:
            states: [B, H, D] imagined states.

        Returns:
            bool [B].
        """
        positions = self.position_of(states)
        # A diverged rollout (NaN or inf positions) proves nothing safe: it counts as a violation.
        unknown = ~torch.isfinite(positions).all(dim=-1)
        return (self.contains(positions) | unknown).flatten(1).any(dim=1)

    def depth(self, states: torch.Tensor) -> torch.Tensor:
        """How deep each candidate's imagined steps go into the inflated rectangle, summed over the
        steps (0 when none enters): [B], for states [B, H, D].

        Its gradient points to the nearest edge, so a gradient planner is pushed out of the region
        while the boolean ``violates`` gives it nothing to follow.
        """
        x0, y0, x1, y1 = self._inflated()
        p = self.position_of(states)
        x, y = p[..., 0], p[..., 1]
        to_edge = torch.stack([x - x0, x1 - x, y - y0, y1 - y], dim=-1).amin(dim=-1)
        return to_edge.clamp_min(0.0).flatten(1).sum(dim=1)


class GoalEnergy:
    """The planning cost (implements ``jepa.planning.interfaces.Cost``): the distance between the
    imagined states and the goal state, plus a soft keep-out penalty; the keep-out is also the hard
    guardrail reported by ``violations``.

    Args:
        goal: [*S] the goal state (representation), shaped like one imagined state.
        max_action_norm: the bound on every action's norm.
        mode: "final" scores the last imagined state only; "sum" the discounted sum over the horizon.
        distance: "l2" (mean squared difference over the state's elements) or "l1" (mean absolute).
        discount: per-step factor for mode "sum" (step t weighs discount**t).
        keep_out: optional guardrail.
        keep_out_weight: weight of the soft penalty (the summed depth inside the keep-out region,
            world units). It is zero for every safe candidate, so it never changes a safe plan's cost.
        readout: optional map applied to imagined and goal states before the distance (e.g. the
            position probe: the distance between the positions two representations encode).

    Raises:
        JEPAError: on an unknown mode or distance, or a non-positive bound.
    """

    def __init__(self, goal: torch.Tensor, max_action_norm: float, mode: Literal["final", "sum"] = "final",
                 distance: Literal["l2", "l1"] = "l2", discount: float = 1.0, keep_out: KeepOut | None = None,
                 keep_out_weight: float = 1.0, readout: PositionFn | None = None) -> None:
        if mode not in ("final", "sum"):
            raise JEPAError(f"unknown goal-energy mode {mode!r}: use 'final' or 'sum'")
        if distance not in ("l2", "l1"):
            raise JEPAError(f"unknown goal-energy distance {distance!r}: use 'l2' or 'l1'")
        if max_action_norm <= 0:
            raise JEPAError(f"max_action_norm must be > 0, got {max_action_norm}")
        self.readout = readout
        self.goal = readout(goal) if readout is not None else goal
        self.max_action_norm = float(max_action_norm)
        self.mode = mode
        self.distance = distance
        self.discount = float(discount)
        self.keep_out = keep_out
        self.keep_out_weight = float(keep_out_weight)

    def toward(self, goal: torch.Tensor) -> GoalEnergy:
        """The same cost (readout, mode, distance, discount and keep-out) toward another goal: a subgoal
        of the two-level planner."""
        new = copy.copy(self)
        new.goal = self.readout(goal) if self.readout is not None else goal
        return new

    def per_step(self, states: torch.Tensor) -> torch.Tensor:
        """The distance to the goal after every imagined step: [B, H, *S] -> [B, H]."""
        if self.readout is not None:
            states = self.readout(states)
        diff = states - self.goal.to(device=states.device, dtype=states.dtype)
        return (diff.square() if self.distance == "l2" else diff.abs()).flatten(2).mean(dim=2)

    def energy(self, states: torch.Tensor) -> torch.Tensor:
        """The goal energy alone.

        Args:
            states: [B, H, *S] imagined states.

        Returns:
            [B].
        """
        per_step = self.per_step(states)
        if self.mode == "final":
            return per_step[:, -1]
        weights = self.discount ** torch.arange(per_step.shape[1], device=states.device, dtype=states.dtype)
        return (per_step * weights).sum(dim=1)

    def __call__(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Goal energy plus the soft keep-out penalty: [B]."""
        return self.energy(states) + self.penalty(states)

    def penalty(self, states: torch.Tensor) -> torch.Tensor | float:
        """The soft keep-out penalty of imagined states [B, H, *S]: [B] (0 without a keep-out region)."""
        if self.keep_out is None or self.keep_out_weight <= 0:
            return 0.0
        return self.keep_out_weight * self.keep_out.depth(states)

    def violations(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Candidates that enter the keep-out region: bool [B] (all False without one)."""
        if self.keep_out is None:
            return torch.zeros(states.shape[0], dtype=torch.bool, device=states.device)
        return self.keep_out.violates(states)


def check_probe_samples(reps: torch.Tensor, positions: torch.Tensor) -> None:
    """Raises ``JEPAError`` unless reps [N, D] and positions [N, P] pair up, with N >= 2."""
    if reps.dim() != 2 or positions.dim() != 2 or reps.shape[0] != positions.shape[0]:
        raise JEPAError(f"the probe needs reps [N, D] and positions [N, P] with the same N, "
                        f"got {tuple(reps.shape)} and {tuple(positions.shape)}")
    if reps.shape[0] < 2:
        raise JEPAError(f"the probe needs at least 2 samples, got {reps.shape[0]}")


class PositionProbe:
    """A ridge-regression probe from representations [..., D] to positions [..., P] (P = 2 here),
    fitted in closed form on standardised inputs so that ``l2`` means the same whatever the
    representation's scale. Its state is four plain tensors (``state_dict``), ready for safetensors.
    """

    def __init__(self) -> None:
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None

    def fit(self, reps: torch.Tensor, positions: torch.Tensor, l2: float = 1e-3) -> PositionProbe:
        """Fits the probe.

        Args:
            reps: [N, D] representations.
            positions: [N, P] the true positions.
            l2: ridge penalty per sample on the standardised inputs (the solve uses X^T X / N + l2 I).

        Returns:
            self.

        Raises:
            JEPAError: on mismatched or too few samples.
        """
        check_probe_samples(reps, positions)
        # float64 for the normal equations: X^T X squares the condition number.
        x, y = reps.detach().double(), positions.detach().double()
        n = x.shape[0]
        mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-8)
        xs = (x - mean) / std
        y_mean = y.mean(dim=0)
        gram = xs.T @ xs / n + l2 * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        weight = torch.linalg.solve(gram, xs.T @ (y - y_mean) / n)  # [D, P]
        dtype = reps.dtype if reps.is_floating_point() else torch.float32
        self.mean, self.std = mean.to(dtype), std.to(dtype)
        self.weight, self.bias = weight.to(dtype).contiguous(), y_mean.to(dtype)
        return self

    def _require_fitted(self) -> None:
        if self.weight is None:
            raise JEPAError("the position probe is not fitted: call fit() or load_state_dict() first")

    def __call__(self, reps: torch.Tensor) -> torch.Tensor:
        """Positions [..., P] of representations [..., D] (differentiable in ``reps``)."""
        self._require_fitted()
        p = {k: v.to(device=reps.device, dtype=reps.dtype) for k, v in self.state_dict().items()}
        return ((reps - p["mean"]) / p["std"]) @ p["weight"] + p["bias"]

    def error_quantile(self, reps: torch.Tensor, positions: torch.Tensor, q: float = 0.99) -> float:
        """The q-quantile of the Euclidean position error on held-out data: a margin for ``KeepOut``.

        Args:
            reps: [N, D] representations.
            positions: [N, P] the true positions.
            q: the quantile in [0, 1].

        Returns:
            the error in world units.
        """
        with torch.no_grad():
            err = (self(reps) - positions.to(reps.dtype)).norm(dim=-1)
        return float(torch.quantile(err.double(), q))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The probe's tensors: mean, std [D], weight [D, P], bias [P]."""
        self._require_fitted()
        return {"mean": self.mean, "std": self.std, "weight": self.weight, "bias": self.bias}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> PositionProbe:
        """Restores the tensors written by ``state_dict``.

        Args:
            state: mapping with keys mean, std, weight, bias.

        Returns:
            self.

        Raises:
            JEPAError: when a key is missing.
        """
        missing = {"mean", "std", "weight", "bias"} - set(state)
        if missing:
            raise JEPAError(f"the position probe's state lacks {sorted(missing)}")
        if "w1" in state:
            raise JEPAError("this position probe has hidden layers: load it with "
                            "jepa.planning.mlp_probe.load_probe_state")
        self.mean, self.std = state["mean"], state["std"]
        self.weight, self.bias = state["weight"], state["bias"]
        return self
