"""Several slow world models searched as one: the high level trusts an imagined macro-step only where
the models agree.

Why: one slow model's imagination at a closed door is one draw. Trained on the same episodes, slow
models that differ only in their seed took the hierarchical arm to 76-88% of the Four-Rooms tasks,
every miss a detour or a keep-out task that true subgoals reach. Moves near a closed door are rare in
the data, which is where independently trained models disagree (deep ensembles, Lakshminarayanan et
al. 2017; PETS and MOPO use the members' disagreement the same way). A child of the graph search is
the members' mean, and it is dropped when a member's prediction lies farther from that mean than
``disagreement`` times the merge radius (``GraphSearchSettings.disagreement``). Measured
(docs/planning.md): two members reached 94% in two pairings and 78% in a third; the first member's
bank, which chunks the search may take, decided most of that difference.

The members must speak of the same macro-actions: each has its own macro encoder, so a code of one
means nothing to another. A bank row is the same action chunk for every member (member 0's chunks,
stored in its export, encoded by each member), and the ensemble's code of a chunk is the
concatenation of the members' codes.
"""

from __future__ import annotations

import torch

from ..errors import JEPAError
from .slow_model import SlowModelConfig, SlowWorldModel


class SlowEnsemble:
    """``successors(reps [N, D], codes [M, K * C]) -> (mean [N, M, D], spread [N, M])`` over K slow
    models of the same k; ``bank`` [B, K * C] holds each member's code of member 0's bank chunks side
    by side. ``spread`` is the largest distance of a member's prediction from the mean: the graph
    search drops a child whose spread exceeds ``GraphSearchSettings.disagreement`` times its merge
    radius.

    Args:
        members: the slow models (trained on the same fast model and encoder; ``load_slow_model``
            checks each).
    """

    def __init__(self, members: list[SlowWorldModel]) -> None:
        if not members:
            raise JEPAError("a slow ensemble needs at least one slow model")
        steps = {m.config.steps for m in members}
        if len(steps) > 1:
            raise JEPAError(f"the slow models jump different numbers of steps ({sorted(steps)}): give models of one k")
        chunks = members[0].bank_actions
        if len(members) > 1 and not bool(torch.isfinite(chunks).all()):
            raise JEPAError("the first slow model's export holds no bank chunks (written by an older jepa): "
                            "retrain it with jepa world slow to use it in an ensemble")
        self.members = members
        self.member_code_dim = members[0].code_dim
        self.code_dim = self.member_code_dim * len(members)
        with torch.no_grad():
            self.bank = torch.cat([members[0].bank, *(m.encode(chunks) for m in members[1:])], dim=1)

    @property
    def config(self) -> SlowModelConfig:
        return self.members[0].config

    def split(self, codes: torch.Tensor) -> list[torch.Tensor]:
        """Each member's part of ensemble codes [..., K * C]."""
        return list(codes.split(self.member_code_dim, dim=-1))

    def __call__(self, reps: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """The members' mean open-loop imagination: [B, D], [B, M, K * C] -> [B, M, D]."""
        return torch.stack([m(reps, c) for m, c in zip(self.members, self.split(codes))]).mean(dim=0)

    def successors(self, reps: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The members' mean one macro-step from each of N representations under each of M codes, and
        how far the farthest member's prediction lies from it (zero with one member)."""
        each = torch.stack([m.successors(reps, c) for m, c in zip(self.members, self.split(codes))])
        mean = each.mean(dim=0)
        return mean, (each - mean).norm(dim=-1).amax(dim=0)
