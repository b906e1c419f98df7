"""What `model.keras` holds at the end of a run: the last epoch after a normal end, the best
one after an early end (time limit, Ctrl-C)."""

import keras
import numpy as np

from enc_tf.training.run_state import RunRecorder
from enc_tf.training.trainer import finish_run


def _model():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs))


def _recorder(tmp_path, model, best_epoch):
    recorder = RunRecorder(str(tmp_path), str(tmp_path / "backup"))
    recorder.set_model(model)
    recorder._save_checkpoint("best", best_epoch, 0.5)  # best.keras with the current weights
    recorder.best = (best_epoch, 0.5)
    return recorder


def test_a_normal_end_keeps_the_last_epoch_an_early_end_the_best(tmp_path):
    model = _model()
    best = [w.numpy().copy() for w in model.weights]
    recorder = _recorder(tmp_path, model, best_epoch=2)
    for w in model.weights:  # training went on after the best epoch
        w.assign(w.numpy() + 1.0)
    last = [w.numpy().copy() for w in model.weights]
    assert finish_run(model, recorder, str(tmp_path), 9, 9) == 8
    saved = keras.models.load_model(tmp_path / "model.keras")
    for mine, want in zip(saved.weights, last):
        np.testing.assert_array_equal(mine.numpy(), want)
    held = finish_run(model, recorder, str(tmp_path), 6, 9, "stopped at the time limit")
    assert held == 2
    saved = keras.models.load_model(tmp_path / "model.keras")
    for model_weights in (model.weights, saved.weights):  # the returned model too
        for mine, want in zip(model_weights, best):
            np.testing.assert_array_equal(mine.numpy(), want)


def test_an_early_end_without_a_scored_epoch_keeps_the_last(tmp_path):
    model = _model()
    recorder = RunRecorder(str(tmp_path), str(tmp_path / "backup"))
    recorder.set_model(model)
    assert finish_run(model, recorder, str(tmp_path), 3, 9, "interrupted") == 2
    assert (tmp_path / "model.keras").is_file()
