"""Turning jsonargparse's multi-line parse errors into one line that names the key and the fix."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..commandline import closest_key

# Logger classes and the extra (or package) that provides what they need.
LOGGER_EXTRAS = {"TensorBoardLogger": "pip install 'jepa[tensorboard]'", "WandbLogger": "pip install 'jepa[wandb]'",
                 "MLFlowLogger": "pip install mlflow", "CometLogger": "pip install comet-ml",
                 "NeptuneLogger": "pip install neptune"}
_MISSING_PACKAGE = re.compile(r"not available|No module named|not installed|Requirement .* not met|pip install")

_TYPE_NAMES = {"<class 'int'>": "an integer", "<class 'float'>": "a number", "<class 'str'>": "a string",
               "<class 'bool'>": "true/false", "<class 'NoneType'>": "null"}


def _type_name(text: str) -> str:
    text = text.strip().rstrip(".")
    literal = re.match(r"typing\.Literal\[(.*)\]", text)
    if literal:
        return "one of " + ", ".join(v.strip(" '\"") for v in literal.group(1).split(","))
    return _TYPE_NAMES.get(text, text)


def _unknown(keys: Sequence[str], known: Sequence[str], command: str) -> str:
    """One line for unknown keys, with the known key nearest to the first one."""
    bare = [k.removeprefix("--").partition("=")[0] for k in keys]
    near = closest_key(bare[0], known) if known else None
    hint = f" (did you mean {near}?)" if near else f" (every key: {command} --config FILE --print_config)"
    return f"unknown config key{'s' if len(bare) > 1 else ''} {' '.join(bare)}{hint}"


def config_error_line(message: str, command: str = "jepa pretrain", known: Sequence[str] = ()) -> str:
    """One line for a configuration error message of jsonargparse / LightningCLI.

    Args:
        message: the parser's message.
        command: the command that parsed it, for the hint.
        known: every key the parser accepts: an unknown key is answered with the closest one.
    """
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "invalid configuration"
    missing_class = missing_package_line(message)
    if missing_class:
        return missing_class
    first = lines[0]
    if first.startswith("unrecognized arguments:"):
        words = first.split(":", 1)[1].split()
        flags = [k for k in words if k.startswith("--")]
        if not flags:
            return f"unexpected arguments: {' '.join(words)} (options take the form --key value)"
        return _unknown(flags, known, command)
    option = re.match(r"Option '([^']+)' is not accepted", first)
    group = re.match(r"Group '([^']+)' does not accept option '([^']+)'", first)
    if option or group:
        key = option.group(1) if option else f"{group.group(1)}.{group.group(2)}"
        return _unknown([key], known, command)
    key = re.match(r'Parser key "([^"]+)":\s*(.*)', first)
    if not key:
        return "invalid configuration: " + " ".join(lines)[:400]
    name, rest = key.group(1), [key.group(2), *lines[1:]]
    joined = " ".join(rest)
    nested = re.search(r"NestedArg\(key='([^']+)'", joined)
    if nested:  # a field that the setting's dataclass does not have
        return _unknown([f"{name}.{nested.group(1)}"], known, command)
    missing = re.search(r"File does not exist: '?([^']+)'?", joined)
    if missing:
        return f"{name} file {missing.group(1)} does not exist"
    expected, value = [], None
    for line in rest:
        m = re.match(r"(?:- )?Expected a (.+?)(?:\. Got value: (.*))?$", line)
        if m:
            expected.append(_type_name(m.group(1)))
            value = m.group(2) if m.group(2) is not None else value
        m = re.match(r"Given value: (.*)$", line)
        if m:
            value = m.group(1)
    if expected:
        kinds = " or ".join(dict.fromkeys(e for e in expected if e != "null")) or "null"
        got = f", got {value!r}" if value is not None else ""
        return f"config key {name}: expected {kinds}{got}"
    return f"config key {name}: {joined}"[:400]


def missing_package_line(message: str) -> str | None:
    """One line for a class (a logger) that cannot be built because its package is not installed."""
    if not _MISSING_PACKAGE.search(message):
        return None
    for name, extra in LOGGER_EXTRAS.items():
        if name in message:
            return f"trainer.logger {name} needs a package that is not installed: {extra}"
    found = re.search(r"class_path '([^']+)'", message)
    return f"{found.group(1)} needs a package that is not installed" if found else None
