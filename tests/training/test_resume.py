"""A training run killed with SIGKILL mid-epoch resumes from its backup when started again."""

import csv
import os
import signal
import subprocess
import sys
import time

import keras
import pytest

from enc_tf.data import ensure_context_shapes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS, EPOCHS = 12, 3


def _rows(run):
    path = run / "log.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(tmp_path):
    cache = str(tmp_path / "cache")
    ensure_context_shapes(cache, 8, 4, 64)
    run = tmp_path / "run"
    overrides = [
        f"data.root={cache}", "data.context_shapes_train=8", "data.context_shapes_val=4",
        "data.context_shapes_size=64", "data.base_size=64", "data.crop_size=48", "model.output_stride=16",
        "train.batch_size=2", f"train.steps_per_epoch={STEPS}", f"train.epochs={EPOCHS}", f"train.run_dir={run}",
        "optimizer.base_lr=0.004",
    ]
    command = [sys.executable, os.path.join(ROOT, "train.py")] + [a for o in overrides for a in ("--set", o)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 400
            while not _rows(run) and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)  # into the second epoch's 12 steps (about 0.4 s each here)
            assert process.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            os.killpg(process.pid, signal.SIGKILL)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    killed_after = [int(r["epoch"]) for r in _rows(run)]
    assert killed_after in ([0], [0, 1])  # [0]: killed mid-epoch, the case meant here
    assert not (run / "model.keras").exists()

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    epochs = [int(r["epoch"]) for r in _rows(run)]
    assert epochs == [0, 1, 2], epochs  # epoch 0 was not trained again
    model = keras.models.load_model(run / "model.keras")
    # The optimizer state came back with the weights: the step counter (and so the
    # poly schedule's position) counts every step exactly once.
    assert int(model.optimizer.iterations.numpy()) == EPOCHS * STEPS
    lrs = [float(r["learning_rate"]) for r in _rows(run)]
    assert lrs[0] > lrs[1] > lrs[2] >= 0.0
