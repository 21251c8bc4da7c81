"""A trained world model as files: ``world.safetensors`` (weights) and ``world.json`` (what kind of
model it is, its architecture, the representation it predicts and the checksum of the encoder that
made it). ``load_world_model`` builds any kind in ``KINDS`` from its folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file

from ..atomic import save_safetensors_atomic, write_json_atomic
from ..contract import read_format_json, sha256_file
from ..errors import JEPAError
from .costs import PositionProbe
from .mlp_probe import load_probe_state
from .slow_model import SlowModelConfig, SlowWorldModel
from .world_model import WorldModel, WorldModelConfig

FORMAT = "jepa-world-model"
VERSION = 1
WEIGHTS, CONFIG = "world.safetensors", "world.json"
# kind -> (config class, model class): the fast (one-step) model and the slow (k-step, macro-action)
# one; exports written before kinds were recorded hold a fast model.
KINDS: dict[str, tuple[type, type]] = {"fast": (WorldModelConfig, WorldModel), "slow": (SlowModelConfig, SlowWorldModel)}


def export_world_model(model: WorldModel | SlowWorldModel, out_dir: str | Path, perception: dict[str, Any], encoder_id: str,
                       extra: dict[str, Any] | None = None, kind: str = "fast") -> Path:
    """Writes ``model`` to ``out_dir`` (each file atomically); returns the folder. ``perception`` is
    ``Perception.settings`` (grid, blur): how frames become the representations it predicts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if kind not in KINDS:
        raise ValueError(f"unknown world-model kind {kind!r}: kinds are {', '.join(KINDS)}")
    config = {"format": FORMAT, "version": VERSION, "kind": kind, "model": model.config.to_dict(), "rep_dim": model.rep_dim,
              "action_dim": model.action_dim, **perception, "encoder_sha256": encoder_id, **(extra or {})}
    save_safetensors_atomic(out / WEIGHTS, model.state_dict())
    write_json_atomic(out / CONFIG, config)
    return out


def read_world_config(directory: str | Path) -> dict[str, Any]:
    return read_format_json(Path(directory) / CONFIG, FORMAT,
                            "a world model is loaded from the world/ folder that jepa world writes", "a jepa world model")


def load_world_model(directory: str | Path, encoder_id: str | None = None,
                     kind: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Loads a world model of any kind in ``KINDS`` in eval mode (its kind is ``config["kind"]``); with ``encoder_id`` (the encoder export's sha256, e.g.
    ``Perception.encoder_id``) refuses a world model trained on another encoder's representations, with
    ``kind`` one of another kind."""
    config = read_world_config(directory)
    if encoder_id is not None and config["encoder_sha256"] != encoder_id:
        raise JEPAError(f"the world model in {directory} was trained on encoder {config['encoder_sha256'][:12]}, "
                        f"not on this encoder ({encoder_id[:12]}): give the encoder folder it was trained with")
    found = config.get("kind", "fast")
    if kind is not None and found != kind:
        raise JEPAError(f"{Path(directory) / CONFIG} holds a {found} world model where a {kind} one is needed "
                        f"(jepa world writes fast ones, jepa world slow slow ones)")
    kind = found
    if kind not in KINDS:
        raise JEPAError(f"{Path(directory) / CONFIG} holds a world model of kind {kind!r}, which this version of jepa "
                        f"does not know (it knows {', '.join(KINDS)}): upgrade jepa")
    config_class, model_class = KINDS[kind]
    try:
        model_config = config_class(**config["model"])
    except TypeError as exn:  # a hand-edited kind, or a config from another version
        raise JEPAError(f"{Path(directory) / CONFIG}: its model settings do not make a {kind} world model ({exn})") from None
    model = model_class(model_config, config["rep_dim"], config["action_dim"])
    weights = Path(directory) / WEIGHTS
    if not weights.is_file():
        raise JEPAError(f"{weights} does not exist")
    try:
        model.load_state_dict(load_file(str(weights)))
    except RuntimeError as exn:
        raise JEPAError(f"{weights} does not fit {Path(directory) / CONFIG} ({str(exn).splitlines()[0]})") from None
    return model.eval().requires_grad_(False), config


def world_id(directory: str | Path) -> str:
    """What a slow model records of the fast world model it sits on: its weights' checksum."""
    weights = Path(directory) / WEIGHTS
    if not weights.is_file():
        raise JEPAError(f"{weights} does not exist: give the world/ folder that jepa world wrote")
    return sha256_file(weights)


def load_slow_model(directory: str | Path, encoder_id: str, fast_world: str | Path) -> tuple[Any, dict[str, Any]]:
    """The slow world model in ``directory``, refused in one line unless it was trained on this encoder
    and on the fast world model in ``fast_world``."""
    model, config = load_world_model(directory, encoder_id, kind="slow")
    if config.get("fast_world_sha256") != world_id(fast_world):
        raise JEPAError(f"the slow world model in {directory} sits on another fast world model "
                        f"({config.get('fast_world', '?')}), not on {fast_world}: give the pair jepa world slow trained")
    return model, config


PROBE = "position_probe.safetensors"


def save_position_probe(probe: PositionProbe, error_q99: float, out_dir: str | Path) -> None:
    """Writes the representation -> position probe beside the world model, with its held-out 99%
    error (the default keep-out margin)."""
    save_safetensors_atomic(Path(out_dir) / PROBE, probe.state_dict(), metadata={"error_q99": repr(float(error_q99))})


def load_position_probe(directory: str | Path) -> tuple[PositionProbe | None, float]:
    """The world model's position probe and its 99% error, or (None, 0.0) when it has none
    (episodes without states)."""
    path = Path(directory) / PROBE
    if not path.is_file():
        return None, 0.0
    with safe_open(str(path), "pt") as f:
        error = float((f.metadata() or {}).get("error_q99", "0"))
    return load_probe_state(load_file(str(path))), error
