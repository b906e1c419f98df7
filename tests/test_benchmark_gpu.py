"""`benchmarks/gpu.py`, run on CPU logical devices: the replicated (SyncBN) training and the
inference cases run (two replicas only, to keep the suite short), and the table's arithmetic
holds."""

import os
import subprocess
import sys

import pytest

from benchmarks.gpu import replica_counts, scaling_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_replica_counts():
    assert replica_counts(1) == [1]
    assert replica_counts(2) == [1, 2]
    assert replica_counts(6) == [1, 2, 4, 6]
    assert replica_counts(8, "4,1") == [1, 4]
    with pytest.raises(SystemExit, match="2 device"):
        replica_counts(2, "1,4")


def test_scaling_efficiency_is_against_one_replica_of_the_same_setting():
    results = {
        ("float32", "off", 1): {"step": 1.0, "images_per_s": 10.0},
        ("float32", "off", 2): {"step": 1.25, "images_per_s": 16.0},
        ("mixed_float16", "on", 2): {"step": 0.5, "images_per_s": 40.0},
    }
    rows = scaling_rows(results)
    assert rows[0][-1] == "100%" and rows[1][-1] == "80%"
    assert rows[2][-1] == "-"  # no one-replica case of that setting


@pytest.mark.slow
def test_runs_on_cpu_logical_devices():
    command = [
        sys.executable,
        os.path.join(ROOT, "benchmarks", "gpu.py"),
        "--cpu-devices", "2",
        "--replicas", "2",
        "--backbone", "mobilenetv3_small_minimalistic",
        "--size", "64",
        "--batch-per-replica", "2",
        "--policies", "float32",
        "--xla", "off",
        "--steps", "1",
        "--inference-batches", "1",
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert "replicas on CPU devices" in lines[0]
    rows = [line.split("|") for line in lines if line.startswith("float32")]
    training = [[c.strip() for c in r] for r in rows if len(r) == 6]
    assert [r[2] for r in training] == ["2"] and float(training[0][4]) > 0
    inference = [[c.strip() for c in r] for r in rows if len(r) == 4]
    assert len(inference) == 1 and float(inference[0][3]) > 0
