"""The label contract: label maps hold class indices, and one value means "ignore this pixel"."""

from keras import ops

IGNORE_INDEX = 255  # the ignore value of every dataset enc_tf reads (VOC's boundary value)


def presence_targets(labels, num_classes, ignore_index=IGNORE_INDEX):
    """Multi-hot class presence of each label map, the SE head's target.

    Args:
        labels: `(B, H, W)` (or `(B, H, W, 1)`) integer label maps.
        num_classes: int.
        ignore_index: label value that marks pixels to ignore.

    Returns:
        `(B, num_classes)` float32, 1 where class `c` occurs among the image's
        non-ignored pixels. Values outside `[0, num_classes)` are not counted.
    """
    labels = ops.cast(labels, "int32")
    labels = ops.reshape(labels, (ops.shape(labels)[0], -1))
    valid = (labels >= 0) & (labels < num_classes) & (labels != ignore_index)
    # Everything else goes to an extra bin that is dropped.
    binned = ops.where(valid, labels, num_classes)
    counts = ops.bincount(binned, minlength=num_classes + 1)
    return ops.cast(counts[:, :num_classes] > 0, "float32")
