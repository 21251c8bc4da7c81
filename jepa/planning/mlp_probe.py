"""A position probe with two hidden layers: what the keep-out guardrail reads when the encoder's
pooled features hold position non-linearly.

Why not the ridge probe: the keep-out margin is the probe's held-out 99% error plus half a step. On
Four-Rooms the 2 x 2 pooled grid puts each room in one cell, so a room's position lives in how one
cell's features change, which a linear map reads badly near the walls: on the same frames and split
the ridge probe's 99% error was 0.087 and this probe's 0.018. A 0.087 error (a margin of 0.121) closes
the 0.08 passages the keep-out tasks leave open, so planners fail tasks they could solve safely.

Its state is plain tensors (the ridge probe's four plus the hidden layers'), ready for safetensors;
``load_probe_state`` picks the kind from the keys, so world models exported with a ridge probe load
as before.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import JEPAError
from .costs import PositionProbe, check_probe_samples

HIDDEN_KEYS = ("w1", "b1", "w2", "b2")
LR = 3e-3


class MLPPositionProbe(PositionProbe):
    """Representations [..., D] -> positions [..., P] through two GELU layers of ``hidden`` units, on
    inputs standardised as the ridge probe's. ``weight`` and ``bias`` are the output layer.

    Args:
        hidden: units per hidden layer.
    """

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.hidden = hidden
        self.w1: torch.Tensor | None = None
        self.b1: torch.Tensor | None = None
        self.w2: torch.Tensor | None = None
        self.b2: torch.Tensor | None = None

    def fit(self, reps: torch.Tensor, positions: torch.Tensor, l2: float = 1e-4,  # type: ignore[override]
            steps: int | None = None, seed: int = 0) -> MLPPositionProbe:
        """Fits the probe by AdamW on the mean Euclidean error (what ``error_quantile`` measures),
        seeded, so the same data gives the same probe. It trains on the CPU (a few seconds for
        60,000 frames) and keeps its tensors there; calls move them to the input's device.

        Args:
            reps: [N, D] representations.
            positions: [N, P] the true positions.
            l2: AdamW weight decay.
            steps: optimiser steps of min(512, N) samples; default about 20 passes over the data, 1,000 to 2,000.
            seed: seeds the initialisation and the batches.

        Returns:
            self.

        Raises:
            JEPAError: on mismatched or too few samples.
        """
        check_probe_samples(reps, positions)
        n, d = reps.shape
        batch = min(512, n)
        steps = steps if steps is not None else min(2000, max(1000, round(20 * n / batch)))
        g = torch.Generator().manual_seed(seed)
        # Callers may hold inference-mode tensors (a Lightning run's end): train on plain copies.
        with torch.inference_mode(False), torch.enable_grad():
            x, y = reps.detach().float().cpu().clone(), positions.detach().float().cpu().clone()
            mean, spread = x.mean(dim=0), x.std(dim=0)
            std = spread.clamp_min(1e-8)
            xs = (x - mean) / std
            sizes = [d, self.hidden, self.hidden, y.shape[1]]
            params = []
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
                bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default range, drawn from our generator
                params += [((torch.rand(fan_out, fan_in, generator=g) * 2 - 1) * bound).requires_grad_(),
                           ((torch.rand(fan_out, generator=g) * 2 - 1) * bound).requires_grad_()]
            opt = torch.optim.AdamW(params, lr=LR, weight_decay=l2)
            for step in range(steps):
                for group in opt.param_groups:  # cosine decay to zero
                    group["lr"] = LR * 0.5 * (1 + math.cos(math.pi * step / steps))
                idx = torch.randint(0, n, (batch,), generator=g)
                loss = (_forward(xs[idx], *params) - y[idx]).norm(dim=-1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        dtype = reps.dtype if reps.is_floating_point() else torch.float32
        w1, b1, w2, b2, w3, b3 = (p.detach().to(dtype).contiguous() for p in params)
        # A feature constant over the training frames never moved the loss, so its random weights were
        # never trained: zero them, or a frame where it does move would read anywhere (ridge: weight 0).
        w1[:, spread <= 1e-8] = 0
        self.mean, self.std = mean.to(dtype), std.to(dtype)
        self.w1, self.b1, self.w2, self.b2, self.weight, self.bias = w1, b1, w2, b2, w3, b3
        return self

    def __call__(self, reps: torch.Tensor) -> torch.Tensor:
        """Positions [..., P] of representations [..., D] (differentiable in ``reps``)."""
        self._require_fitted()
        p = {k: v.to(device=reps.device, dtype=reps.dtype) for k, v in self.state_dict().items()}
        xs = (reps - p["mean"]) / p["std"]
        return _forward(xs, p["w1"], p["b1"], p["w2"], p["b2"], p["weight"], p["bias"])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The probe's tensors: mean, std [D], w1 [H, D], b1 [H], w2 [H, H], b2 [H], weight [P, H], bias [P]."""
        self._require_fitted()
        return {"mean": self.mean, "std": self.std, "w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2,
                "weight": self.weight, "bias": self.bias}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> MLPPositionProbe:
        """Restores the tensors written by ``state_dict``.

        Raises:
            JEPAError: when a key is missing.
        """
        missing = {"mean", "std", "weight", "bias", *HIDDEN_KEYS} - set(state)
        if missing:
            raise JEPAError(f"the position probe's state lacks {sorted(missing)}")
        self.mean, self.std, self.weight, self.bias = state["mean"], state["std"], state["weight"], state["bias"]
        self.w1, self.b1, self.w2, self.b2 = (state[k] for k in HIDDEN_KEYS)
        self.hidden = int(self.w1.shape[0])
        return self


def _forward(xs: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
             w3: torch.Tensor, b3: torch.Tensor) -> torch.Tensor:
    return F.linear(F.gelu(F.linear(F.gelu(F.linear(xs, w1, b1)), w2, b2)), w3, b3)


def load_probe_state(state: dict[str, torch.Tensor]) -> PositionProbe:
    """A probe of the kind the tensors describe: hidden layers present -> MLP, else ridge."""
    probe = MLPPositionProbe() if set(HIDDEN_KEYS) & set(state) else PositionProbe()
    return probe.load_state_dict(state)
