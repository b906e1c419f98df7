"""The label contract: presence targets, the SE head's target."""

import numpy as np

from enc_tf.contracts.labels import presence_targets


def test_presence_targets():
    labels = np.array([[[0, 2], [2, 255]], [[255, 255], [1, 7]]])
    expected = np.array([[1, 0, 1, 0], [0, 1, 0, 0]], "float32")  # 7 is out of range: not counted
    np.testing.assert_array_equal(presence_targets(labels, 4), expected)
    np.testing.assert_array_equal(
        presence_targets(np.where(labels == 255, -1, labels), 4, ignore_index=-1), expected
    )
    np.testing.assert_array_equal(presence_targets(labels[..., None], 4), expected)
