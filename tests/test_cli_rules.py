"""The command-line convention, checked on every console script's parser: the installed
name as `prog`, `--version`, a help text on every option (with its default shown), booleans
as `--flag/--no-flag`, sizes as `--size` or `--<role>-size`, and an `--out` that says whether
it names a file or a directory."""

import argparse
import re

import pytest

from enc_tf.console import HelpFormatter
from tests.test_docs import command_parser, console_scripts, subcommands

SCRIPTS = console_scripts()
SKIPPED = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)


def parsers(name):
    parser = command_parser(SCRIPTS[name])
    return [(name, parser)] + [(f"{name} {k}", p) for k, p in subcommands(parser).items()]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_command_names_itself_has_a_version_and_helps_every_option(name, capsys):
    parser = command_parser(SCRIPTS[name])
    assert parser.prog == name
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith(f"{name} (enc_tf) ")
    missing = [
        (label, action.option_strings or action.dest)
        for label, p in parsers(name)
        for action in p._actions
        if not isinstance(action, SKIPPED) and not action.help
    ]
    assert not missing, f"options without help: {missing}"


def _options(name):
    return [
        (label, action)
        for label, p in parsers(name)
        for action in p._actions
        if action.option_strings and not isinstance(action, SKIPPED)
    ]


def convention_problems(label, action):
    """What `action` (an option of the command `label`) does against the convention."""
    problems = []
    flags = action.option_strings
    if action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction):
        problems.append(f"{label} {flags}: a boolean must be --flag/--no-flag")
    if action.choices is not None and {str(c).lower() for c in action.choices} <= {
        "true",
        "false",
        "yes",
        "no",
        "1",
        "0",
    }:
        problems.append(f"{label} {flags}: a boolean written as a value")
    if getattr(action.type, "__name__", "") in ("_bool", "bool", "str2bool"):
        problems.append(f"{label} {flags}: a boolean written as a value")
    for flag in flags:
        if "size" in flag and not re.fullmatch(r"--((base|crop|max)-)?size", flag):
            problems.append(
                f"{label} {flag}: a size is --size, --base-size, --crop-size or --max-size"
            )
    if "--out" in flags and not re.search(r"\b(file|directory)\b", action.help or ""):
        problems.append(f"{label} --out: its help must say whether it is a file or a directory")
    return problems


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_booleans_sizes_and_outputs_are_spelled_one_way(name):
    problems = [p for label, action in _options(name) for p in convention_problems(label, action)]
    assert not problems


def test_the_convention_check_can_fail():
    parser = argparse.ArgumentParser()
    bad = [
        parser.add_argument("--fast", action="store_true", help="x"),
        parser.add_argument("--lateral", choices=("true", "false"), help="x"),
        parser.add_argument("--image-size", type=int, help="x"),
        parser.add_argument("--out", help="where the results go"),
    ]
    good = [
        parser.add_argument("--flip", action=argparse.BooleanOptionalAction, help="x"),
        parser.add_argument("--crop-size", type=int, help="x"),
        parser.add_argument("--out2", help="the file to write"),
    ]
    assert all(convention_problems("x", a) for a in bad)
    assert not any(convention_problems("x", a) for a in good)


def test_help_shows_defaults_but_not_empty_ones():
    parser = argparse.ArgumentParser(prog="x", formatter_class=HelpFormatter)
    parser.add_argument("--size", type=int, default=480, help="input size")
    parser.add_argument("--out", help="where to write")
    parser.add_argument("--fast", action="store_true", help="go fast")
    text = parser.format_help()
    assert "input size (default: 480)" in text
    assert "where to write\n" in text and "go fast\n" in text  # None and False are not shown
