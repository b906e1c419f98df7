"""Model builders."""

from enc_tf.models.encnet import build_encnet, build_fcn

__all__ = ["build_encnet", "build_fcn"]
