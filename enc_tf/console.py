"""One frame for every command-line entry point: logging, errors, exit status.

A command is a function `run(args) -> int | None` behind an argparse parser.
`run_cli` sets up logging once (one format), runs it, and turns every expected
failure into one line on stderr and an exit status:

- `EncTfError` (config, data, model file, divergence): its `exit_code` (2 for
  an input error found before work starts, 1 for a failure during the work);
- `OSError` (a read-only directory, a full disk, a missing file): 1;
- `KeyboardInterrupt`: 130.

Anything else is a bug in enc_tf and keeps its traceback.
"""

import argparse
import gc
import logging
import os
import sys
from typing import Callable, Sequence

from enc_tf.errors import ConfigError, EncTfError
from enc_tf.files import remove_stale_temporaries
from enc_tf.version import __version__

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_verbose_flag(parser: argparse.ArgumentParser, default=False) -> None:
    """`--verbose`: debug logging and TensorFlow's own C++ messages. A sub-command's
    parser takes `default=argparse.SUPPRESS`, so that it keeps a `--verbose` given
    before the sub-command."""
    parser.add_argument(
        "--verbose",
        action=argparse.BooleanOptionalAction,
        default=default,
        help="debug logging, including TensorFlow's own messages",
    )


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The module docstring as written, and every option's default after its help (unless it
    has none to show: None, False, an empty list, or a help that names it already)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or "%(default)" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or default == []
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The argument parser of a command: its installed name, its module docstring as help,
    `--verbose` and `--version`."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=HelpFormatter
    )
    add_verbose_flag(parser)
    parser.add_argument("--version", action="version", version=f"{prog} (enc_tf) {__version__}")
    return parser


def check_out_file(path: str, suffixes: Sequence[str], flag: str = "--out") -> str:
    """Refuses, before any work, an output file that cannot be written there (another
    suffix, an existing directory, a missing parent that cannot be made), and removes the
    temporaries that killed writes left next to it. Returns `path`."""
    if not path.endswith(tuple(suffixes)):
        raise ConfigError(f"{flag} must end in {' or '.join(suffixes)}, got {path!r}.")
    if os.path.isdir(path):
        raise ConfigError(f"{flag} {path} is an existing directory; name the file to write.")
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise ConfigError(f"{flag} {path}: {parent} is a file, not a directory.")
    remove_stale_temporaries(parent)
    return path


def error_line(err: BaseException) -> str:
    """The one line shown for an expected failure."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.strerror}: {err.filename}"
    return " ".join(str(err).split()) or type(err).__name__


def run_cli(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
) -> int:
    """Parses `argv` (default: `sys.argv[1:]`), runs `run(args)` and returns the exit status."""
    if not any(a.dest == "verbose" for a in parser._actions):
        add_verbose_flag(parser)
    for action in parser._actions:  # also after a sub-command: `enc-data check ... --verbose`
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if not any(a.dest == "verbose" for a in sub._actions):
                    add_verbose_flag(sub, default=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    verbose = bool(getattr(args, "verbose", False))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT)
    if not verbose:
        # TensorFlow's Python warnings (e.g. "Function `_serve_default` contains input
        # name(s) resource" on every SavedModel export) are for TF developers, not users.
        for noisy in ("absl", "tensorflow", "tf2onnx"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        for noisy in ("h5py", "PIL", "matplotlib"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    code = None
    try:
        status = run(args)
    except EncTfError as err:
        print(f"error: {error_line(err)}", file=sys.stderr)
        code = err.exit_code
    except OSError as err:
        print(f"error: {error_line(err)}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    if code is not None:
        # The failed work's frames (a model, tf.data iterators) sit in reference cycles;
        # collect them now, so that tf.data stops its decoding threads while the
        # interpreter is whole: a thread still running Python at exit can hang it.
        gc.collect()
        return code
    return 0 if status is None else int(status)


class DownloadProgress:
    """`progress(done, total)` for downloads: a bar redrawn in place on stderr when it is a
    terminal; elsewhere (logs, CI) silent, since the download is logged when it starts."""

    def __init__(self, stream=None, width=30):
        self.stream = stream or sys.stderr
        self.width = width
        self.active = self.stream.isatty()

    def __call__(self, done: int, total: int | None) -> None:
        if not self.active:
            return
        if total:
            filled = int(self.width * done / total)
            bar = "#" * filled + "." * (self.width - filled)
            line = f"\r[{bar}] {done / 1e6:7.1f} / {total / 1e6:.1f} MB"
        else:
            line = f"\r{done / 1e6:7.1f} MB"
        self.stream.write(line)
        if total and done >= total:
            self.stream.write("\n")
        self.stream.flush()
