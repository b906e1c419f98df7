"""Torch state_dicts <-> Keras layers: the module maps every torch-layout reader shares.

A reader (a converter, the ImageNet backbone loader) describes a model as
`{torch module path: Keras layer}` (a "module map"); from it, each torch key maps to one
Keras variable: conv kernels OIHW -> HWIO, Linear `(out, in)` -> `(in, out)`, BatchNorm
weight/bias/running_mean/running_var -> gamma/beta/moving_mean/moving_variance, Encoding
codewords and scale as they are. `num_batches_tracked` buffers carry nothing a Keras model
uses: they are ignored on the way in and written as 0 on the way out.
"""

import logging
import re

import keras
import numpy as np

from enc_tf.layers.encoding import Encoding

logger = logging.getLogger(__name__)

BATCHES_TRACKED = "num_batches_tracked"
DEPTHS = {6: 50, 23: 101}  # blocks in stage 3 -> ResNet depth
_BLOCK = re.compile(r"layer(\d)_(\d+)_(conv\d|bn\d|down_conv|down_bn)")

_IDENTITY = (np.asarray, np.asarray)
_OIHW = (lambda w: np.transpose(w, (2, 3, 1, 0)), lambda k: np.transpose(k, (3, 2, 0, 1)))
_LINEAR = (np.transpose, np.transpose)


def stage_depth(state, prefix):
    """ResNet depth from the number of blocks under `{prefix}layer3.`."""
    pattern = re.compile(re.escape(prefix) + r"layer3\.(\d+)\.")
    blocks = {int(m[1]) for key in state if (m := pattern.match(key))}
    if len(blocks) not in DEPTHS:
        raise ValueError(
            f"Stage 3 ({prefix}layer3.*) has {len(blocks)} blocks; expected 6 (ResNet50) "
            "or 23 (ResNet101)."
        )
    return DEPTHS[len(blocks)]


def deep_stem_module_map(backbone, prefix, stem_table):
    """`{torch module path: Keras layer}` of a deep-stem backbone's weight-bearing layers.

    Args:
        backbone: a `resnet*s` / `resnet*v1c` backbone from `build_backbone`.
        prefix: the torch path of the backbone (`pretrained.`, `backbone.`).
        stem_table: `{Keras stem layer name: torch path below prefix}`.
    """
    mapping = {}
    for layer in backbone.layers:
        if not layer.weights:
            continue
        if layer.name in stem_table:
            mapping[prefix + stem_table[layer.name]] = layer
            continue
        match = _BLOCK.fullmatch(layer.name)
        if match is None:
            raise ValueError(
                f"Layer {layer.name!r} is not part of a deep-stem ResNet (resnet50s, resnet101s, "
                "resnet50v1c, resnet101v1c); torch checkpoints load only into those backbones."
            )
        part = {"down_conv": "downsample.0", "down_bn": "downsample.1"}.get(match[3], match[3])
        mapping[f"{prefix}layer{match[1]}.{match[2]}.{part}"] = layer
    return mapping


def conv_bn_map(conv_path, bn_path, block):
    """The two entries of a `ConvBNReLU` block."""
    return {conv_path: block.conv, bn_path: block.bn}


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


def expected_params(mapping):
    """`{torch key: (Keras variable, (to Keras, to torch))}` of a module map."""
    return {
        f"{prefix}.{suffix}": param
        for prefix, layer in mapping.items()
        for suffix, param in _layer_params(layer).items()
    }


def state_dict_from_mapping(mapping, batches_tracked=False):
    """The torch state_dict `{key: array}` of the layers of a module map.

    Args:
        mapping: `{torch module path: Keras layer}`.
        batches_tracked: also write each BatchNorm's `num_batches_tracked` (int64 0),
            as `torch.nn.Module.state_dict()` does, so that a strict load accepts it.
    """
    state = {}
    for prefix, layer in mapping.items():
        for suffix, (variable, (_, to_torch)) in _layer_params(layer).items():
            state[f"{prefix}.{suffix}"] = np.ascontiguousarray(
                to_torch(np.asarray(variable.numpy(), np.float32))
            )
        if batches_tracked and isinstance(layer, keras.layers.BatchNormalization):
            state[f"{prefix}.{BATCHES_TRACKED}"] = np.zeros((), np.int64)
    return state


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
    expected = expected_params(mapping)
    present = {k for k in state if not k.endswith(BATCHES_TRACKED)}
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
