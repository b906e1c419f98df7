"""The arithmetic of `benchmarks/context.py`: distances, the summary table and the verdict."""

import numpy as np

from benchmarks.context import distance_to_objects, summarize
from enc_tf.data.context_shapes import BACKGROUNDS, CLASSES


def test_distance_to_objects_within_the_grid_step():
    label = np.zeros((64, 64), np.uint8)
    label[0:8, 0:8] = 4  # an object in the top-left corner
    distance = distance_to_objects(label, BACKGROUNDS, step=4)
    assert distance.shape == (16, 16)
    rows, cols = np.mgrid[:64:4, :64:4]
    exact = np.hypot(np.maximum(rows - 7, 0), np.maximum(cols - 7, 0))
    assert np.all(np.abs(distance - exact) <= 4 * np.sqrt(2))
    assert distance[0, 0] == 0 and distance[-1, -1] > 70
    assert np.all(np.isinf(distance_to_objects(np.zeros((8, 8), np.uint8), BACKGROUNDS)))


def _runs(backgrounds, objects, seeds=3, spread=1.0):
    """Per-class IoU per seed: backgrounds and objects at the given levels, +-spread."""
    offsets = np.linspace(-spread, spread, seeds)
    n = CLASSES.num_classes
    return [[(backgrounds if c in BACKGROUNDS else objects) + o for c in range(n)] for o in offsets]


def test_summary_rows_and_verdict():
    results = {"fcn": _runs(70.0, 60.0), "encnet": _runs(95.0, 62.0)}
    rows, verdict, gap, spread = summarize(results, CLASSES, BACKGROUNDS)
    assert [r[0] for r in rows[: CLASSES.num_classes]] == list(CLASSES.names)
    look = next(r for r in rows if r[0] == "look-alike backgrounds")
    assert look[1] == " 70.0 ±  1.0" and look[2] == " 95.0 ±  1.0" and look[3] == "+25.0"
    assert gap == 25.0 and spread == 1.0
    assert "gap > 2 x std: yes" in verdict and "gap >= 5: yes" in verdict


def test_verdict_says_no_when_the_gap_is_within_the_noise():
    results = {"fcn": _runs(90.0, 60.0, spread=4.0), "encnet": _runs(96.0, 60.0, spread=1.0)}
    _, verdict, gap, spread = summarize(results, CLASSES, BACKGROUNDS)
    assert gap == 6.0 and spread == 4.0
    assert "gap > 2 x std: NO" in verdict and "gap >= 5: yes" in verdict


def test_object_errors_split_object_pixels_into_right_background_and_other_object():
    from benchmarks.context import object_errors

    label = np.zeros((4, 4), np.uint8)
    label[0, :] = 4  # four umbrella pixels
    prediction = label.copy()
    prediction[0, 1] = 0  # one labelled sand
    prediction[0, 2] = 5  # one labelled tractor
    assert object_errors(label, prediction, BACKGROUNDS).tolist() == [2, 1, 1]


def test_object_rows_average_each_model_over_its_seeds():
    from benchmarks.context import object_rows

    objects = [c for c in range(CLASSES.num_classes) if c not in BACKGROUNDS]
    runs = [
        {
            "arch": "encnet",
            "iou": [60.0 + s if c in objects else 99.0 for c in range(8)],
            "objects": [80.0 + s, 15.0, 5.0 - s],
            "mixed": [50.0, 10.0, 40.0],
        }
        for s in (0.0, 2.0)
    ] + [
        {"arch": "encnet_no_se_loss", "iou": [70.0] * 8, "objects": [90, 5, 5], "mixed": [9, 1, 90]}
    ]
    rows = {r[0]: r for r in object_rows(runs, BACKGROUNDS, CLASSES.num_classes)}
    assert set(rows) == {"encnet", "encnet_no_se_loss"}  # no row for a model not run
    assert rows["encnet"][1:4] == ["2", " 61.0 ±  1.4", " 81.0 ±  1.4"]
    assert (
        rows["encnet_no_se_loss"][1:3] == ["1", " 70.0"]
        and rows["encnet_no_se_loss"][-1] == " 90.0"
    )
