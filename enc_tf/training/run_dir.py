"""One training per run directory, and only the run its directory holds.

`claim_run_directory` is held for a run's life by the process that writes the run
directory (the chief). It refuses, in one line each:

- a second training on the same directory (an advisory lock, released by the OS when
  the holder dies, so a killed run never leaves a stale lock; the message names the
  holder's PID);
- a configuration that differs from the stored `config.yaml` in anything that shapes
  the model or the data it sees (`shapes_the_run`: every `model.*` and `data.*` key, the
  batch size, steps per epoch, seed and precision): the run would continue from weights
  and a log that belong to another run. The rest may change on a resume: more epochs,
  a time limit, the optimiser and loss settings (a lower learning rate after a
  divergence), validation and logging frequencies, the strategy, XLA.

`restart=True` (`enc-train --restart`) moves the old run aside
(`<run_dir>.replaced-<time>`) and starts afresh; nothing is deleted.
"""

import contextlib
import logging
import os
import socket
import time

from enc_tf.config import config_to_dict, load_config
from enc_tf.errors import ConfigError, EncTfError
from enc_tf.files import file_lock

logger = logging.getLogger(__name__)

LOCK_NAME = ".enc_tf-run.lock"
SHAPING_SECTIONS = ("model", "data")
SHAPING_KEYS = ("train.batch_size", "train.steps_per_epoch", "train.seed", "train.mixed_precision")


def shapes_the_run(key):
    """Whether a config key shapes the model or the data a run's weights were trained on."""
    return key.split(".")[0] in SHAPING_SECTIONS or key in SHAPING_KEYS


def _flat(config):
    return {
        f"{section}.{key}": value
        for section, values in config_to_dict(config).items()
        for key, value in values.items()
    }


def changed_keys(stored, config):
    """The keys that shape the run and differ between two `Config`s."""
    old, new = _flat(stored), _flat(config)
    return sorted(k for k in new if shapes_the_run(k) and old.get(k) != new[k])


def _check_same_run(run_dir, config_path, config):
    try:
        stored = load_config(config_path)
    except ConfigError as err:
        raise ConfigError(
            f"{config_path} (the run directory's config) cannot be read ({err}); pass "
            "--restart to move the old run aside, or choose another train.run_dir."
        ) from err
    changed = changed_keys(stored, config)
    if changed:
        old, new = _flat(stored), _flat(config)
        listed = ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in changed)
        raise ConfigError(
            f"{run_dir} holds a run with another configuration ({listed}); continuing it "
            "would mix two runs. Choose a new directory (--set train.run_dir=...) or pass "
            "--restart to move the old run aside."
        )


def _move_aside(run_dir):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = f"{run_dir.rstrip(os.sep)}.replaced-{stamp}"
    os.replace(run_dir, aside)
    logger.warning("--restart: moved the previous run %s to %s", run_dir, aside)
    return aside


@contextlib.contextmanager
def claim_run_directory(run_dir, config, config_name, restart=False):
    """Holds `run_dir` for this process while the block runs (see the module docstring)."""
    config_path = os.path.join(run_dir, config_name)
    if restart and os.path.isdir(run_dir) and os.listdir(run_dir):
        with _locked(run_dir):
            _move_aside(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    with _locked(run_dir):
        if os.path.isfile(config_path):
            _check_same_run(run_dir, config_path, config)
        yield


@contextlib.contextmanager
def _locked(run_dir):
    holder = f"PID {os.getpid()} on {socket.gethostname()}"
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(
                file_lock(os.path.join(run_dir, LOCK_NAME), wait=False, holder=holder)
            )
        except BlockingIOError as err:
            raise EncTfError(
                f"{run_dir} is in use by another training ({err}); wait for it to end, or "
                "choose another train.run_dir."
            ) from None
        yield
