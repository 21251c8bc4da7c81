"""The documentation stays true: every config and notebook is listed, every relative link resolves,
and every ``jepa ...`` command quoted in README.md and docs/ parses (in-process, nothing trained)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from jepa.errors import JEPAError

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), REPO / "launch" / "README.md",
                REPO / "notebooks" / "README.md"])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _text(page: Path) -> str:
    return page.read_text()


def test_every_config_is_in_the_configuration_page_and_every_quoted_config_exists():
    table = _text(REPO / "docs" / "configuration.md")
    configs = sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml"))
    missing = [c for c in configs if f"configs/{c.removeprefix('configs/')}" not in table]
    assert not missing, f"configs missing from docs/configuration.md: {missing}"
    for page in PAGES:
        for quoted in re.findall(r"\bconfigs/[\w/]+\.yaml", _text(page)):
            assert (REPO / quoted).is_file(), f"{page.name} names {quoted}, which does not exist"


def test_every_notebook_and_docs_page_is_linked_from_the_readme():
    readme = _text(REPO / "README.md")
    linked = {link.split("#")[0] for link in LINK.findall(readme)}
    for path in [*(REPO / "notebooks").glob("*.ipynb"), *(REPO / "docs").glob("*.md")]:
        assert str(path.relative_to(REPO)) in linked, f"README.md does not link {path.relative_to(REPO)}"


def test_readme_is_a_front_door():
    lines = _text(REPO / "README.md").splitlines()
    head = "\n".join(lines[:60])
    assert len(lines) <= 210, len(lines)
    for needed in ("pip install", "jepa pretrain --config configs/quickstart.yaml",
                   "configs/video/quickstart_video.yaml", "jepa plan pipeline", "docs/"):
        assert needed in head, f"the first 60 lines of README.md lack {needed!r}"
    assert 'pip install -e ".[dev]" && ruff check . && pytest -q -n auto' in lines  # what .ci/run runs


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    for link in LINK.findall(_text(page)):
        if re.match(r"[a-z]+:", link) or link.startswith("#"):
            continue
        target = (page.parent / link.split("#")[0]).resolve()
        assert target.exists(), f"{page.relative_to(REPO)} links {link}, which does not exist"


def test_user_docs_tell_no_development_history():
    for page in PAGES:
        for n, line in enumerate(_text(page).splitlines(), 1):
            assert not re.search(r"\bissue \d+|\bsessions?\b|\bthis stop\b|\b20\d\d-\d\d-\d\d\b", line, re.I), \
                f"{page.relative_to(REPO)}:{n}: {line}"


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block, fences paired in order."""
    blocks, language, body = [], None, []
    for line in text.splitlines():
        fence = re.match(r"^\s*```(\w*)\s*$", line)
        if fence and language is None:
            language, body = fence.group(1), []
        elif fence:
            blocks.append((language, "\n".join(body)))
            language = None
        elif language is not None:
            body.append(line)
    return blocks


def quoted_commands(text: str) -> list[str]:
    """``jepa ...`` commands in shell blocks (continuations joined, comments dropped) and in inline
    code; usage synopses (``[...]``, ``{a,b}``, ``a|b``, ``...``) are not commands."""
    found: list[str] = []
    for language, block in fenced_blocks(text):
        if language not in ("", "bash", "sh", "shell", "console"):
            continue
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|;|\s\|\s", line.split(" #")[0]):
                if part.strip().startswith("jepa "):
                    found.append(part.strip())
    prose = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("```"))
    for _, block in fenced_blocks(text):
        prose = prose.replace(block, "")
    for inline in re.findall(r"`(jepa [^`]+)`", prose):
        found.append(inline.strip())
    synopsis = re.compile(r"\[|\]|\.\.\.|(?<![\w'\"/-])\{[\w,-]+\}|\w\|\w|<|>")
    return [c for c in found if not synopsis.search(c)]


