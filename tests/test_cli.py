"""The command line as a user meets it: help for every command (at once, without torch), one
spelling rule, --out everywhere, renamed flags and unknown keys answered in one line."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jepa import __version__
from jepa.cli import COMMANDS, main

from conftest import write_tiny_config

# Every command and subcommand whose help is an argparse parser.
ARGPARSE_COMMANDS = [
    ["export"], ["probe"], ["probe", "linear"], ["probe", "attentive"], ["probe", "knn"], ["report"], ["shards"],
    ["world", "episodes"], ["world", "frames"], ["world", "perception"], ["plan"], ["plan", "pipeline"],
    ["configs"], ["configs", "list"], ["configs", "copy"], ["launch"], ["launch", "slurm"], ["launch", "torchrun"],
    ["bench"],
]


def _help(monkeypatch, capsys, words: list[str]) -> tuple[str, argparse.ArgumentParser | None]:
    """The help text of ``jepa *words --help`` and the parser that printed it (None: a static help)."""
    seen: list[argparse.ArgumentParser] = []
    original = argparse.ArgumentParser.print_help

    def record(self, file=None):
        seen.append(self)
        original(self, file)

    monkeypatch.setattr(argparse.ArgumentParser, "print_help", record)
    try:
        code = main([*words, "--help"])
    except SystemExit as exn:
        code = exn.code
    assert code == 0, words
    return capsys.readouterr().out, (seen[-1] if seen else None)


@pytest.mark.parametrize("words", ARGPARSE_COMMANDS, ids=" ".join)
def test_every_flag_has_a_sentence_and_every_command_an_example(words, monkeypatch, capsys):
    text, parser = _help(monkeypatch, capsys, words)
    assert parser is not None and parser.prog == " ".join(["jepa", *words])
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and len(action.help.split()) >= 2, (words, action.dest)
        if action.option_strings:
            # No underscore spellings for flags; a default is shown (or said in words).
            assert all("_" not in s for s in action.option_strings), action.option_strings
            shown = parser.formatter_class(parser.prog)._get_help_string(action)
            if action.default not in (None, False, argparse.SUPPRESS):
                assert "default" in shown.lower(), (words, action.dest, shown)
    assert re.search(r"^examples?:\n  jepa ", text, re.M), text[-500:]


def test_each_parent_lists_its_children(monkeypatch, capsys):
    top, _ = _help(monkeypatch, capsys, [])
    assert all(re.search(rf"^  {name} ", top, re.M) for name in COMMANDS), top
    children = {"probe": ("linear", "attentive", "knn"), "world": ("episodes", "frames", "perception"),
                "plan": ("pipeline",), "configs": ("list", "copy"), "launch": ("slurm", "torchrun"),
                "shards": ("images", "videos", "episodes")}
    for parent, names in children.items():
        text, _ = _help(monkeypatch, capsys, [parent])
        assert all(name in text for name in names), (parent, text)


def test_probe_kinds_show_only_their_own_flags(monkeypatch, capsys):
    linear, _ = _help(monkeypatch, capsys, ["probe", "linear"])
    knn, _ = _help(monkeypatch, capsys, ["probe", "knn"])
    attentive, _ = _help(monkeypatch, capsys, ["probe", "attentive"])
    assert "--k " not in linear and "--temperature" not in linear and "--lrs" in linear
    assert "--lrs" not in knn and "--epochs" not in knn and "--temperature" in knn
    assert "--k " not in attentive and "--lrs" not in attentive and "--patience" in attentive and "--epochs" not in attentive


def test_the_attentive_probe_names_what_replaced_epochs(capsys):
    from jepa.cli import main

    assert main(["probe", "attentive", "--encoder", "x", "--train", "y", "--val", "z", "--epochs", "20"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--epochs" in err and "--max-steps" in err and len(err.splitlines()) == 1


def test_version_and_help_answer_without_importing_torch():
    script = """
