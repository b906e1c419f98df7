"""Segmentation metrics from a streaming confusion matrix (EncNet paper, Section 4.1).

`pixAcc = correct labelled pixels / labelled pixels`; `IoU_c = TP_c / (TP_c +
FP_c + FN_c)` accumulated over the whole dataset. Two mIoU conventions exist:
the original averages all classes (a class that never occurs counts 0);
MMSegmentation averages the classes that occur in ground truth or prediction.
`segmentation_scores` reports both, named so.
"""

import keras
import numpy as np
from keras import ops

from enc_tf.contracts.labels import IGNORE_INDEX


def confusion_matrix(labels, logits, num_classes, ignore_index=IGNORE_INDEX):
    """`(C, C)` int64 counts: rows are ground truth, columns predictions.

    Args:
        labels: `(B, H, W)` (or `(B, H, W, 1)`) integer labels.
        logits: `(B, H, W, C)` scores (argmax is taken) or `(B, H, W)` predictions.
    """
    labels = ops.cast(labels, "int64")
    if len(labels.shape) == 4:
        labels = ops.squeeze(labels, -1)
    predictions = ops.cast(
        ops.argmax(logits, axis=-1) if len(logits.shape) == 4 else logits, "int64"
    )
    labels, predictions = ops.reshape(labels, (-1,)), ops.reshape(predictions, (-1,))
    valid = (labels >= 0) & (labels < num_classes) & (labels != ignore_index)
    index = ops.where(valid, labels * num_classes + predictions, num_classes * num_classes)
    counts = ops.bincount(index, minlength=num_classes * num_classes + 1)
    return ops.reshape(
        ops.cast(counts[: num_classes * num_classes], "int64"), (num_classes, num_classes)
    )


def segmentation_scores(matrix, class_names=None):
    """Every number of the evaluation protocol from a confusion matrix (NumPy).

    Returns:
        Dict: `pixel_accuracy`, `mean_iou` (the original's: mean over all
        classes, absent ones count 0), `mean_iou_present` (mean over classes
        present in ground truth or prediction), `frequency_weighted_iou`,
        `mean_class_accuracy`, `per_class_iou` (NaN where a class is in
        neither), and `class_names` when given.
    """
    matrix = np.asarray(matrix, np.float64)
    tp = np.diag(matrix)
    gt = matrix.sum(1)
    pred = matrix.sum(0)
    union = gt + pred - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        class_acc = np.where(gt > 0, tp / gt, np.nan)
    total = matrix.sum()
    scores = {
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "mean_iou": float(np.nan_to_num(iou, nan=0.0).mean()),
        "mean_iou_present": float(np.nanmean(iou)) if np.any(union > 0) else float("nan"),
        "frequency_weighted_iou": float(np.nansum(gt / max(total, 1) * iou)),
        "mean_class_accuracy": float(np.nanmean(class_acc)) if np.any(gt > 0) else float("nan"),
        "per_class_iou": iou.tolist(),
    }
    if class_names is not None:
        scores["class_names"] = list(class_names)
    return scores


class _ConfusionMatrixMetric(keras.metrics.Metric):
    """Accumulates the confusion matrix of argmax predictions, summed across replicas."""

    def __init__(self, num_classes, ignore_index=IGNORE_INDEX, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        # int64: float32 counts stop being exact at 2^24 pixels. Summed across replicas.
        self.matrix = self.add_variable(
            shape=(self.num_classes, self.num_classes),
            initializer="zeros",
            dtype="int64",
            aggregation="sum",
            name="confusion_matrix",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        del sample_weight
        self.matrix.assign_add(
            confusion_matrix(y_true, y_pred, self.num_classes, self.ignore_index)
        )

    def reset_state(self):
        self.matrix.assign(ops.zeros_like(self.matrix))

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
        }


@keras.saving.register_keras_serializable(package="enc_tf")
class PixelAccuracy(_ConfusionMatrixMetric):
    """pixAcc: correct labelled pixels / labelled pixels (ignore excluded)."""

    def __init__(self, num_classes, ignore_index=IGNORE_INDEX, name="pixel_accuracy", **kwargs):
        super().__init__(num_classes, ignore_index, name=name, **kwargs)

    def result(self):
        m = ops.cast(self.matrix, "float64")
        return ops.cast(ops.divide_no_nan(ops.trace(m), ops.sum(m)), "float32")


@keras.saving.register_keras_serializable(package="enc_tf")
class MeanIoU(_ConfusionMatrixMetric):
    """mIoU over the whole dataset; `present_only=False` is the original's convention."""

    def __init__(
        self, num_classes, ignore_index=IGNORE_INDEX, present_only=False, name="mean_iou", **kwargs
    ):
        super().__init__(num_classes, ignore_index, name=name, **kwargs)
        self.present_only = bool(present_only)

    def result(self):
        m = ops.cast(self.matrix, "float64")
        tp = ops.diagonal(m)
        union = ops.sum(m, 0) + ops.sum(m, 1) - tp
        iou = ops.divide_no_nan(tp, union)
        if self.present_only:
            present = ops.cast(union > 0, "float64")
            return ops.cast(ops.divide_no_nan(ops.sum(iou * present), ops.sum(present)), "float32")
        return ops.cast(ops.mean(iou), "float32")

    def get_config(self):
        return {**super().get_config(), "present_only": self.present_only}


def label_confusion(labels, predictions, num_classes, ignore_index=IGNORE_INDEX):
    """`(C, C)` int64 confusion counts (NumPy) of one `(H, W)` label map and its
    `(H, W)` prediction."""
    labels, predictions = np.asarray(labels)[None], np.asarray(predictions)[None]
    return np.asarray(confusion_matrix(labels, predictions, num_classes, ignore_index))
