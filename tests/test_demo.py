import numpy as np
import pytest

from enc_tf import demo
from enc_tf.data.context_shapes import CLASSES


def test_unknown_export_variant_is_refused_before_training(monkeypatch, capsys):
    monkeypatch.setattr(demo, "train", lambda config: pytest.fail("trained despite a bad --export"))
    assert demo.main(["--export", "onnx,tflite_int4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tflite_int4" in err[0] and err[0].startswith("error:")


def test_prediction_panel_has_three_views_and_a_legend():
    label = np.zeros((20, 30), np.int64)
    label[5:10, 5:10] = 4
    prediction = label.copy()
    prediction[0, 0] = 7
    panel = demo.prediction_panel(np.zeros((20, 30, 3)), label, prediction, CLASSES)
    assert panel.width == 3 * 30 * 3 and panel.height > 20 * 3
    pixels = np.asarray(panel)
    assert tuple(pixels[7 * 3, 30 * 3 + 7 * 3]) == tuple(CLASSES.palette[4])  # ground-truth view
    assert tuple(pixels[7 * 3, 2 * 30 * 3 + 7 * 3]) == tuple(CLASSES.palette[4])  # prediction view
