"""Weighted k-nearest-neighbour classification on frozen features (DINO's protocol)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_predict(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    query_x: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
) -> torch.Tensor:
    """Class scores [Q, C] for ``query_x``: each of the ``k`` most cosine-similar training samples
    votes for its class with weight ``exp(similarity / temperature)``."""
    train = F.normalize(train_x.float(), dim=1)
    k = min(k, train.shape[0])
    scores = []
    for q in F.normalize(query_x.float(), dim=1).split(chunk):
        sim, idx = (q @ train.T).topk(k, dim=1)
        votes = torch.zeros(q.shape[0], num_classes, device=q.device)
        votes.scatter_add_(1, train_y[idx], (sim / temperature).exp())
        scores.append(votes)
    return torch.cat(scores)
