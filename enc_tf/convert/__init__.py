"""Torch checkpoints in and out of enc_tf models: the original PyTorch-Encoding's
(names at this level) and MMSegmentation's EncNet (`enc_tf.convert.mmseg`)."""

from enc_tf.convert import mmseg
from enc_tf.convert.formats import checkpoint_format
from enc_tf.convert.pytorch_encoding import (
    backbone_module_map,
    build_from_state,
    infer_config,
    load_backbone_state,
    module_map,
    state_dict_from_model,
)

__all__ = [
    "backbone_module_map",
    "build_from_state",
    "checkpoint_format",
    "infer_config",
    "load_backbone_state",
    "mmseg",
    "module_map",
    "state_dict_from_model",
]
