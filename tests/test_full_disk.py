"""A full disk, for real: a small tmpfs. Training and exporting end with exit 1 and one
line naming the file (no native crash, no traceback), and nothing half-written stays."""

import contextlib
import os
import subprocess

import pytest

from enc_tf.files import TEMP_PREFIX
from tests.support.commands import command
from tests.support.tiny_models import tiny_segmenter
from tests.support.tiny_run import ROOT, tiny_overrides, train_command

pytestmark = pytest.mark.slow
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}


@contextlib.contextmanager
def tmpfs(path, size):
    os.makedirs(path)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _one_error_line(done):
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1, done.stderr[-3000:]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "Exception ignored" not in done.stderr
    return errors[0]


def _temporaries(root):
    return [name for _, _, names in os.walk(root) for name in names if TEMP_PREFIX in name]


def test_training_on_a_full_disk_and_again_after(tmp_path):
    with tmpfs(tmp_path / "disk", "2m") as disk:
        run = disk / "run"
        command = train_command(tiny_overrides(tmp_path, run, 2, "train.epochs=1"))
        for _ in range(2):  # the first start, then a restart on the still-full disk
            done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
            line = _one_error_line(done)
            assert line.startswith("error: No space left on device: ") and str(run) in line
            assert not _temporaries(run)


def test_export_on_a_full_disk(tmp_path):
    model = tmp_path / "m.keras"
    tiny_segmenter(3).save(model)
    with tmpfs(tmp_path / "disk", "64k") as disk:
        done = subprocess.run(
            command("enc-export", model, "--base-dir", disk),
            env=ENV,
            capture_output=True,
            text=True,
            timeout=300,
        )
        line = _one_error_line(done)
        assert line.startswith("error: No space left on device: ") and str(disk) in line
        assert not _temporaries(disk) and not os.path.exists(disk / "encnet" / "1")
