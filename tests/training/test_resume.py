"""A training run killed with SIGKILL at the worst moments resumes without losing or
repeating an epoch."""

import csv
import json
import os
import signal
import subprocess
import time

import keras
import numpy as np
import pytest

from enc_tf.files import TEMP_PREFIX
from enc_tf.training.run_state import non_finite_variables
from tests.support.tiny_run import ROOT, tiny_overrides, train_command

STEPS, EPOCHS = 6, 3


def _rows(run):
    path = run / "log.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def _temporaries(directory):
    return (
        [n for n in os.listdir(directory) if n.startswith(TEMP_PREFIX)]
        if directory.is_dir()
        else []
    )


def run_until_killed(command, env, log_path, moment, timeout=400):
    """Starts `command`, SIGKILLs its process group as soon as `moment()` is true."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout
            while not moment() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            assert process.poll() is None, (
                "finished before the moment to kill it:\n" + log_path.read_text()[-3000:]
            )
            os.killpg(process.pid, signal.SIGKILL)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def tiny_run_command(tmp_path, run, *extra):
    return train_command(tiny_overrides(tmp_path, run, STEPS, f"train.epochs={EPOCHS}", *extra))


@pytest.mark.slow
def test_sigkill_during_backup_checkpoint_and_mid_epoch_then_resume(tmp_path):
    run = tmp_path / "run"
    command = tiny_run_command(tmp_path, run)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}

    # 1. While the first resume point is being written: epoch 0 is in log.csv, not yet committed.
    run_until_killed(command, env, tmp_path / "1.log", lambda: _temporaries(run / "backup"))
    assert [int(r["epoch"]) for r in _rows(run)] == [0]
    # 2. While the first checkpoint is being written: epoch 0 committed (redone once),
    #    its checkpoints not.
    run_until_killed(command, env, tmp_path / "2.log", lambda: _temporaries(run / "checkpoints"))
    assert "dropped 1 row" in (tmp_path / "2.log").read_text()
    # 3. In the middle of epoch 1: as soon as Keras announces it (unbuffered output).
    log = tmp_path / "3.log"
    run_until_killed(
        command,
        {**env, "PYTHONUNBUFFERED": "1"},
        log,
        lambda: log.exists() and f"Epoch 2/{EPOCHS}" in log.read_text(),
    )

    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    rows = _rows(run)
    assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS))  # every epoch exactly once
    model = keras.models.load_model(run / "model.keras")
    # The optimizer state came back with the weights: the step counter (and so the
    # poly schedule's position) counts every step exactly once.
    assert int(model.optimizer.iterations.numpy()) == EPOCHS * STEPS
    lrs = [float(r["learning_rate"]) for r in rows]
    assert lrs[0] > lrs[1] > lrs[2] >= 0.0
    index = json.loads((run / "checkpoints" / "checkpoints.json").read_text())
    scores = [float(r["val_seg_mean_iou"]) for r in rows]
    assert index["best"]["epoch"] == int(np.argmax(scores)) and index["last"]["epoch"] == EPOCHS - 1
    for name in ("last", "best"):
        assert not non_finite_variables(
            keras.models.load_model(run / "checkpoints" / f"{name}.keras").weights
        )
    for directory in (run, run / "checkpoints", run / "backup"):
        assert not _temporaries(directory), directory


@pytest.mark.slow
def test_a_data_error_inside_training_is_one_line_and_exit_1(tmp_path):
    from PIL import Image

    from tests.support import layouts

    root = tmp_path / "data"
    layouts.write_folder(str(root), np.random.default_rng(0), n=4, with_split=False)
    mask = np.array(Image.open(root / "masks" / "img1.png"))
    mask[2, 3] = 44  # not a class of the 3-class list, not the ignore value
    Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / "img1.png")
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("img0\nimg1\n")
    (root / "splits" / "val.txt").write_text("img2\nimg3\n")
    overrides = [
        "data.dataset=folder",
        f"data.root={root}",
        "data.base_size=32",
        "data.crop_size=32",
        "model.output_stride=16",
        "train.batch_size=2",
        "train.steps_per_epoch=2",
        "train.epochs=1",
        f"train.run_dir={tmp_path / 'run'}",
    ]
    command = train_command(overrides)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1, done.stderr[-3000:]
    assert len(errors) == 1 and "img1.png" in errors[0] and "[44]" in errors[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr
