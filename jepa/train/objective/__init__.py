"""Anti-collapse objectives: what keeps a JEPA's representations from collapsing.

``model.objective`` names one (``ema``, ``sigreg``, ``vicreg``, ``lejepa``) with its settings. Each lives in
one file of this package, registered by name; a new objective is a new file here.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import OBJECTIVES, JEPAOutput, Objective, ObjectiveSpec, build_objective

# Every module of this package registers its objective on import.
for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["OBJECTIVES", "JEPAOutput", "Objective", "ObjectiveSpec", "build_objective"]
