"""Evaluation with the paper's protocol."""

from enc_tf.evaluation.single_scale import evaluate, format_scores

__all__ = ["evaluate", "format_scores"]
