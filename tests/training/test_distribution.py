import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "mirrored_step.py")


def _step(mode, directory):
    out = os.path.join(directory, f"{mode}.npz")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.getcwd()}
    result = subprocess.run([sys.executable, SCRIPT, mode, out], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out) as data:
        return [data[f"w{i}"] for i in range(len(data.files))]


def _worst_relative(a, b):
    return max(np.max(np.abs(x - y)) / max(np.max(np.abs(x)), 1e-12) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("mirrored"))
    return {mode: _step(mode, directory) for mode in ("single", "mirrored_sync", "mirrored_local")}


@pytest.mark.slow
def test_sync_batch_norm_and_loss_scaling_bring_mirrored_close_to_one_device(steps):
    synced = _worst_relative(steps["single"], steps["mirrored_sync"])
    local = _worst_relative(steps["single"], steps["mirrored_local"])
    # Unsynchronised BatchNorm normalises each replica's half on its own: far off (about 2).
    assert local > 0.5
    # Synchronised, with the loss scaled by 1 / replicas, the step is close (about 0.05 of
    # that). Losses that returned scalars escaped Keras's scaling and gave ~0.5 here.
    assert synced < 0.2 * local, (synced, local)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="Known gap (issue 4): after one step, weights under MirroredStrategy with "
                   "SyncBN still differ from one device by up to ~0.1 relative (late BatchNorm betas); not yet explained.")
def test_mirrored_step_with_sync_batch_norm_equals_one_device(steps):
    assert _worst_relative(steps["single"], steps["mirrored_sync"]) < 1e-5
