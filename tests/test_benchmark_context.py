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