class _Parsers:
    """Each command's parser, built once; LightningCLI parsers are captured before they parse."""

    def __init__(self) -> None:
        self.lightning: dict[str, object] = {}

    def lightning_parser(self, command: str):
        if command not in self.lightning:
            from jepa.planning.slow_cli import SlowWorldCLI
            from jepa.planning.world_cli import WorldCLI
            from jepa.planning.world_encoder_cli import WorldEncoderCLI
            from jepa.train.lightning_cli import PretrainCLI

            holder: list[object] = []
            base = {"pretrain": PretrainCLI, "world": WorldCLI, "world slow": SlowWorldCLI,
                    "world encoder": WorldEncoderCLI}[command]

            class Capture(base):
                def parse_arguments(self, parser, args):
                    holder.append(parser)
                    raise SystemExit(0)

            with pytest.raises(SystemExit):
                Capture([])
            self.lightning[command] = holder[0]
        return self.lightning[command]

    @staticmethod
    def fill(words: list[str]) -> list[str]:
        """Placeholders in capitals made concrete: numbers for N, G, K; a shipped config for FILE."""
        world = {"slow": "planning/slow_world", "encoder": "planning/pusht_world_encoder"}.get(
            words[1] if len(words) > 1 else "", "planning/two_rooms_world")
        config = {"world": world}.get(words[0], "quickstart")
        return ["1" if w in ("N", "G", "K", "F") else config if w == "FILE" else w for w in words]

    def check(self, words: list[str]) -> None:
        words = self.fill(words)
        from jepa.cli import COMMANDS, bench_parser, export_parser, shards_parser
        from jepa.commandline import parse
        from jepa.eval.probe_args import probe_parser
        from jepa.launch import launch_parser
        from jepa.planning.commands import (
            RENAMED,
            WORLD_SUBCOMMANDS,
            pipeline_parser,
            plan_parser,
            world_tools_parser,
        )
        from jepa.shipped import configs_parser
        from jepa.train.commands import config_argv
        from jepa.train.run_report import report_parser

        if words in (["--version"], ["-V"], ["--help"]):
            return
        command, rest = words[0], words[1:]
        assert command in COMMANDS, command
        if "--help" in rest or "-h" in rest:  # the help of a command (or subcommand) that exists
            from jepa.cli import main

            try:
                assert main(words) == 0
            except SystemExit as exn:
                assert exn.code in (0, None), words
            return
        if command == "world" and rest[:1] in (["slow"], ["encoder"]):
            command, rest = f"world {rest[0]}", rest[1:]
        if command in ("pretrain", "world", "world slow", "world encoder") and not (rest and rest[0] in WORLD_SUBCOMMANDS):
            args = config_argv(rest)
            if "--config" in args and not Path(args[args.index("--config") + 1]).is_file():
                pytest.fail(f"config {args[args.index('--config') + 1]} does not exist")
            try:
                self.lightning_parser(command).parse_args(args)
            except SystemExit as exn:  # --print_config prints and ends
                assert exn.code in (0, None)
            return
        if command == "bench":
            known, overrides = bench_parser().parse_known_args(rest)
            self.lightning_parser("pretrain").parse_args(config_argv(["--config", known.config, *overrides]))
            return
        builders = {"export": export_parser, "shards": shards_parser, "report": report_parser, "probe": probe_parser,
                    "configs": configs_parser, "launch": launch_parser, "world": world_tools_parser}
        if command == "plan":
            parse(pipeline_parser(), rest[1:], RENAMED) if rest[:1] == ["pipeline"] else parse(plan_parser(), rest, RENAMED)
        else:
            parse(builders[command](), rest)


@pytest.fixture(scope="module")
def parsers() -> _Parsers:
    return _Parsers()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_quoted_command_parses(page, parsers, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # the docs' paths are relative to the repository root
    commands = quoted_commands(_text(page))
    for command in commands:
        words = shlex.split(command)[1:]
        if len(words) <= 2 and not any(w.startswith("-") for w in words):
            continue  # the name of a command ("jepa probe knn"), not an invocation
        try:
            parsers.check(words)
        except (JEPAError, Exception) as exn:  # noqa: B014 (a parse error of any kind fails with the command)
            pytest.fail(f"{page.relative_to(REPO)}: `{command}` does not parse: {str(exn).splitlines()[0]}")
        except SystemExit as exn:
            pytest.fail(f"{page.relative_to(REPO)}: `{command}` does not parse (exit {exn.code}): "
                        f"{capsys.readouterr().err.strip()[-300:]}")
    capsys.readouterr()
