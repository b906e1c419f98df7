"""Scores over a dataset with the whole-image predictor (`enc_tf.protocols`): `enc-eval`."""

import numpy as np
import tensorflow as tf

from enc_tf.console import ProgressBar
from enc_tf.contracts.labels import IGNORE_INDEX
from enc_tf.metrics import label_confusion, segmentation_scores


def evaluate_protocol(
    predictor,
    examples,
    ignore_index=IGNORE_INDEX,
    class_names=None,
    strategy=None,
    progress=True,
    native_resolution=False,
    total=None,
):
    """Scores over a dataset with a whole-image predictor (any protocol).

    Args:
        predictor: a `PaperPredictor` or `MMSegPredictor`: `num_classes`
            and `predict(image) -> (H, W)` labels.
        examples: `(image, label)` pairs, one image at a time: a normalised
            `(H, W, 3)` image and its `(H, W)` labels at the original size, e.g.
            `build_dataset(source, "eval", PipelineConfig(batch_size=1), False, False).unbatch()`
            mapped to `(image, targets["seg"])`.
        strategy: a multi-worker strategy whose workers each evaluated their
            own shard: the confusion matrices are summed across workers.
        progress: True for a progress bar (`enc_tf.console.ProgressBar`), or a callable
            `progress(done, total)`, or False.
        native_resolution: use each image's own long side as the base size
            (`PaperPredictor` single-scale evaluation without resizing).
        total: the number of examples, for the progress bar.

    Returns:
        `(scores, matrix)` as `evaluate`.
    """
    c = predictor.num_classes
    matrix = np.zeros((c, c), np.int64)
    bar = ProgressBar("images", "evaluating") if progress is True else (progress or None)
    seen = 0
    for seen, (image, label) in enumerate(examples, 1):
        image = np.asarray(image)
        if native_resolution:
            prediction = predictor.predict(image, max(image.shape[:2]))
        else:
            prediction = predictor.predict(image)
        matrix += label_confusion(np.asarray(label), prediction, c, ignore_index)
        if bar is not None:
            bar(seen, total)
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        matrix = strategy.reduce("SUM", tf.constant(matrix), axis=None).numpy()
    return segmentation_scores(matrix, class_names), matrix
