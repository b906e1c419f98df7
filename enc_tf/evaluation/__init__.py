"""Evaluation with the paper's protocol (EncNet paper, Section 4.1)."""

from enc_tf.evaluation.batched import evaluate
from enc_tf.evaluation.protocol import evaluate_protocol
from enc_tf.evaluation.report import confusion_picture, format_scores, write_report

__all__ = ["confusion_picture", "evaluate", "evaluate_protocol", "format_scores", "write_report"]
