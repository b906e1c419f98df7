"""Checking a whole dataset before training, reporting every problem at once."""

import numpy as np

from enc_tf.data.io import DataError, read_pair


def check_source(source, progress=None):
    """Reads every sample of a `SegmentationSource` and collects the problems; calls
    `progress(done, total)` after each sample when given.

    Returns:
        `(problems, class_pixels)`: a list of messages naming files and values
        (empty when the dataset is sound), and the pixel count of each class
        over the readable samples (index `num_classes` counts ignored pixels).
    """
    problems = list(source.problems)  # images without a mask (a source made with strict=False)
    counts = np.zeros(source.num_classes + 1, np.int64)
    for done, (image_path, label_path) in enumerate(source.samples, 1):
        try:
            _, label = read_pair(image_path, label_path, source.lookup, source.ignore_index)
        except DataError as err:
            problems.append(str(err))
        else:
            values = np.where(label == source.ignore_index, source.num_classes, label)
            counts += np.bincount(values.ravel(), minlength=source.num_classes + 1)
        if progress is not None:
            progress(done, len(source.samples))
    return problems, counts


def summarize(source, counts):
    """A short per-class pixel report."""
    total = max(int(counts.sum()), 1)
    lines = []
    for index, name in enumerate(source.classes.names):
        lines.append(f"  {index:3d} {name:<24s} {100.0 * counts[index] / total:6.2f}%")
    lines.append(f"  ignored{'':<22s}{100.0 * counts[-1] / total:6.2f}%")
    return "\n".join(lines)
