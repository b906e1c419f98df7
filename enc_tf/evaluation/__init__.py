"""Evaluation with the paper's protocol (SPEC §8)."""

from enc_tf.evaluation.multi_scale import (
    CITYSCAPES_SCALES,
    PAPER_SCALES,
    MultiScaleConfig,
    MultiScalePredictor,
    evaluate_multi_scale,
    label_confusion,
)
from enc_tf.evaluation.report import confusion_picture, write_report
from enc_tf.evaluation.single_scale import evaluate, format_scores

__all__ = [
    "CITYSCAPES_SCALES", "PAPER_SCALES", "MultiScaleConfig", "MultiScalePredictor", "confusion_picture", "evaluate",
    "evaluate_multi_scale", "format_scores", "label_confusion", "write_report",
]
