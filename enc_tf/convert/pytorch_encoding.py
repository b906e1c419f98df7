"""Loading PyTorch-Encoding EncNet / FCN weights into enc_tf models.

Every torch key maps to one Keras variable: conv kernels OIHW -> HWIO, Linear
`(out, in)` -> `(in, out)`, BatchNorm weight/bias/running_mean/running_var ->
gamma/beta/moving_mean/moving_variance, Encoding codewords and scale as they
are. `num_batches_tracked` buffers are ignored.
"""

import logging
import os
import re

import keras
import numpy as np

from enc_tf.layers.encoding import Encoding
from enc_tf.models.encnet import (
    AUX_HEAD,
    BACKBONE_NAME,
    ENC_HEAD,
    FCN_HEAD,
    build_encnet,
    build_fcn,
)
from enc_tf.models.saving import save_model_atomic

logger = logging.getLogger(__name__)

_STEM = {
    "stem_conv1": "conv1.0",
    "stem_bn1": "conv1.1",
    "stem_conv2": "conv1.3",
    "stem_bn2": "conv1.4",
    "stem_conv3": "conv1.6",
    "stem_bn3": "bn1",
}
_BLOCK = re.compile(r"layer(\d)_(\d+)_(conv\d|bn\d|down_conv|down_bn)")
_DEPTHS = {6: 50, 23: 101}


def _backbone_torch_prefix(layer_name):
    """`layer3_0_down_conv` -> `layer3.0.downsample.0` (the original's module path)."""
    if layer_name in _STEM:
        return _STEM[layer_name]
    match = _BLOCK.fullmatch(layer_name)
    if match is None:
        raise ValueError(
            f"Layer {layer_name!r} is not part of a resnet50s/resnet101s "
            "backbone; PyTorch-Encoding "
            "weights load only into the deep-stem ('s') backbones."
        )
    part = {"down_conv": "downsample.0", "down_bn": "downsample.1"}.get(match[3], match[3])
    return f"layer{match[1]}.{match[2]}.{part}"


def backbone_module_map(backbone, prefix="pretrained."):
    """`{torch module path: Keras layer}` for the weight-bearing backbone layers."""
    return {
        prefix + _backbone_torch_prefix(layer.name): layer
        for layer in backbone.layers
        if layer.weights
    }


def _conv_bn_map(prefix, block, conv_index="0", bn_index="1"):
    return {f"{prefix}.{conv_index}": block.conv, f"{prefix}.{bn_index}": block.bn}


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


_IDENTITY = (np.asarray, np.asarray)
_OIHW = (lambda w: np.transpose(w, (2, 3, 1, 0)), lambda k: np.transpose(k, (3, 2, 0, 1)))
_LINEAR = (np.transpose, np.transpose)


def _layer_params(layer):
    """`{torch suffix: (keras variable, (torch -> keras, keras -> torch))}` of one layer."""
    if isinstance(layer, keras.layers.Conv2D):
        params = {"weight": (layer.kernel, _OIHW)}
    elif isinstance(layer, keras.layers.Dense):
        params = {"weight": (layer.kernel, _LINEAR)}
    elif isinstance(layer, keras.layers.BatchNormalization):
        return {
            "weight": (layer.gamma, _IDENTITY),
            "bias": (layer.beta, _IDENTITY),
            "running_mean": (layer.moving_mean, _IDENTITY),
            "running_var": (layer.moving_variance, _IDENTITY),
        }
    elif isinstance(layer, Encoding):
        return {"codewords": (layer.codewords, _IDENTITY), "scale": (layer.scale, _IDENTITY)}
    else:
        raise TypeError(
            f"No torch mapping for layer {layer.name!r} of type {type(layer).__name__}."
        )
    if layer.use_bias:
        params["bias"] = (layer.bias, _IDENTITY)
    return params


def _expected_params(mapping):
    return {
        f"{prefix}.{suffix}": param
        for prefix, layer in mapping.items()
        for suffix, param in _layer_params(layer).items()
    }


def state_dict_from_model(model):
    """The PyTorch-Encoding state_dict `{key: float32 array}` of one of our models.

    The inverse of `load_state_dict(module_map(model), ...)`, for moving weights
    trained here back to the original code. `num_batches_tracked` is not written.
    """
    return {
        key: np.ascontiguousarray(to_torch(np.asarray(variable.numpy(), np.float32)))
        for key, (variable, (_, to_torch)) in _expected_params(module_map(model)).items()
    }


