"""RunRecorder on a small model: what a run writes, and what survives a NaN, a failed write
or a restart."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from enc_tf.files import TEMP_PREFIX
from enc_tf.training.run_state import (
    RunRecorder,
    non_finite_variables,
    read_log,
    restore_resume_point,
    resume_point_arrays,
    resume_points,
)
from tests.support.files import stale_temporary_name

STEPS = 3


class ScriptedScore(keras.callbacks.Callback):
    """Puts a given validation score into each epoch's logs (the recorder reads it)."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores

    def on_epoch_end(self, epoch, logs=None):
        logs["val_score"] = self.scores[epoch]


def _model():
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="mse")
    return model


def _data(epochs, nan_epoch=None):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(epochs * STEPS * 2, 4)).astype("float32")
    y = x.sum(-1, keepdims=True)
    if nan_epoch is not None:
        y[nan_epoch * STEPS * 2 + 2] = np.nan  # a NaN label in the second batch of that epoch
    return x, y


def _fit(tmp_path, epochs, scores, model=None, nan_epoch=None, recorder_cls=RunRecorder):
    model = model or _model()
    recorder = recorder_cls(
        str(tmp_path / "run"), str(tmp_path / "run" / "backup"), monitor="val_score"
    )
    done = restore_resume_point(model, recorder.backup_dir)
    recorder.prepare(model, done)
    x, y = _data(epochs, nan_epoch)
    start = done * STEPS * 2  # the data continues where the committed epochs left it
    data = tf.data.Dataset.from_tensor_slices((x[start:], y[start:])).batch(2)
    model.fit(
        data,
        epochs=epochs,
        initial_epoch=done,
        steps_per_epoch=STEPS,
        shuffle=False,
        verbose=0,
        callbacks=[ScriptedScore(scores), recorder],
    )
    return model, recorder


def _files(run):
    return {
        p: (run / p).read_bytes()
        for p in (
            "log.csv",
            "checkpoints/last.keras",
            "checkpoints/best.keras",
            "checkpoints/checkpoints.json",
        )
    }


def _epochs(run):
    return [int(r["epoch"]) for r in read_log(str(run / "log.csv"))[1]]


