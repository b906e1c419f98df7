"""What a training run writes at each epoch end, in an order that a kill at any moment cannot break.

At the end of every epoch whose loss and weights are finite, `RunRecorder` writes,
in this order:

1. the epoch's row of `log.csv` (appended, flushed to disk);
2. the resume point `backup/epoch-<N>.weights.h5`: weights and optimizer state
   after N epochs, written to a temporary name and renamed (the rename is the
   commit, so a resume point is complete or absent);
3. `checkpoints/last.keras`, then `best.keras` when the monitored score improved,
   each followed by `checkpoints/checkpoints.json`, which says which epoch and
   score each file holds.

A run started again (`restore`) loads the newest resume point that reads back
with finite values, continues from the epoch after it, drops the log rows of
epochs that were not committed (they are redone), rewrites the checkpoints that
lag behind the resume point from the restored weights, and restores the best
score from the log, so `best.keras` stays the best over the whole run.

After a NaN or inf loss nothing more is written, the run stops, and
`diverged` says where; the previous resume point and checkpoints stay as they were.
"""

import csv
import io
import json
import logging
import math
import os
import re

import keras
import numpy as np
import tensorflow as tf

from enc_tf.artifacts import CHECKPOINTS, RUN_LOG
from enc_tf.files import atomic_write, remove_stale_temporaries, write_text_atomic
from enc_tf.models.saving import save_model_atomic

logger = logging.getLogger(__name__)

RESUME_PATTERN = re.compile(r"^epoch-(\d+)\.weights\.h5$")
KEEP_RESUME_POINTS = 2  # the newest and the one before it, in case the newest cannot be read
CHECKPOINTS_INDEX = "checkpoints.json"


def resume_point_path(backup_dir: str, epochs_done: int) -> str:
    """Where the state after `epochs_done` epochs is kept."""
    return os.path.join(backup_dir, f"epoch-{epochs_done:05d}.weights.h5")


def resume_points(backup_dir: str) -> list[tuple[int, str]]:
    """`(epochs_done, path)` of every resume point in `backup_dir`, newest first."""
    if not os.path.isdir(backup_dir):
        return []
    found = []
    for name in os.listdir(backup_dir):
        match = RESUME_PATTERN.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(backup_dir, name)))
    return sorted(found, reverse=True)


def read_variable(variable):
    """A variable's value as NumPy; under a distribution strategy, the first local copy."""
    value = variable.value
    if isinstance(value, tf.distribute.DistributedValues):
        value = value.values[0]
    return np.asarray(value.numpy())


def resume_point_arrays(path: str) -> dict:
    """Every array of a resume point (`{h5 path: np.ndarray}`: weights, BatchNorm statistics,
    optimizer slots), to inspect or compare runs without building a model."""
    import h5py

    arrays = {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset):
            arrays[name] = item[()]

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return arrays


def non_finite_variables(variables) -> list[str]:
    """Paths of the variables holding a NaN or inf (model weights, optimizer slots)."""
    bad = []
    for variable in variables:
        value = read_variable(variable)
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            bad.append(variable.path)
    return bad


def _state_variables(model):
    variables = list(model.weights)
    if model.optimizer is not None:
        variables += list(model.optimizer.variables)
    return variables


def restore_resume_point(model, backup_dir: str) -> int:
    """Loads the newest readable, finite resume point into `model` (and its optimizer).

    Call it inside the strategy scope, after `compile`. Returns the number of
    epochs it holds (0 when there is none: a fresh start).
    """
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    initial = [read_variable(v) for v in _state_variables(model)]
    for epochs_done, path in resume_points(backup_dir):
        try:
            model.load_weights(path)
        except (OSError, ValueError, KeyError) as err:
            logger.warning(
                "Resume point %s cannot be read (%s); trying the one before it.", path, err
            )
            continue
        bad = non_finite_variables(_state_variables(model))
        if bad:
            logger.warning(
                "Resume point %s holds non-finite values (%s, ...); trying the one before it.",
                path,
                bad[0],
            )
            continue
        logger.info("Resuming after epoch %d from %s", epochs_done, path)
        return epochs_done
    for variable, value in zip(
        _state_variables(model), initial
    ):  # a failed load may have left a mix
        variable.assign(value)
    return 0


def read_log(path: str) -> tuple[list[str], list[dict]]:
    """The header and rows of a `log.csv` (empty when it does not exist)."""
    if not os.path.isfile(path):
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = [row for row in reader if row.get("epoch", "").strip().isdigit()]
        return list(reader.fieldnames or []), rows


