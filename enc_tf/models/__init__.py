"""Model builders."""

from enc_tf.models.encnet import AUX_HEAD, BACKBONE_NAME, ENC_HEAD, FCN_HEAD, HEAD_LAYERS, build_encnet, build_fcn
from enc_tf.models.saving import save_model_atomic

__all__ = [
    "AUX_HEAD", "BACKBONE_NAME", "ENC_HEAD", "FCN_HEAD", "HEAD_LAYERS", "build_encnet", "build_fcn", "save_model_atomic",
]
