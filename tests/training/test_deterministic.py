"""`train.deterministic=true`: two runs of the same config give the same weights, bit for bit."""

import os
import subprocess
import sys

import numpy as np
import pytest

from enc_tf.training.run_state import resume_point_arrays
from tests.support.tiny_run import ROOT, tiny_overrides, train_command


@pytest.mark.slow
def test_two_deterministic_runs_give_identical_weights(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    weights = []
    for name in ("a", "b"):
        run = tmp_path / name
        command = train_command(
            tiny_overrides(tmp_path, run, 6, "train.epochs=1", "train.deterministic=true")
        )
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        weights.append(resume_point_arrays(run / "backup" / "epoch-00001.weights.h5"))
    a, b = weights
    assert a.keys() == b.keys() and len(a) > 300  # weights, BN statistics and optimizer slots
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_deterministic_mode_sets_one_thread_and_keeps_grappler_from_merging_sums():
    # Grappler's AddN sums in a run-time order (make_deterministic); two runs of the demo
    # parted after 91 steps while it was on. A fresh process: the settings precede any op.
    code = (
        "import tensorflow as tf; from enc_tf.training.trainer import make_deterministic; "
        "make_deterministic(); "
        "print(tf.config.optimizer.get_experimental_options().get('arithmetic_optimization'), "
        "tf.config.threading.get_intra_op_parallelism_threads())"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["False", "1"], done.stderr[-2000:]
