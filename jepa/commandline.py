"""What every ``jepa`` command shares on its command line: one help style (every flag with its
default, every command with an example), both spellings of a flag, ``--out`` beside the positional
outputs, renamed flags refused with their new name, and the closest match for an unknown option.

Imports nothing heavy, so that ``jepa <command> --help`` answers at once (no torch).
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable, Sequence

from .errors import JEPAError


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors (a missing argument, a bad choice or type) end in one
    line through JEPAError, as every other mistake a user can make."""

    def error(self, message: str):  # type: ignore[override]
        raise JEPAError(f"{self.prog}: {message} (see {self.prog} --help)")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and examples' line breaks and appends each option's default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default is None or default is False or default is argparse.SUPPRESS
                or not action.option_strings or isinstance(action, argparse._HelpAction)):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else default
        return f"{text} (default: {shown})"


def _epilog(examples: Sequence[str]) -> str | None:
    if not examples:
        return None
    return ("example:\n" if len(examples) == 1 else "examples:\n") + "\n".join(f"  {e}" for e in examples)


def new_parser(prog: str, description: str, examples: Sequence[str] = ()) -> argparse.ArgumentParser:
    """An ``argparse`` parser in the house style: description, options with defaults, examples."""
    return Parser(prog=prog, description=description, epilog=_epilog(examples), formatter_class=HelpFormatter,
                  allow_abbrev=False)


def add_subcommands(parser: argparse.ArgumentParser, title: str = "commands",
                    dest: str = "command") -> argparse._SubParsersAction:
    """Subcommands listed by name and summary in the parent's ``--help``."""
    return parser.add_subparsers(dest=dest, title=title, metavar=dest.upper(), required=True,
                                 help=f"one of the {title} below (jepa ... {dest.upper()} --help for its own)")


def add_subparser(subs: argparse._SubParsersAction, name: str, summary: str, description: str,
                  examples: Sequence[str] = ()) -> argparse.ArgumentParser:
    return subs.add_parser(name, help=summary, description=description, epilog=_epilog(examples),
                           formatter_class=HelpFormatter, allow_abbrev=False)


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every ``--flag`` of a parser and of its subcommands."""
    found: set[str] = set()
    for action in parser._actions:
        found.update(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= option_strings(sub)
    return found


def respell(argv: Sequence[str], known: Iterable[str], to: str = "-") -> list[str]:
    """``argv`` with each ``--flag`` that is not known spelled the other way (``_`` <-> ``-``) when
    that spelling is known: flags are written with hyphens and config keys with underscores, and a
    user may type either. Everything after a bare ``--`` is left as it is."""
    known = set(known)
    out: list[str] = []
    rest = False
    for arg in argv:
        if rest or arg == "--" or not arg.startswith("--"):
            rest = rest or arg == "--"
            out.append(arg)
            continue
        key, eq, value = arg.partition("=")
        other = "--" + key[2:].replace("_" if to == "-" else "-", to)
        out.append(other + eq + value if key not in known and (other in known or not known) else arg)
    return out


def closest_key(key: str, keys: Iterable[str]) -> str | None:
    """The known dotted key nearest to ``key``: the first segment that no known key continues with
    is matched among the segments that do (``trainer.max_step`` -> ``trainer.max_steps``, ``modle.x``
    -> ``model``)."""
    keys = list(keys)
    parts = key.split(".")
    for depth in range(len(parts), 0, -1):
        prefix = ".".join(parts[: depth - 1])
        continuing = [k for k in keys if prefix == "" or k.startswith(prefix + ".")]
        if not continuing:
            continue
        start = len(prefix) + 1 if prefix else 0
        segments = {k[start:].split(".")[0] for k in continuing}
        if parts[depth - 1] in segments:
            continue  # this segment is known: the mistake is further on
        near = closest(parts[depth - 1], segments)
        return f"{prefix}.{near}" if near and prefix else near
    return None


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate nearest to ``word`` (a mistyped key or flag), or None when nothing is near."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    near = closest(word, candidates)
    return f" (did you mean {near}?)" if near else ""


def refuse_renamed(prog: str, argv: Sequence[str], renamed: dict[str, str]) -> None:
    """A flag that was renamed ends in one line naming the new one."""
    for arg in argv:
        if arg == "--":
            return
        old = arg.partition("=")[0]
        if old in renamed:
            raise JEPAError(f"{prog} {old} is now {renamed[old]}")


def _chosen(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)command whose options the arguments ended in."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None) in action.choices:
            return _chosen(action.choices[getattr(args, action.dest)], args)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str],
          renamed: dict[str, str] | None = None) -> argparse.Namespace:
    """Parses ``argv`` in the house style: either spelling of a flag, renamed flags refused, and an
    unknown option named in one line with the closest option of the command it was given to."""
    refuse_renamed(parser.prog, argv, renamed or {})
    args, unknown = parser.parse_known_args(respell(argv, option_strings(parser)))
    if unknown:
        command = _chosen(parser, args)
        flags = [u for u in unknown if u.startswith("-")]
        if flags:
            flag = flags[0].partition("=")[0]
            own = {s for a in command._actions for s in a.option_strings if s.startswith("--")}
            raise JEPAError(f"{command.prog}: unknown option {flag}{did_you_mean(flag, own)} "
                            f"(see {command.prog} --help)")
        raise JEPAError(f"{command.prog}: unexpected argument {unknown[0]!r} (see {command.prog} --help)")
    return args


def add_output(parser: argparse.ArgumentParser, metavar: str, help: str) -> None:
    """The output of a command: a positional ``metavar`` (optional) or ``--out``, the same thing."""
    parser.add_argument("positional_out", nargs="?", metavar=metavar, default=None, help=f"{help} (or --out)")
    parser.add_argument("--out", default=None, metavar=metavar, help=f"{help} (the same as the positional {metavar})")


def output_of(args: argparse.Namespace, prog: str, metavar: str, default: str | None = None) -> str:
    """The output a command was given as ``metavar`` or ``--out`` (one of them), else ``default``."""
    positional, flag = args.positional_out, args.out
    if positional is not None and flag is not None and positional != flag:
        raise JEPAError(f"{prog}: {metavar} {positional!r} and --out {flag!r} disagree: give one of them")
    out = positional if positional is not None else flag
    if out is None:
        if default is None:
            raise JEPAError(f"{prog}: give the output as {metavar} or --out (see {prog} --help)")
        return default
    return out