def test_writes_log_resume_points_and_checkpoints(tmp_path):
    model, recorder = _fit(tmp_path, 3, [0.2, 0.7, 0.5])
    run = tmp_path / "run"
    assert _epochs(run) == [0, 1, 2]
    assert [e for e, _ in resume_points(str(run / "backup"))] == [3, 2]  # the newest two
    index = json.loads((run / "checkpoints" / "checkpoints.json").read_text())
    assert (
        index["last"]["epoch"] == 2
        and index["best"]["epoch"] == 1
        and index["best"]["value"] == 0.7
    )
    assert recorder.diverged is None
    assert not [n for n in os.listdir(run / "checkpoints") if n.startswith(TEMP_PREFIX)]
    arrays = resume_point_arrays(resume_points(str(run / "backup"))[0][1])
    assert arrays["optimizer/vars/0"] == 3 * STEPS  # the step counter
    assert sum(k.startswith("layers/") for k in arrays) == 4  # 2 kernels, 2 biases
    restored = _model()
    assert restore_resume_point(restored, str(run / "backup")) == 3
    assert int(restored.optimizer.iterations.numpy()) == 3 * STEPS
    for a, b in zip(restored.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_non_finite_loss_writes_nothing_and_a_restart_resumes_from_the_last_good_epoch(tmp_path):
    run = tmp_path / "run"
    _fit(tmp_path, 2, [0.3, 0.6])
    before = _files(run)
    backups = {p: open(p, "rb").read() for _, p in resume_points(str(run / "backup"))}
    model, recorder = _fit(tmp_path, 4, [0.3, 0.6, 0.99, 0.99], model=_model(), nan_epoch=2)
    assert recorder.diverged is not None and recorder.diverged[:2] == (2, 1)
    assert non_finite_variables(model.weights)  # the NaN really reached the weights
    assert _files(run) == before  # no checkpoint, log row or index written over
    assert {p: open(p, "rb").read() for _, p in resume_points(str(run / "backup"))} == backups
    assert recorder.last_good_checkpoint() == (str(run / "checkpoints" / "last.keras"), 1)
    # Started again (the data fixed), it continues after epoch 2 from finite weights.
    model, recorder = _fit(tmp_path, 4, [0.3, 0.6, 0.5, 0.4], model=_model())
    assert _epochs(run) == [0, 1, 2, 3] and not non_finite_variables(model.weights)
    assert int(model.optimizer.iterations.numpy()) == 4 * STEPS


def test_best_is_the_best_over_the_whole_run_after_a_resume(tmp_path):
    run = tmp_path / "run"
    _fit(tmp_path, 2, [0.4, 0.8])
    best = (run / "checkpoints" / "best.keras").read_bytes()
    _, recorder = _fit(
        tmp_path, 3, [0.4, 0.8, 0.6], model=_model()
    )  # a worse epoch after the restart
    assert recorder.best == (1, 0.8)
    assert (run / "checkpoints" / "best.keras").read_bytes() == best
    assert json.loads((run / "checkpoints" / "checkpoints.json").read_text())["best"]["epoch"] == 1


class FailingCommit(RunRecorder):
    """Its resume point cannot be written after epoch 2, as on a full disk."""

    def _commit_resume_point(self, epochs_done):
        if epochs_done == 2:
            raise OSError(28, "No space left on device")
        super()._commit_resume_point(epochs_done)


def test_an_epoch_logged_but_not_committed_is_redone_not_lost(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(OSError, match="No space"):
        _fit(tmp_path, 3, [0.1, 0.2, 0.3], recorder_cls=FailingCommit)
    assert _epochs(run) == [0, 1]  # the row of epoch 1 was written, its resume point was not
    model, _ = _fit(tmp_path, 3, [0.1, 0.2, 0.3], model=_model())
    assert _epochs(run) == [0, 1, 2]  # epoch 1 dropped at the restart, then redone once
    assert int(model.optimizer.iterations.numpy()) == 3 * STEPS
    index = json.loads((run / "checkpoints" / "checkpoints.json").read_text())
    assert index["best"]["epoch"] == 2 and index["last"]["epoch"] == 2


def test_an_unreadable_or_non_finite_newest_resume_point_falls_back_to_the_one_before(tmp_path):
    run = tmp_path / "run"
    _fit(tmp_path, 3, [0.1, 0.2, 0.3])
    newest = resume_points(str(run / "backup"))[0][1]
    with open(newest, "r+b") as f:  # truncated, as by a power loss without fsync
        f.truncate(100)
    model = _model()
    assert restore_resume_point(model, str(run / "backup")) == 2
    assert int(model.optimizer.iterations.numpy()) == 2 * STEPS
    # A resume point full of NaN (written by an older version) is skipped the same way.
    nan_model = _model()
    for w in nan_model.weights:
        w.assign(np.full(w.shape, np.nan, "float32"))
    nan_model.optimizer.build(nan_model.trainable_variables)
    nan_model.save_weights(str(run / "backup" / "epoch-00009.weights.h5"))
    assert restore_resume_point(_model(), str(run / "backup")) == 2


def test_a_restart_removes_temporaries_of_killed_writes(tmp_path):
    run = tmp_path / "run"
    _fit(tmp_path, 1, [0.1])
    stale = [
        run / "checkpoints" / stale_temporary_name("last.keras"),
        run / "backup" / stale_temporary_name("epoch-00002.weights.h5"),
    ]
    for path in stale:
        path.write_bytes(b"half")
    _fit(tmp_path, 2, [0.1, 0.2], model=_model())
    assert not any(p.exists() for p in stale)


class FailingCheckpoint(RunRecorder):
    """`last.keras` of epoch 1 cannot be written (after its resume point was committed)."""

    def _save_checkpoint(self, name, epoch, value):
        if epoch == 1 and self.model.stop_training is False and not getattr(self, "failed", False):
            self.failed = True
            raise OSError(30, "Read-only file system")
        super()._save_checkpoint(name, epoch, value)


def test_checkpoints_that_lag_behind_the_resume_point_are_rewritten_at_the_restart(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(OSError, match="Read-only"):
        _fit(tmp_path, 3, [0.1, 0.5, 0.3], recorder_cls=FailingCheckpoint)
    index = json.loads((run / "checkpoints" / "checkpoints.json").read_text())
    assert (
        index["last"]["epoch"] == 0 and index["best"]["epoch"] == 0
    )  # epoch 1 committed, its checkpoints not
    model = _model()
    recorder = RunRecorder(str(run), str(run / "backup"), monitor="val_score")
    recorder.prepare(model, restore_resume_point(model, recorder.backup_dir))
    index = json.loads((run / "checkpoints" / "checkpoints.json").read_text())
    assert index["last"]["epoch"] == 1 and index["best"] == {
        "epoch": 1,
        "file": "best.keras",
        "monitor": "val_score",
        "value": 0.5,
    }
    saved = keras.models.load_model(run / "checkpoints" / "best.keras")
    for a, b in zip(saved.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
