"""Torch state_dicts: reading and writing their files (`files`), and moving their arrays
into and out of Keras layers through module maps (`mapping`). Shared by the ImageNet
backbone loader and the checkpoint converters."""

from enc_tf.state_dicts.files import read_checkpoint, read_state_dict, write_state_dict
from enc_tf.state_dicts.mapping import (
    conv_bn_map,
    deep_stem_module_map,
    load_state_dict,
    stage_depth,
    state_dict_from_mapping,
)

__all__ = [
    "conv_bn_map",
    "deep_stem_module_map",
    "load_state_dict",
    "read_checkpoint",
    "read_state_dict",
    "stage_depth",
    "state_dict_from_mapping",
    "write_state_dict",
]
