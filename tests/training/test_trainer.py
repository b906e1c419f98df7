import csv
import os

import keras
import numpy as np
import pytest

from enc_tf.config import load_config
from enc_tf.models import save_model_atomic
from enc_tf.training import cli as train_cli
from enc_tf.training import train
from enc_tf.training.run_state import restore_resume_point
from tests.support.tiny_run import tiny_overrides


def _overrides(tmp_path, *extra):
    return tiny_overrides(tmp_path, tmp_path / "run", 2, *extra)


def _tiny(tmp_path, *extra):
    return load_config(None, _overrides(tmp_path, *extra))


def _log_rows(tmp_path):
    with open(tmp_path / "run" / "log.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_training_run_writes_its_directory_resumes_and_survives_divergence(tmp_path, capsys):
    model, history = train(_tiny(tmp_path, "train.epochs=2"))
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "log.csv",
        "model.keras",
        "checkpoints/last.keras",
        "checkpoints/best.keras",
    ):
        assert (run / name).is_file(), name
    assert (run / "tensorboard").is_dir() and (run / "backup").is_dir()
    assert len(history["loss"]) == 2 and all(np.isfinite(history["loss"]))
    assert {"val_seg_mean_iou", "val_seg_pixel_accuracy", "learning_rate"} <= set(history)
    assert history["learning_rate"][1] < history["learning_rate"][0]  # poly schedule
    rows = _log_rows(tmp_path)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    reloaded = keras.models.load_model(run / "model.keras")
    x = np.zeros((1, 48, 48, 3), "float32")
    np.testing.assert_allclose(reloaded(x)["seg"], model(x)["seg"], atol=1e-5)
    # Started again with more epochs, the run continues from its backup instead of restarting.
    _, more = train(_tiny(tmp_path, "train.epochs=3"))
    assert len(more["loss"]) == 1
    assert [int(r["epoch"]) for r in _log_rows(tmp_path)] == [0, 1, 2]

    # Continued with a learning rate that diverges: exit 1, one line naming the last good
    # checkpoint, and nothing written over the checkpoints, the resume points or the log.
    def files():
        return {
            p.relative_to(run): p.read_bytes()
            for p in run.rglob("*")
            if p.is_file() and "tensorboard" not in p.parts and p.name != "config.yaml"
        }

    before = files()
    args = [
        a
        for o in _overrides(tmp_path, "train.epochs=4", "optimizer.base_lr=1000000.0")
        for a in ("--set", o)
    ]
    assert train_cli.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert (
        "loss became nan at epoch 4" in err[0].lower()
        and f"{run / 'checkpoints' / 'last.keras'} (epoch 3)" in err[0]
    )
    assert files() == before
    # The next start resumes from the last good state (epoch 3), with finite weights.
    assert restore_resume_point(model, str(run / "backup")) == 3


def test_save_atomic_never_leaves_a_partial_file(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / "m.keras"
    save_model_atomic(model, str(path))
    before = path.read_bytes()

    class Unsaveable(keras.Sequential):
        def save(self, *args, **kwargs):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_model_atomic(Unsaveable([keras.Input((2,)), keras.layers.Dense(1)]), str(path))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.keras"]
    with pytest.raises(ValueError, match=r"must end in \.keras, got .*m\.h5"):
        save_model_atomic(model, str(tmp_path / "m.h5"))
    assert os.listdir(tmp_path) == ["m.keras"]
