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
import time
from typing import Callable, Sequence

from enc_tf.contracts.precision import PRECISIONS
from enc_tf.errors import ConfigError, EncTfError
from enc_tf.files import remove_stale_temporaries
from enc_tf.machine import BF16_CPU_FLAGS
from enc_tf.version import __version__

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

logger = logging.getLogger(__name__)


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


def add_recipe_options(parser, default=None):
    """`--config RECIPE` and `--set KEY=VALUE` of every command that runs a recipe."""
    parser.add_argument(
        "--config",
        default=default,
        help="a YAML recipe file, or a shipped recipe's name (e.g. ade20k_encnet_resnet50s; "
        "enc_tf/configs/)" + ("" if default else "; the defaults when omitted"),
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=10 (repeatable)",
    )


def add_precision_option(parser, default="float32"):
    """`--precision auto|float32|bfloat16` of every command that runs a model; returns the
    argparse action."""
    return parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=default,
        help="compute in float32 or bfloat16 (float32 weights); auto: bfloat16 on a GPU or a "
        f"CPU with {' or '.join(BF16_CPU_FLAGS)}, float32 otherwise (default {default})",
    )


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
    if verbose:  # also TensorFlow's native messages (`enc_tf.quiet` reads this)
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    else:
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


class ProgressBar:
    """`progress(done, total)` for work over many items: on a terminal, a bar redrawn in place on
    stderr with the time left; elsewhere (logs, CI), an INFO log line at every
    tenth of the work, so a log shows progress without a line per item.

    Args:
        what: what is counted, e.g. "images"; it ends the line (`120/500 images`).
        label: what is being done, e.g. "checking"; it starts the line.
        stream: where the bar is drawn (default stderr); the bar is drawn only when it is a
            terminal.
        width: the bar's width in characters.
        interval: the least number of seconds between two redraws of the bar.
    """

    def __init__(self, what="images", label="", stream=None, width=30, interval=0.2):
        self.what = what
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.interval = interval
        self.active = self.stream.isatty()
        self.start = time.monotonic()
        self.last_draw = -float("inf")
        self.last_tenth = 0

    def _amount(self, count):
        return str(count)

    def _line(self, done, total, fill="#", empty="."):
        head = f"{self.label} " if self.label else ""
        if not total:
            return f"{head}{self._amount(done)} {self.what}"
        filled = int(self.width * min(done, total) / total)
        bar = fill * filled + empty * (self.width - filled)
        elapsed = time.monotonic() - self.start
        left = ""
        if 0 < done < total and elapsed > 0:
            left = f", {_duration(elapsed * (total - done) / done)} left"
        return f"{head}[{bar}] {self._amount(done)}/{self._amount(total)} {self.what}{left}"

    def __call__(self, done: int, total: int | None) -> None:
        finished = bool(total) and done >= total
        if not self.active:
            if total:
                tenth = min(10, 10 * done // total)
                if tenth > self.last_tenth:
                    self.last_tenth = tenth
                    logger.info("%s", self._line(done, total, "=", " "))
            return
        now = time.monotonic()
        if not finished and now - self.last_draw < self.interval:
            return
        self.last_draw = now
        self.stream.write("\r" + self._line(done, total) + ("\n" if finished else ""))
        self.stream.flush()


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class DownloadProgress(ProgressBar):
    """`progress(done, total)` for downloads, in MB: a bar on a terminal; elsewhere silent,
    since the download is logged when it starts."""

    def __init__(self, stream=None, width=30):
        super().__init__("MB", "", stream, width)

    def _amount(self, count):
        return f"{count / 1e6:.1f}"

    def __call__(self, done: int, total: int | None) -> None:
        if self.active:
            super().__call__(done, total)
