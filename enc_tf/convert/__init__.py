"""Torch checkpoints in and out of enc_tf models: the original PyTorch-Encoding's
(names at this level) and MMSegmentation's EncNet (`enc_tf.convert.mmseg`)."""

from enc_tf.convert import mmseg
from enc_tf.convert.pytorch_encoding import (
    backbone_module_map,
    build_from_state,
    infer_config,
    load_backbone_state,
    module_map,
    state_dict_from_model,
)
from enc_tf.convert.torch_state import (
    checkpoint_format,
    load_state_dict,
    read_checkpoint_file,
    read_state_dict,
    write_state_dict,
)

__all__ = [
    "backbone_module_map",
    "build_from_state",
    "checkpoint_format",
    "infer_config",
    "load_backbone_state",
    "load_state_dict",
    "mmseg",
    "module_map",
    "read_checkpoint_file",
    "read_state_dict",
    "state_dict_from_model",
    "write_state_dict",
]
