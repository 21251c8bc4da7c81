"""jepa: Joint-Embedding Predictive Architectures pretrained through PyTorch Lightning.

Importing the package has no side effects (no seeding, no environment changes, no CUDA calls).
``jepa.load_encoder(dir)`` returns a frozen encoder exported by ``jepa export``;
``jepa.load_predictor(dir)`` the whole frozen JEPA (encoders and predictor) of ``jepa export --with-predictor``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["load_encoder", "load_predictor"]

if TYPE_CHECKING:
    from .export import load_encoder, load_predictor


def __getattr__(name: str) -> Any:
    # Lazy, so that `import jepa` (and the `jepa` command's start-up) does not import torch.
    if name in __all__:
        from . import export

        return getattr(export, name)
    raise AttributeError(f"module 'jepa' has no attribute {name!r}")
