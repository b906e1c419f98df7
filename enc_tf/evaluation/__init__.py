"""Evaluation with the paper's protocol (EncNet paper, Section 4.1)."""

from enc_tf.evaluation.multi_scale import evaluate_multi_scale
from enc_tf.evaluation.report import confusion_picture, write_report
from enc_tf.evaluation.single_scale import evaluate, format_scores

__all__ = ["confusion_picture", "evaluate", "evaluate_multi_scale", "format_scores", "write_report"]
