"""Turning jsonargparse's multi-line parse errors into one line that names the key and the fix."""

from __future__ import annotations

import re

_TYPE_NAMES = {"<class 'int'>": "an integer", "<class 'float'>": "a number", "<class 'str'>": "a string",
               "<class 'bool'>": "true/false", "<class 'NoneType'>": "null"}
_SEE_KEYS = "(see every key with: jepa pretrain --config FILE --print_config)"


def _type_name(text: str) -> str:
    text = text.strip().rstrip(".")
    literal = re.match(r"typing\.Literal\[(.*)\]", text)
    if literal:
        return "one of " + ", ".join(v.strip(" '\"") for v in literal.group(1).split(","))
    return _TYPE_NAMES.get(text, text)


def config_error_line(message: str) -> str:
    """One line for a configuration error message of jsonargparse / LightningCLI."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "invalid configuration"
    first = lines[0]
    if first.startswith("unrecognized arguments:"):
        words = first.split(":", 1)[1].split()
        flags = [k for k in words if k.startswith("--")]
        if not flags:
            return f"unexpected arguments: {' '.join(words)} (options take the form --key value)"
        return f"unknown config key(s): {' '.join(flags)} {_SEE_KEYS}"
    option = re.match(r"Option '([^']+)' is not accepted", first)
    group = re.match(r"Group '([^']+)' does not accept option '([^']+)'", first)
    if option or group:
        key = option.group(1) if option else f"{group.group(1)}.{group.group(2)}"
        return f"unknown config key {key} {_SEE_KEYS}"
    key = re.match(r'Parser key "([^"]+)":\s*(.*)', first)
    if not key:
        return "invalid configuration: " + " ".join(lines)[:400]
    name, rest = key.group(1), [key.group(2), *lines[1:]]
    joined = " ".join(rest)
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