import sys
from jepa.cli import main
for words in (["--version"], ["pretrain", "--help"], ["world", "--help"], ["probe", "linear", "--help"],
              ["plan", "--help"], ["plan", "pipeline", "--help"], ["report", "--help"], ["bench", "--help"],
              ["export", "--help"], ["configs", "list"]):
    try:
        main(words)
    except SystemExit:
        pass
    assert "torch" not in sys.modules, words
print("no torch")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith(f"jepa {__version__}\n"), result.stderr[-2000:]
    assert result.stdout.strip().endswith("no torch")


def _real_keys(command: str) -> list[str]:
    from jepa.planning.world_cli import WorldCLI
    from jepa.train.lightning_cli import PretrainCLI
    from jepa.train.run_cli import config_keys

    found: list[str] = []

    class Capture(PretrainCLI if command == "pretrain" else WorldCLI):
        def parse_arguments(self, parser, args):
            found.extend(config_keys(parser))
            raise SystemExit(0)

    with pytest.raises(SystemExit):
        Capture([])
    return found


def test_the_static_helps_name_only_real_keys():
    """The --help of pretrain and world is written by hand (so it needs no torch): every key it
    names must exist in the LightningCLI parser."""
    from jepa.planning.commands import WORLD_HELP
    from jepa.train.commands import PRETRAIN_HELP

    for command, text in (("pretrain", PRETRAIN_HELP), ("world", WORLD_HELP)):
        keys = set(_real_keys(command))
        prefixes = {k.rsplit(".", 1)[0] for k in keys if "." in k}
        for flag in re.findall(r"--([a-z_]+(?:\.[a-z_]+)*)(?![-\w])", text):
            if flag not in ("config", "out", "help", "print_config", "KEY", "GROUP"):
                assert flag in keys, (command, flag)
        # "  group.*   a, b (why), c": every name listed under a group is a key (or a group) of it
        for group, names in re.findall(r"^  ([a-z_.]+)\.\*\s+(.+(?:\n {24}.+)*)", text, re.M):
            for item in re.sub(r"\([^)]*\)", "", names, flags=re.S).split(","):
                key = f"{group}.{item.split()[0]}"
                assert key in keys or key in prefixes, (command, key)


