"""Weight conversion from the original PyTorch-Encoding into enc_tf models."""

from enc_tf.convert.pytorch_encoding import (
    backbone_module_map,
    build_from_state,
    convert_checkpoint,
    infer_config,
    load_backbone_state,
    load_state_dict,
    module_map,
    read_state_dict,
    save_model_atomic,
    state_dict_from_model,
)

__all__ = [
    "backbone_module_map",
    "build_from_state",
    "convert_checkpoint",
    "infer_config",
    "load_backbone_state",
    "load_state_dict",
    "module_map",
    "read_state_dict",
    "save_model_atomic",
    "state_dict_from_model",
]
