"""`train.deterministic=true`: two runs of the same config give the same weights, bit for bit."""

import os
import subprocess

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
