"""The command-line convention, checked on every console script's parser: the installed
name as `prog`, `--version`, and a help text on every option (with its default shown)."""

import argparse

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


def test_help_shows_defaults_but_not_empty_ones():
    parser = argparse.ArgumentParser(prog="x", formatter_class=HelpFormatter)
    parser.add_argument("--size", type=int, default=480, help="input size")
    parser.add_argument("--out", help="where to write")
    parser.add_argument("--fast", action="store_true", help="go fast")
    text = parser.format_help()
    assert "input size (default: 480)" in text
    assert "where to write\n" in text and "go fast\n" in text  # None and False are not shown
