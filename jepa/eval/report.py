"""Probe outputs: the printed table, ``probe.json`` and a confusion-matrix PNG."""

from __future__ import annotations

from pathlib import Path

import torch


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    idx = target.long() * num_classes + pred.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def format_table(rows: list[dict]) -> str:
    """Rows of {backbone, probe, setting, val_acc, ...} as an aligned text table."""
    header = ("backbone", "probe", "setting", "val acc %")
    lines = [(r["backbone"], r["probe"], r["setting"], f"{100 * r['val_acc']:.2f}") for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def save_confusion_png(matrix: torch.Tensor, classes: list[str] | None, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    n = matrix.shape[0]
    norm = matrix.float() / matrix.sum(1, keepdim=True).clamp_min(1)
    size = max(4.0, 0.4 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    labels = classes if classes and len(classes) == n else [str(i) for i in range(n)]
    if n <= 40:
        ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
