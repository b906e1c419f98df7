import numpy as np
import pytest

from enc_tf.metrics import MeanIoU, PixelAccuracy, confusion_matrix, segmentation_scores


def test_confusion_matrix_by_hand():
    labels = np.array([[[0, 1, 1], [2, 255, 0]]])
    preds = np.array([[[0, 1, 0], [1, 2, 2]]])
    expected = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 0]])  # the 255 pixel is skipped
    np.testing.assert_array_equal(confusion_matrix(labels, preds, 3), expected)
    logits = np.eye(3)[preds] * 5.0
    np.testing.assert_array_equal(confusion_matrix(labels, logits, 3), expected)


def test_scores_by_hand_with_an_absent_class():
    # Class 3 never occurs in ground truth or prediction.
    matrix = np.array([[3, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    s = segmentation_scores(matrix, ["a", "b", "c", "d"])
    assert s["pixel_accuracy"] == pytest.approx(5 / 7)
    iou = [3 / 5, 2 / 3, 0.0]
    assert s["per_class_iou"][:3] == pytest.approx(iou) and np.isnan(s["per_class_iou"][3])
    assert s["mean_iou"] == pytest.approx(sum(iou) / 4)  # the original: absent counts 0
    assert s["mean_iou_present"] == pytest.approx(sum(iou) / 3)
    assert s["frequency_weighted_iou"] == pytest.approx(4 / 7 * 3 / 5 + 2 / 7 * 2 / 3 + 1 / 7 * 0)
    assert s["class_names"] == ["a", "b", "c", "d"]


def test_keras_metrics_stream_and_reset():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (3, 5, 6))
    labels[0, 0] = 255
    logits = rng.normal(size=(3, 5, 6, 4)).astype("float32")
    acc, miou, present = PixelAccuracy(4), MeanIoU(4), MeanIoU(4, present_only=True)
    for metric in (acc, miou, present):
        metric.update_state(labels[:2], logits[:2])
        metric.update_state(labels[2:], logits[2:])
    s = segmentation_scores(confusion_matrix(labels, logits, 4))
    assert float(acc.result()) == pytest.approx(s["pixel_accuracy"], rel=1e-6)
    assert float(miou.result()) == pytest.approx(s["mean_iou"], rel=1e-6)
    assert float(present.result()) == pytest.approx(s["mean_iou_present"], rel=1e-6)
    acc.reset_state()
    assert float(acc.result()) == 0.0
    assert MeanIoU.from_config(present.get_config()).present_only is True
    assert present.matrix.dtype == "int64"