def load_state_dict(mapping, state, source="state_dict"):
    """Assigns torch arrays to the Keras variables named by `mapping`.

    Args:
        mapping: `{torch module path: Keras layer}`.
        state: `{torch key: array}`.
        source: description of `state` for error messages (e.g. its path).

    Raises:
        ValueError: listing every missing, unexpected and mis-shaped key; no
            variable is changed in that case.
    """
    expected = _expected_params(mapping)
    present = {k for k in state if not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - present)
    unexpected = sorted(present - set(expected))
    values, mis_shaped = {}, []
    for key in sorted(set(expected) & present):
        variable, (to_keras, _) = expected[key]
        value = to_keras(np.asarray(state[key]))
        if tuple(value.shape) != tuple(variable.shape):
            mis_shaped.append(
                f"{key}: {tuple(np.shape(state[key]))} -> {tuple(value.shape)}, "
                f"model wants {tuple(variable.shape)}"
            )
        else:
            values[key] = value.astype(variable.dtype)
    if missing or unexpected or mis_shaped:
        raise ValueError(
            f"{source} does not match the model: {len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(mis_shaped)} mis-shaped keys.\n  missing: {missing}\n"
            f"  unexpected: {unexpected}\n  mis-shaped: {mis_shaped}"
        )
    for key, value in values.items():
        expected[key][0].assign(value)
    logger.info("Loaded %d arrays from %s", len(values), source)


def read_state_dict(path):
    """Reads a state_dict from `.npz` (arrays keyed by torch names) or `.pth`/`.pt`.

    `.pth` needs `torch` (optional). Checkpoints that nest the weights under
    `state_dict` or `model`, and `module.` prefixes of DataParallel, are accepted.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint not found: {path!r}")
    if path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as data:
                state = {key: data[key] for key in data.files}
        except (OSError, ValueError) as err:
            raise ValueError(f"{path!r} is not a readable .npz file: {err}") from err
    elif path.endswith((".pth", ".pt", ".pth.tar")):
        try:
            import torch
        except ImportError as err:
            raise ImportError(
                f"Reading {path!r} needs torch, which is not installed. Install it, or save the "
                "state_dict as .npz: np.savez(out, **{k: v.numpy() for k, v in sd.items()})."
            ) from err
        raw = torch.load(path, map_location="cpu", weights_only=True)
        for nested in ("state_dict", "model"):
            if isinstance(raw, dict) and isinstance(raw.get(nested), dict):
                raw = raw[nested]
        state = {key: value.detach().cpu().numpy() for key, value in raw.items()}
    else:
        raise ValueError(f"Unknown checkpoint format {path!r}: expected .npz, .pth or .pt.")
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    if not state:
        raise ValueError(f"{path!r} holds no arrays.")
    return state


def infer_config(state):
    """Infers the builder arguments of a PyTorch-Encoding EncNet/FCN state_dict.

    Returns:
        Dict with `model` (`encnet` or `fcn`), `backbone`, `num_classes`,
        `aux`, and for EncNet `se_loss`, `lateral`, `num_codes`.
    """
    stem = state.get("pretrained.conv1.0.weight")
    if stem is None or tuple(np.shape(stem))[1:] != (3, 3, 3):
        raise ValueError(
            "Not a PyTorch-Encoding deep-stem ('resnet50s'/'resnet101s') checkpoint: "
            "'pretrained.conv1.0.weight' of shape (64, 3, 3, 3) is missing."
        )
    blocks = {int(m[1]) for k in state if (m := re.match(r"pretrained\.layer3\.(\d+)\.", k))}
    if len(blocks) not in _DEPTHS:
        raise ValueError(
            f"Stage 3 has {len(blocks)} blocks; expected 6 (ResNet50) or 23 (ResNet101)."
        )
    config = {
        "backbone": f"resnet{_DEPTHS[len(blocks)]}s",
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


def convert_checkpoint(src, out, output_stride=8, **overrides):
    """Converts a PyTorch-Encoding checkpoint file into a `.keras` model file.

    Returns:
        The config that was inferred (with overrides applied).
    """
    model, config = build_from_state(read_state_dict(src), output_stride, source=src, **overrides)
    save_model_atomic(model, out)
    return config
