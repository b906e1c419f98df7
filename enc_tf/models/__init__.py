"""Model builders."""

from enc_tf.models.encnet import build_encnet, build_fcn
from enc_tf.models.saving import save_model_atomic

__all__ = ["build_encnet", "build_fcn", "save_model_atomic"]
