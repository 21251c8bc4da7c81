"""Files written whole or not at all.

A reader (a resumed run, another rank, ``jepa probe`` reading a feature cache, a user's script)
never sees half a file: the content goes to a hidden temporary file beside the target, which then
replaces it in one ``os.replace``. A write that fails (full disk, Ctrl-C) removes its temporary file
and leaves the previous file as it was. ``jepa export`` writes several files as one change and keeps
its own order (every temporary complete before any replaces its target), with names from
``temporary_beside``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def temporary_beside(path: str | Path) -> Path:
    """A hidden, per-process temporary name in ``path``'s folder (same filesystem, so the final
    ``os.replace`` is atomic; per process, so that two writers never share one)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def replace_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Calls ``write(tmp)``, then moves ``tmp`` onto ``path``; on any failure ``tmp`` is removed."""
    tmp = temporary_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    replace_atomic(path, lambda tmp: tmp.write_text(text))


def write_json_atomic(path: str | Path, data: Mapping[str, Any]) -> None:
    """``data`` as indented JSON (values JSON does not know written as their ``str``)."""
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def save_safetensors_atomic(path: str | Path, tensors: Mapping[str, torch.Tensor],
                            metadata: dict[str, str] | None = None) -> None:
    """``tensors`` (made contiguous, as safetensors requires) with ``metadata`` in the header."""
    from safetensors.torch import save_file  # here: the module itself stays importable without torch

    flat = {k: v.contiguous() for k, v in tensors.items()}
    replace_atomic(path, lambda tmp: save_file(flat, str(tmp), metadata=metadata))
