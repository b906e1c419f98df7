"""Single-scale evaluation over a whole dataset with a streaming confusion matrix."""

import numpy as np
import tensorflow as tf

from enc_tf.contracts.labels import IGNORE_INDEX
from enc_tf.metrics import confusion_matrix, segmentation_scores


def evaluate(model, dataset, num_classes, ignore_index=IGNORE_INDEX, class_names=None):
    """pixAcc, IoU per class and mIoU (both conventions) of `model` on `dataset`.

    Args:
        model: a model whose output dict has `seg` logits at the input size.
        dataset: batches of `(images, targets)` with `targets["seg"]` labels,
            e.g. `build_dataset(source, "eval", ...)`.

    Returns:
        `(scores, matrix)`: the dict of `segmentation_scores` and the `(C, C)`
        int64 confusion matrix.
    """

    @tf.function
    def batch_matrix(images, labels):
        return confusion_matrix(
            labels, model(images, training=False)["seg"], num_classes, ignore_index
        )

    matrix = np.zeros((num_classes, num_classes), np.int64)
    for images, targets in dataset:
        matrix += batch_matrix(images, targets["seg"]).numpy()
    return segmentation_scores(matrix, class_names), matrix


def format_scores(scores):
    """A terminal table: per-class IoU with names, then the summary numbers."""
    names = scores.get("class_names") or [str(i) for i in range(len(scores["per_class_iou"]))]
    lines = [f"{'class':<20s} {'IoU':>7s}"]
    for name, iou in zip(names, scores["per_class_iou"]):
        lines.append(f"{name:<20s} {'   n/a' if np.isnan(iou) else f'{100 * iou:6.2f}'}")
    lines.append(
        f"pixAcc {100 * scores['pixel_accuracy']:.2f}  "
        f"mIoU {100 * scores['mean_iou']:.2f} (original: mean over all classes)  "
        f"mIoU {100 * scores['mean_iou_present']:.2f} (classes present)"
    )
    return "\n".join(lines)
