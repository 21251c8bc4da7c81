"""Files that ship with the package: the recipes of ``configs/`` and the job templates of ``launch/``.

In an installed wheel they live inside the package (``jepa/configs``, ``jepa/templates``:
pyproject.toml maps the repository's folders there); in a checkout (or an editable install) they
are the repository's ``configs/`` and ``launch/``. Either way ``--config quickstart`` (or
``configs/quickstart.yaml``, whether or not such a file is in the working directory) finds them.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from .commandline import add_subcommands, add_subparser, did_you_mean, new_parser, parse
from .errors import JEPAError

_PACKAGE = Path(__file__).resolve().parent
# name inside the package -> folder of the repository checkout
_CHECKOUT = {"configs": "configs", "templates": "launch"}


def shipped_dir(name: str) -> Path:
    """The folder of shipped ``configs`` or ``templates``."""
    for folder in (_PACKAGE / name, _PACKAGE.parent / _CHECKOUT[name]):
        if folder.is_dir():
            return folder
    raise JEPAError(f"the package's {name} are missing (looked in {_PACKAGE / name} and "
                    f"{_PACKAGE.parent / _CHECKOUT[name]}): reinstall jepa")


def config_names() -> list[str]:
    """Every shipped config by name: its path under ``configs/`` without ``.yaml``."""
    root = shipped_dir("configs")
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def shipped_config(name: str) -> Path | None:
    """The shipped config called ``name`` (``quickstart``, ``image/cifar10_cpu_15min``, or the same
    written as a repository path, ``configs/quickstart.yaml``), or None."""
    stem = name.removeprefix("./").removeprefix("configs/").removesuffix(".yaml")
    path = shipped_dir("configs") / f"{stem}.yaml"
    return path if path.is_file() else None


def resolve_config(value: str) -> str:
    """A ``--config`` value as a file: the path itself when it exists, else the shipped config of
    that name; a name that is neither ends in one line with the closest shipped one."""
    if Path(value).is_file():
        return value
    found = shipped_config(value)
    if found is not None:
        return str(found)
    stem = value.removeprefix("configs/").removesuffix(".yaml")
    raise JEPAError(f"config {value} does not exist: not a file, nor a shipped config{did_you_mean(stem, config_names())} "
                    "(jepa configs list shows them)")


def config_title(path: Path) -> str:
    """A config's one-line summary: its first comment line."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def template(name: str) -> Path:
    """A shipped job template (``slurm.sbatch``, ``torchrun.sh``)."""
    return shipped_dir("templates") / name


def configs_parser() -> argparse.ArgumentParser:
    parser = new_parser("jepa configs", "The configs that ship with jepa: list them, or copy one to edit.",
                        ["jepa configs list", "jepa configs copy quickstart --out my_quickstart.yaml"])
    subs = add_subcommands(parser)
    add_subparser(subs, "list", "every shipped config with its one-line summary",
                  "Lists every shipped config by name (what --config accepts) with its summary.", ["jepa configs list"])
    copy = add_subparser(subs, "copy", "write an editable copy of a shipped config",
                         "Writes a copy of a shipped config to edit; pass the copy to --config.",
                         ["jepa configs copy image/cifar10_cpu_15min --out configs/cifar.yaml"])
    copy.add_argument("name", help="the config's name, as jepa configs list shows it (e.g. quickstart)")
    copy.add_argument("--out", default=None, metavar="FILE", help="where to write it (default: configs/NAME.yaml here)")
    copy.add_argument("--overwrite", action="store_true", help="replace a file already at --out")
    return parser


def configs_main(argv: list[str]) -> int:
    """``jepa configs list|copy``: the shipped recipes, and an editable copy of one."""
    args = parse(configs_parser(), argv)
    if args.command == "list":
        names = config_names()
        width = max(map(len, names))
        for name in names:
            print(f"{name:<{width}}  {config_title(shipped_dir('configs') / f'{name}.yaml')}")
        return 0
    source = shipped_config(args.name)
    if source is None:
        raise JEPAError(f"no shipped config {args.name}{did_you_mean(args.name, config_names())} "
                        "(jepa configs list shows them)")
    stem = args.name.removeprefix("configs/").removesuffix(".yaml")
    out = Path(args.out or Path("configs") / f"{stem}.yaml")
    if out.exists() and out.resolve() == source.resolve():
        print(f"{out} is the shipped config itself (a checkout): edit it there, or give --out")
        return 0
    if out.exists() and not args.overwrite:
        raise JEPAError(f"{out} already exists: pass --overwrite to replace it, or another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out)
    print(f"wrote {out}, a copy of the shipped {stem}: pass it to --config")
    return 0