def _csv_text(header, rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, restval="NA", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _number(value):
    if isinstance(value, (int, float, np.number)):
        return float(value)
    array = keras.ops.convert_to_numpy(value)
    return float(np.mean(array))


class RunRecorder(keras.callbacks.Callback):
    """Writes the log, resume points and checkpoints of a run; see the module docstring.

    Args:
        run_dir: the run directory (`log.csv`, `checkpoints/`).
        backup_dir: where the resume points go (`run_dir/backup`, or a worker's own).
        chief: whether this process writes the log and the checkpoints (every
            worker writes its own resume points).
        monitor, mode: the score that decides `best.keras`.
    """

    def __init__(self, run_dir, backup_dir, chief=True, monitor="val_seg_mean_iou", mode="max"):
        super().__init__()
        self.run_dir, self.backup_dir, self.chief = run_dir, backup_dir, chief
        self.log_path = os.path.join(run_dir, RUN_LOG)
        self.checkpoint_dir = os.path.join(run_dir, CHECKPOINTS)
        self.monitor, self.sign = monitor, 1.0 if mode == "max" else -1.0
        self.best = None  # (epoch, value)
        self.diverged = None  # (epoch, batch, value) of the first non-finite loss
        self.epoch = 0

    # Paths and the checkpoint index.
    def checkpoint_path(self, name):
        return os.path.join(self.checkpoint_dir, f"{name}.keras")

    def checkpoint_index(self) -> dict:
        path = os.path.join(self.checkpoint_dir, CHECKPOINTS_INDEX)
        try:
            with open(path) as f:
                index = json.load(f)
            return index if isinstance(index, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_index(self, index):
        write_text_atomic(
            json.dumps(index, indent=1, sort_keys=True) + "\n",
            os.path.join(self.checkpoint_dir, CHECKPOINTS_INDEX),
        )

    def last_good_checkpoint(self):
        """`(path, epoch)` of `last.keras` as the index records it, or None."""
        entry = self.checkpoint_index().get("last")
        if entry and os.path.isfile(self.checkpoint_path("last")):
            return self.checkpoint_path("last"), int(entry["epoch"])
        return None

    # Start: clean up after killed writes, align the log and checkpoints with the resume point.
    def prepare(self, model, epochs_done: int) -> None:
        """Called by the trainer after `restore_resume_point`, before `fit` (no callback
        hook runs early enough to choose the data's starting point)."""
        self.set_model(model)
        self.epoch = epochs_done
        for directory in (self.run_dir, self.checkpoint_dir, self.backup_dir):
            remove_stale_temporaries(directory)
        if not self.chief:
            return
        header, rows = read_log(self.log_path)
        kept = [row for row in rows if int(row["epoch"]) < epochs_done]
        if len(kept) != len(rows) or (header and not rows):
            logger.info(
                "log.csv: dropped %d row(s) of epochs after the resume point (%d)",
                len(rows) - len(kept),
                epochs_done,
            )
            os.makedirs(self.run_dir, exist_ok=True)
            write_text_atomic(_csv_text(header, kept), self.log_path)
        scored = [
            (int(r["epoch"]), float(r[self.monitor]))
            for r in kept
            if r.get(self.monitor) not in (None, "", "NA") and math.isfinite(float(r[self.monitor]))
        ]
        self.best = (
            max(scored, key=lambda item: (self.sign * item[1], -item[0])) if scored else None
        )
        if epochs_done == 0:
            return
        index = self.checkpoint_index()
        # The last epoch before the resume point may have been committed without its
        # checkpoints (killed in between): the restored weights are that epoch's.
        if (index.get("last") or {}).get("epoch") != epochs_done - 1 or not os.path.isfile(
            self.checkpoint_path("last")
        ):
            self._save_checkpoint("last", epochs_done - 1, None)
        if self.best is not None:
            recorded = index.get("best") or {}
            if recorded.get("epoch") != self.best[0] or not os.path.isfile(
                self.checkpoint_path("best")
            ):
                if self.best[0] == epochs_done - 1:
                    self._save_checkpoint("best", *self.best)
                else:
                    logger.warning(
                        "best.keras holds epoch %s, but the log's best is epoch %d (%.4f), "
                        "whose weights are gone; "
                        "best.keras is replaced at the next improvement.",
                        recorded.get("epoch"),
                        self.best[0] + 1,
                        self.best[1],
                    )

    def _save_checkpoint(self, name, epoch, value):
        save_model_atomic(self.model, self.checkpoint_path(name))
        index = self.checkpoint_index()
        index[name] = {"epoch": epoch, "file": f"{name}.keras"}
        if value is not None:
            index[name].update(monitor=self.monitor, value=value)
        self._write_index(index)

    # During training.
    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or self.diverged is not None:
            return
        value = _number(loss)
        if not math.isfinite(value):
            self.diverged = (self.epoch, batch, value)
            self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged is not None:
            return  # nothing of this epoch is written
        logs = dict(logs or {})
        bad = non_finite_variables(_state_variables(self.model))
        values = {k: _number(v) for k, v in logs.items()}
        if bad or not all(math.isfinite(v) for k, v in values.items() if "loss" in k):
            self.diverged = (epoch, None, float("nan"))
            self.model.stop_training = True
            return
        if self.chief:
            self._append_log_row(epoch, values)
        self._commit_resume_point(epoch + 1)
        if not self.chief:
            return
        self._save_checkpoint("last", epoch, None)
        value = values.get(self.monitor)
        if (
            value is not None
            and math.isfinite(value)
            and (self.best is None or self.sign * value > self.sign * self.best[1])
        ):
            self.best = (epoch, value)
            self._save_checkpoint("best", epoch, value)
            logger.info("New best %s = %.4f at epoch %d", self.monitor, value, epoch + 1)

    def _append_log_row(self, epoch, values):
        header, _ = read_log(self.log_path)
        row = {"epoch": epoch, **{k: repr(v) for k, v in values.items()}}
        if not header or set(row) - set(header):
            _, rows = read_log(self.log_path)
            header = ["epoch"] + sorted(set(header) - {"epoch"} | set(values))
            write_text_atomic(_csv_text(header, rows + [row]), self.log_path)
            return
        with open(self.log_path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=header, restval="NA", lineterminator="\n").writerow(row)
            f.flush()
            os.fsync(f.fileno())

    def _commit_resume_point(self, epochs_done):
        atomic_write(resume_point_path(self.backup_dir, epochs_done), self.model.save_weights)
        for _, old in resume_points(self.backup_dir)[KEEP_RESUME_POINTS:]:
            os.remove(old)
