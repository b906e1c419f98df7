"""PyTorch-Encoding EncNet / FCN weights in and out of enc_tf models.

The original's module paths (`pretrained.*`, `head.*`, `auxlayer.*`) for each of
our layers; the file reading and module maps live in `enc_tf.state_dicts`, the
layout check in `enc_tf.convert.formats`.
"""

import numpy as np

from enc_tf.backbones.imagenet import TIMM_STEM
from enc_tf.convert.formats import check_format
from enc_tf.models.encnet import (
    AUX_HEAD,
    BACKBONE_NAME,
    ENC_HEAD,
    FCN_HEAD,
    build_encnet,
    build_fcn,
)
from enc_tf.state_dicts import (
    conv_bn_map,
    deep_stem_module_map,
    load_state_dict,
    stage_depth,
    state_dict_from_mapping,
)

FORMAT = "pytorch-encoding"


def backbone_module_map(backbone, prefix="pretrained."):
    """`{torch module path: Keras layer}` for the weight-bearing backbone layers."""
    return deep_stem_module_map(backbone, prefix, TIMM_STEM)


def _conv_bn_map(prefix, block, conv_index="0", bn_index="1"):
    return conv_bn_map(f"{prefix}.{conv_index}", f"{prefix}.{bn_index}", block)


def _fcn_head_map(prefix, head):
    # The original: Sequential(conv3x3, BN, ReLU, Dropout, conv1x1).
    return {**_conv_bn_map(prefix, head.block), f"{prefix}.4": head.classifier}


def module_map(model):
    """`{torch module path: Keras layer}` for a model from `build_encnet`/`build_fcn`."""
    mapping = backbone_module_map(model.get_layer(BACKBONE_NAME))
    names = {layer.name for layer in model.layers}
    if ENC_HEAD in names:
        head = model.get_layer(ENC_HEAD)
        enc = head.enc_module
        mapping.update(_conv_bn_map("head.conv5", head.conv5))
        if head.lateral:
            mapping.update(_conv_bn_map("head.connect.0", head.lateral_c2))
            mapping.update(_conv_bn_map("head.connect.1", head.lateral_c3))
            mapping.update(_conv_bn_map("head.fusion", head.fusion))
        mapping.update(_conv_bn_map("head.encmodule.encoding", enc.project))
        mapping["head.encmodule.encoding.3"] = enc.encoding
        mapping["head.encmodule.encoding.4"] = enc.bn_codes
        mapping["head.encmodule.fc.0"] = enc.fc
        if enc.se_head is not None:
            mapping["head.encmodule.selayer"] = enc.se_head
        mapping["head.conv6.1"] = head.classifier
    elif FCN_HEAD in names:
        mapping.update(_fcn_head_map("head.conv5", model.get_layer(FCN_HEAD)))
    else:
        raise ValueError(f"Model {model.name!r} has neither an 'enc_head' nor an 'fcn_head' layer.")
    if AUX_HEAD in names:
        mapping.update(_fcn_head_map("auxlayer.conv5", model.get_layer(AUX_HEAD)))
    return mapping


def state_dict_from_model(model, batches_tracked=False):
    """The PyTorch-Encoding state_dict `{key: float32 array}` of one of our models.

    The inverse of `load_state_dict(module_map(model), ...)`, for moving weights
    trained here back to the original code. `num_batches_tracked` (int64 0) is
    written only when `batches_tracked`.
    """
    return state_dict_from_mapping(module_map(model), batches_tracked)


def infer_config(state):
    """Infers the builder arguments of a PyTorch-Encoding EncNet/FCN state_dict.

    Returns:
        Dict with `model` (`encnet` or `fcn`), `backbone`, `num_classes`,
        `aux`, and for EncNet `se_loss`, `lateral`, `num_codes`.
    """
    check_format(state, FORMAT, "the state_dict")
    stem = state.get("pretrained.conv1.0.weight")
    if stem is None or tuple(np.shape(stem))[1:] != (3, 3, 3):
        raise ValueError(
            "Not a PyTorch-Encoding deep-stem ('resnet50s'/'resnet101s') checkpoint: "
            "'pretrained.conv1.0.weight' of shape (64, 3, 3, 3) is missing."
        )
    config = {
        "backbone": f"resnet{stage_depth(state, 'pretrained.')}s",
        "aux": "auxlayer.conv5.0.weight" in state,
    }
    if "head.conv6.1.weight" in state:
        config.update(
            model="encnet",
            num_classes=int(np.shape(state["head.conv6.1.weight"])[0]),
            se_loss="head.encmodule.selayer.weight" in state,
            lateral="head.connect.0.0.weight" in state,
            num_codes=int(np.shape(state["head.encmodule.encoding.3.codewords"])[0]),
        )
    elif "head.conv5.4.weight" in state:
        config.update(model="fcn", num_classes=int(np.shape(state["head.conv5.4.weight"])[0]))
    else:
        raise ValueError(
            "Neither an EncNet head ('head.conv6.1.weight') nor an FCN head "
            "('head.conv5.4.weight') found."
        )
    return config


def build_from_state(state, output_stride=8, source="state_dict", **overrides):
    """Builds the model a state_dict describes and loads it.

    Args:
        state: `{torch key: array}`.
        output_stride: 8 or 16 (not stored in the weights).
        source: description for messages.
        **overrides: builder arguments that replace inferred ones.

    Returns:
        `(model, config)`.
    """
    config = {**infer_config(state), **overrides}
    kwargs = {k: v for k, v in config.items() if k != "model"}
    builder = build_encnet if config["model"] == "encnet" else build_fcn
    model = builder(output_stride=output_stride, **kwargs)
    load_state_dict(module_map(model), state, source)
    return model, {**config, "output_stride": output_stride}


def load_backbone_state(backbone, state, source="state_dict"):
    """Loads the original's ImageNet resnet50s/101s checkpoint into a backbone.

    Accepts keys with or without the `pretrained.` prefix; the classifier
    (`fc.*`) is skipped.
    """
    state = {
        (key if key.startswith("pretrained.") else "pretrained." + key): value
        for key, value in state.items()
        if not key.startswith(("fc.", "pretrained.fc."))
    }
    load_state_dict(backbone_module_map(backbone), state, source)
