"""The package's own error classes: every expected failure is one of these.

Command-line entry points (`enc_tf.console.run_cli`) turn them into one line on
stderr and the exit status they carry, never a traceback.
"""

import importlib


class EncTfError(Exception):
    """A failure caused by the user's input or environment; the message names the file/key/value.

    `exit_code` is what a command-line tool exits with: 2 for a usage or input
    error found before any work was done, 1 for a failure while working.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(EncTfError, ValueError):
    """A configuration key is unknown, mistyped or impossible; the message names it."""


class DataError(EncTfError, ValueError):
    """A dataset file is missing, unreadable or inconsistent; the message names it."""


class ModelFileError(EncTfError, ValueError):
    """A model file (.keras, SavedModel, weights) is missing, truncated or not what was expected."""


class MissingDependency(EncTfError, ImportError):
    """An optional package that a feature needs is not installed; the message says how to
    install it."""

    exit_code = 1


def import_optional(module: str, feature: str, install: str):
    """`module`, imported; or `MissingDependency`: "<feature> needs <module>, which is not
    installed: <install>"."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependency(
            f"{feature} needs {module.split('.')[0]!r}, which is not installed: {install}"
        ) from err


class TrainingDiverged(EncTfError):
    """The loss became NaN or inf; nothing was written over the last good state."""

    exit_code = 1