def test_unknown_keys_and_renamed_flags_end_in_one_line_with_the_right_name(tmp_path, capsys):
    cfg = write_tiny_config(tmp_path, steps=1)
    cases = [
        (["pretrain", "--config", str(cfg), "--trainer.max_step", "3"], "did you mean trainer.max_steps?"),
        (["pretrain", "--config", str(cfg), "--modle.encoder.size", "tiny"], "did you mean model?"),
        (["pretrain", "--config", "quickstrt"], "did you mean quickstart?"),
        (["plan", "--budget", "3"], "jepa plan --budget is now --steps"),
        (["plan", "pipeline", "--budget", "3"], "--budget is now --steps"),
        (["plan", "--stepz", "3"], "unknown option --stepz (did you mean --steps?)"),
        (["probe", "linear", "--encoder", "e", "--train", "t", "--val", "v", "--k", "3"],
         "jepa probe linear: unknown option --k"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["export", "a.ckpt", "out1", "--out", "out2"], "disagree"),
        (["shards", "images", str(tmp_path)], "give the output as OUT_PATTERN or --out"),
        (["report"], "jepa report: the following arguments are required: RUN_DIR"),
        (["plan", "--steps", "x"], "jepa plan: argument --steps: invalid int value: 'x'"),
        (["probe", "linear", "--encoder", "e"], "jepa probe linear: the following arguments are required"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (argv, err)


def test_both_spellings_and_out_reach_the_same_settings():
    from jepa.commandline import parse
    from jepa.eval.probe_args import probe_parser
    from jepa.train.commands import config_argv

    args = parse(probe_parser(), ["knn", "--encoder", "e", "--train", "t", "--val", "v", "--max_train", "5",
                                  "--cache-dir", "c"])
    assert args.max_train == 5 and args.cache_dir == "c"
    assert config_argv(["--data.batch-size", "4", "--out", "runs/x", "--ckpt-path=auto", "--config", "quickstart"]) == [
        "--data.batch_size", "4", "--run_dir", "runs/x", "--ckpt_path=auto", "--config",
        str(Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml")]
    # A logger that needs a folder and was given none writes into the run folder.
    assert config_argv(["--trainer.logger", "TensorBoardLogger"])[2:] == ["--trainer.logger.save_dir", "<run_dir>"]


def test_plan_arms_match_the_evaluation():
    from jepa.planning.commands import plan_parser
    from jepa.planning.evaluate import ARMS, DEFAULT_ARMS

    arms = next(a for a in plan_parser()._actions if a.dest == "arms")
    assert tuple(arms.choices) == tuple(ARMS) and arms.default is None  # the default depends on --hierarchy
    for hierarchy, default in DEFAULT_ARMS.items():
        assert " ".join(default) in arms.help, hierarchy


def test_world_help_with_a_config_lists_its_keys_without_optimizer_groups_or_type_warnings(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["world", "--config", "planning/two_rooms_world", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--model.rollout_steps" in text and "--report" in text
    assert "--optimizer" not in text and "--lr_scheduler" not in text and "lacks type" not in text


def test_configs_list_and_copy(tmp_path, capsys, monkeypatch):
    from jepa.shipped import config_names

    assert main(["configs", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == config_names() and "quickstart" in config_names()
    # every config opens with a one-line summary of what it is for
    assert all(len(line.split(None, 1)) == 2 and not line.split(None, 1)[1].startswith("Command") for line in listed)
    monkeypatch.chdir(tmp_path)
    assert main(["configs", "copy", "video/quickstart_video"]) == 0
    copied = tmp_path / "configs" / "video" / "quickstart_video.yaml"
    assert copied.read_text() == (Path(__file__).resolve().parents[1] / "configs/video/quickstart_video.yaml").read_text()
    assert main(["configs", "copy", "video/quickstart_video"]) == 2  # it is there: --overwrite replaces it
    assert "pass --overwrite" in capsys.readouterr().err


def test_export_writes_next_to_the_run_by_default(tmp_path, capsys):
    cfg = write_tiny_config(tmp_path, steps=1)
    assert main(["pretrain", "--config", str(cfg), "--probe.enabled", "false"]) == 0
    assert main(["export", str(tmp_path / "run" / "checkpoints" / "last.ckpt")]) == 0
    assert json.loads((tmp_path / "run" / "export" / "config.json").read_text())["step"] == 1
    assert main(["export", str(tmp_path / "run" / "checkpoints" / "last.ckpt"), "--out", str(tmp_path / "e2")]) == 0
    assert (tmp_path / "e2" / "model.safetensors").is_file()


def test_launch_reads_overrides_after_the_separator_in_the_same_spelling(tmp_path, capsys):
    run = tmp_path / "elsewhere"
    assert main(["launch", "torchrun", "--config", "quickstart", "--nproc-per-node", "1", "--dry-run", "--",
                 "--out", str(run), "--data.batch-size", "8"]) == 0
    script = capsys.readouterr().out
    assert f"--run_dir {run}" in script and "--out" not in script and "--data.batch_size 8" in script
    assert f"jepa-{run.name}" in script  # the rendezvous is named after the folder the job writes


def test_plan_stopped_by_a_signal_ends_in_one_line_and_writes_no_plan(tmp_path, capsys, monkeypatch):
    import os
    import signal

    import jepa.planning.plan_cli as plan_cli

    real = plan_cli.evaluate

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # the stop handler only records it; the first episode's end raises
        return real(*args, **kwargs)

    monkeypatch.setattr(plan_cli, "evaluate", signalled)
    out = tmp_path / "plan"
    code = main(["plan", "--arms", "random", "--episodes", "3", "--steps", "2", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 128 + signal.SIGTERM
    assert err[-1] == "stopped by SIGTERM: no plan.json was written; the same command plays the episodes again"
    assert not any("Traceback" in line for line in err) and not (out / "plan.json").exists()
