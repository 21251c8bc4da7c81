"""A breadth-first graph search over imagined macro-states: the high level of the two-level planner.

From the current representation, every node is expanded with the same few macro-action codes of
the slow model's bank (a farthest-point subset, so the codes spread over the bank's directions and
lengths); an imagined child closer than ``merge`` times the median one-macro-step move to a node
already in the graph is the same place and is dropped, so the graph grows outward instead of
re-imagining where it has been; children that enter the keep-out region are dropped too. After
``depth`` levels the node with the lowest goal energy is the target, and the route to it (its chain
of parents) the plan.

Why a search and not only CEM over code sequences: round a closed door the route first moves away
from the goal, for several macro-steps. A CEM over a few macro-steps scores whole sequences by where
they end, and few of its random sequences reach the far door, so it settles in the corner nearest
the goal (measured on the analytic maze, true models: 0-3 of 4 detours). A search that keeps every
distinct place it reaches finds the detour whenever the slow model does (SoRB, Eysenbach et al.
2019, searches a graph of dataset states; here the graph's nodes are imagined, so no dataset is
kept at planning time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import JEPAError
from .costs import GoalEnergy

# (reps [N, D], codes [M, C]) -> [N, M, D], or with an ensemble (``SlowEnsemble``) the members' mean
# and their spread [N, M].
SuccessorFn = Callable[[torch.Tensor, torch.Tensor], "torch.Tensor | tuple[torch.Tensor, torch.Tensor]"]


@dataclass
class GraphSearchSettings:
    """Settings of the graph search.

    Attributes:
        codes: bank codes tried from every node (a farthest-point subset of the bank).
        depth: macro-steps searched from the current representation.
        frontier: most new nodes kept per level (the most novel first).
        merge: imagined states closer than this factor of the median one-macro-step move (measured
            at the first level of each search) are one node.
        disagreement: with an ensemble of slow models, a child whose members' predictions lie farther
            than this factor of the merge radius from their mean is not trusted, and dropped.
    """

    codes: int = 64
    depth: int = 5
    # 64, not 128: on the Four-Rooms tasks (fr4's models, 2 planning workers) a frontier of 64 planned
    # a step in 634 ms against 1,538 ms for 128 (flat CEM: 1,387) and reached 88% against 84%.
    frontier: int = 64
    merge: float = 0.5
    disagreement: float = 1.0

    def __post_init__(self) -> None:
        if self.codes < 1 or self.depth < 1 or self.frontier < 1 or not self.merge > 0 or not self.disagreement > 0:
            raise JEPAError(f"the graph search needs codes, depth, frontier >= 1 and merge, disagreement > 0, got "
                            f"codes={self.codes}, depth={self.depth}, frontier={self.frontier}, merge={self.merge}, "
                            f"disagreement={self.disagreement}")


@dataclass
class Route:
    """The search's answer: imagined states [M, D] and codes [M, C] from the current representation to
    the node of lowest goal energy (M = 0 when no node is closer to the goal than the start), and the
    number of nodes the graph held."""

    states: torch.Tensor
    codes: torch.Tensor
    nodes: int


def farthest_codes(bank: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` rows of ``bank`` [N, C] chosen by farthest-point sampling from the row of largest norm
    (deterministic; the whole bank when it has no more rows)."""
    if bank.shape[0] <= count:
        return bank
    chosen = [int(bank.norm(dim=1).argmax())]
    nearest = torch.cdist(bank, bank[chosen[0]][None])[:, 0]
    for _ in range(count - 1):
        i = int(nearest.argmax())
        chosen.append(i)
        nearest = torch.minimum(nearest, torch.cdist(bank, bank[i][None])[:, 0])
    return bank[chosen]


class GraphSearch:
    """``plan(successors, start, cost, bank) -> Route``; ``successors(reps [N, D], codes [M, C])``
    imagines one macro-step from every node under every code (``SlowWorldModel.successors``),
    ``cost`` is the goal energy (its ``per_step`` ranks nodes, its ``violations`` prunes
    them)."""

    def __init__(self, settings: GraphSearchSettings | None = None) -> None:
        self.settings = settings or GraphSearchSettings()
        self._subset: tuple[torch.Tensor, torch.Tensor] | None = None  # (bank, its subset), computed once per bank

    def codes_of(self, bank: torch.Tensor) -> torch.Tensor:
        if self._subset is None or self._subset[0] is not bank:
            self._subset = (bank, farthest_codes(bank, self.settings.codes))
        return self._subset[1]

    def plan(self, successors: SuccessorFn, start: torch.Tensor, cost: GoalEnergy, bank: torch.Tensor) -> Route:
        s = self.settings
        codes = self.codes_of(bank)
        n_codes = codes.shape[0]
        nodes = start.reshape(1, -1).clone()
        parent, code_index = [-1], [-1]
        frontier = torch.zeros(1, dtype=torch.long)
        radius = None
        with torch.no_grad():
            for _ in range(s.depth):
                # Row f * n_codes + c: frontier node f under code c.
                found = successors(nodes[frontier].reshape(-1, *start.shape), codes)
                children, spread = found if isinstance(found, tuple) else (found, None)
                children = children.reshape(len(frontier) * n_codes, -1)
                if radius is None:
                    radius = s.merge * float((children - nodes[0]).norm(dim=1).median())
                    if radius <= 0:
                        break
                allowed = ~cost.violations(children.reshape(-1, 1, *start.shape), children[:, None]).to(torch.bool)
                if spread is not None:  # an ensemble: a move its members disagree on is not trusted
                    allowed &= spread.reshape(-1) <= s.disagreement * radius
                novelty = torch.cdist(children, nodes).min(dim=1).values.masked_fill(~allowed, -1.0)
                kept = _spread(children, novelty, radius, s.frontier)
                if not kept:
                    break
                index = torch.tensor(kept)
                new = torch.arange(len(nodes), len(nodes) + len(kept))
                parent += (frontier[index // n_codes]).tolist()
                code_index += (index % n_codes).tolist()
                nodes = torch.cat([nodes, children[index]])
                frontier = new
            energy = cost.per_step(nodes.reshape(len(nodes), 1, *start.shape))[:, 0]
        return self._route(int(energy.argmin()), nodes, parent, code_index, codes, start)

    @staticmethod
    def _route(best: int, nodes: torch.Tensor, parent: list[int], code_index: list[int], codes: torch.Tensor,
               start: torch.Tensor) -> Route:
        chain = []
        while best > 0:
            chain.append(best)
            best = parent[best]
        chain.reverse()
        states = nodes[chain].reshape(len(chain), *start.shape)
        return Route(states=states, codes=codes[[code_index[i] for i in chain]], nodes=len(nodes))


def _spread(points: torch.Tensor, novelty: torch.Tensor, radius: float, limit: int) -> list[int]:
    """Indices of at most ``limit`` points, each farther than ``radius`` from the graph (``novelty``: the
    distance to its nearest node) and from each other, the most novel first."""
    # Only points still farther than ``radius`` can be kept, and a novelty only falls: each round
    # measures distances to those alone (the same picks as over all points, a fraction of the work).
    alive = torch.nonzero(novelty > radius).flatten()
    points, novelty = points[alive], novelty[alive]
    kept: list[int] = []
    while len(kept) < limit and len(alive):
        i = int(novelty.argmax())
        kept.append(int(alive[i]))
        novelty = torch.minimum(novelty, (points - points[i]).norm(dim=1))
        still = novelty > radius
        alive, points, novelty = alive[still], points[still], novelty[still]
    return kept
