"""jepa: Joint-Embedding Predictive Architectures pretrained through PyTorch Lightning.

Importing the package has no side effects (no seeding, no environment changes, no CUDA calls).
"""

__version__ = "0.1.0"
