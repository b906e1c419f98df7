"""One training per run directory, and only the run the directory holds."""

import os
import signal
import subprocess
import time

import pytest

from enc_tf.config import load_config
from enc_tf.errors import ConfigError, EncTfError
from enc_tf.training.run_dir import LOCK_NAME, changed_keys, claim_run_directory
from tests.support.tiny_run import ROOT, tiny_overrides, train_command

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}


def _config(run, *overrides):
    return load_config(None, [f"train.run_dir={run}", *overrides])


def test_only_keys_that_shape_the_run_count_as_changes(tmp_path):
    base = _config(tmp_path)
    later = _config(tmp_path, "train.epochs=9", "optimizer.base_lr=0.001", "train.xla=true")
    assert changed_keys(base, later) == []
    other = _config(tmp_path, "model.backbone=resnet101s", "data.crop_size=240")
    assert changed_keys(base, other) == ["data.crop_size", "model.backbone"]


def test_a_changed_configuration_is_refused_and_restart_moves_the_run_aside(tmp_path):
    run = tmp_path / "run"
    first = _config(run)
    with claim_run_directory(str(run), first, "config.yaml"):
        (run / "config.yaml").write_text(open(_saved(first, tmp_path)).read())
        (run / "log.csv").write_text("epoch,loss\n0,1.0\n")
    with claim_run_directory(str(run), _config(run, "train.epochs=5"), "config.yaml"):
        pass  # more epochs: the same run, resumed
    changed = _config(run, "model.output_stride=16")
    with pytest.raises(ConfigError, match=r"model.output_stride: 8 -> 16.*--restart"):
        with claim_run_directory(str(run), changed, "config.yaml"):
            pass
    with claim_run_directory(str(run), changed, "config.yaml", restart=True):
        assert os.listdir(run) == [LOCK_NAME]
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert (aside / "log.csv").read_text() == "epoch,loss\n0,1.0\n"  # nothing deleted


def _saved(config, tmp_path):
    from enc_tf.config import save_config

    path = str(tmp_path / "saved.yaml")
    save_config(config, path)
    return path


def test_a_held_run_directory_names_the_holder(tmp_path):
    run = tmp_path / "run"
    with claim_run_directory(str(run), _config(run), "config.yaml"):
        with pytest.raises(EncTfError, match=rf"in use by another training \(PID {os.getpid()}"):
            with claim_run_directory(str(run), _config(run), "config.yaml"):
                pass


@pytest.mark.slow
def test_two_trainings_on_one_directory(tmp_path):
    """The second `enc-train` on a running run's directory ends at once with exit 2 and one
    line naming the directory and the first one's PID; the first is not disturbed."""
    run = tmp_path / "run"
    overrides = tiny_overrides(tmp_path, run, 50, "train.epochs=20")
    # The first run's stderr goes to a file: a pipe nobody reads would block it once full.
    errors = tmp_path / "first.err"
    with open(errors, "w") as sink:
        first = subprocess.Popen(
            train_command(overrides), env=ENV, stdout=subprocess.DEVNULL, stderr=sink
        )
    try:
        deadline = time.monotonic() + 120
        while not (run / "log.csv").exists() and time.monotonic() < deadline:
            assert first.poll() is None, errors.read_text()[-2000:]
            time.sleep(0.5)
        second = subprocess.run(
            train_command(overrides), env=ENV, capture_output=True, text=True, timeout=120
        )
        lines = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        assert second.returncode == 2 and len(lines) == 1, second.stderr[-2000:]
        assert "Traceback" not in second.stderr
        assert str(run) in lines[0] and f"PID {first.pid}" in lines[0]
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGINT)
        try:  # Ctrl-C: the run saves its best epoch and exits (slower beside other tests)
            first.wait(180)
        except subprocess.TimeoutExpired:
            first.kill()
            pytest.fail("enc-train did not stop on SIGINT: " + errors.read_text()[-2000:])
    epochs = [line.split(",")[0] for line in (run / "log.csv").read_text().splitlines()[1:]]
    assert epochs == [str(i) for i in range(len(epochs))]  # one writer: 0 1 2 ...
