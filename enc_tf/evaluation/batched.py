"""Evaluation of a Keras model over a batched dataset (single scale, as in training's
validation) with a streaming confusion matrix."""

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
