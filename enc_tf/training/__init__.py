"""Training: the model.fit trainer (its configuration types live in `enc_tf.config`, the
original's optimizer recipe in `enc_tf.optimizers`)."""

from enc_tf.training.trainer import build_model, train

__all__ = ["build_model", "train"]
