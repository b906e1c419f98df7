"""What every PyTorch checkpoint converter shares: files, layouts, and the key check.

A converter describes a model as `{torch module path: Keras layer}` (a "module
map"); from it, each torch key maps to one Keras variable: conv kernels OIHW ->
HWIO, Linear `(out, in)` -> `(in, out)`, BatchNorm weight/bias/running_mean/
running_var -> gamma/beta/moving_mean/moving_variance, Encoding codewords and
scale as they are. `num_batches_tracked` buffers carry nothing a Keras model
uses: they are ignored on the way in and written as 0 on the way out.
"""

import json
import logging
import os
import re

import keras
import numpy as np

from enc_tf.errors import ModelFileError, import_optional
from enc_tf.files import atomic_write
from enc_tf.layers.encoding import Encoding

logger = logging.getLogger(__name__)

BATCHES_TRACKED = "num_batches_tracked"
# An `.npz` state_dict may carry the checkpoint's `meta` as a JSON string under this key.
META_KEY = "__meta__"
# The first key prefix of each checkpoint layout we know, and its converter sub-command.
FORMATS = {
    "pytorch-encoding": ("pretrained.", "head.", "auxlayer."),
    "mmseg": ("backbone.", "decode_head.", "auxiliary_head."),
}
DEPTHS = {6: 50, 23: 101}  # blocks in stage 3 -> ResNet depth
_BLOCK = re.compile(r"layer(\d)_(\d+)_(conv\d|bn\d|down_conv|down_bn)")

_IDENTITY = (np.asarray, np.asarray)
_OIHW = (lambda w: np.transpose(w, (2, 3, 1, 0)), lambda k: np.transpose(k, (3, 2, 0, 1)))
_LINEAR = (np.transpose, np.transpose)


def checkpoint_format(state):
    """`pytorch-encoding`, `mmseg` or None: the layout most of `state`'s keys follow."""
    counts = {
        name: sum(key.startswith(prefixes) for key in state) for name, prefixes in FORMATS.items()
    }
    best = max(counts, key=counts.get)
    return best if counts[best] > len(state) // 2 else None


def check_format(state, expected, source):
    """Raises ValueError when `state` is laid out for another converter than `expected`."""
    found = checkpoint_format(state)
    if found == expected:
        return
    if found is None:
        raise ValueError(
            f"{source} is neither a PyTorch-Encoding nor an MMSegmentation EncNet state_dict "
            f"(its first keys: {sorted(state)[:3]})."
        )
    raise ValueError(
        f"{source} looks like a {found} checkpoint (keys {FORMATS[found][0]}..., "
        f"{FORMATS[found][1]}...), not {expected}: convert it with "
        f"`python -m enc_tf.convert {found}`."
    )


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


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            state = {key: data[key] for key in data.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"{path!r} is not a readable .npz file: {err}") from err
    meta = None
    if META_KEY in state:
        try:
            meta = json.loads(str(state.pop(META_KEY)))
        except ValueError as err:
            raise ValueError(f"{path!r}: {META_KEY} is not a JSON string: {err}") from err
    return state, meta


def _read_torch(path):
    torch = import_optional(
        "torch",
        f"Reading {path!r}",
        "install it, or save the state_dict as .npz: "
        "np.savez(out, **{k: v.numpy() for k, v in sd.items()}).",
    )
    raw = torch.load(path, map_location="cpu", weights_only=True)
    meta = raw.get("meta") if isinstance(raw, dict) else None
    for nested in ("state_dict", "model"):
        if isinstance(raw, dict) and isinstance(raw.get(nested), dict):
            raw = raw[nested]
    if not isinstance(raw, dict):
        raise ModelFileError(f"{path} holds a {type(raw).__name__}, not a state_dict of tensors.")
    not_tensors = sorted(str(k) for k, v in raw.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise ModelFileError(
            f"{path} is not a state_dict: {len(not_tensors)} entries are not tensors "
            f"({not_tensors[:5]})."
        )
    state = {key: value.detach().cpu().numpy() for key, value in raw.items()}
    return state, meta if isinstance(meta, dict) else None


def _read_safetensors(path):
    safetensors = import_optional("safetensors", f"Reading {path!r}", "pip install safetensors.")
    from safetensors.numpy import load_file  # the package is there: import_optional found it

    SafetensorError = safetensors.SafetensorError
    try:
        return dict(load_file(path)), None
    except SafetensorError as err:
        raise ValueError(f"{path!r} is not a readable safetensors file: {err}") from err


def read_checkpoint_file(path):
    """`(state_dict, meta)` of a `.npz` (arrays keyed by torch names, optional
    `__meta__` JSON), `.safetensors` (read without torch or pickle) or `.pth`/`.pt`
    file (needs torch; read with `weights_only=True`, so no code in it runs; the
    weights may sit under `state_dict` or `model`, next to a `meta` dict).
    `module.` prefixes of DataParallel are dropped. `meta` is None when the file has none.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint not found: {path!r}")
    if path.endswith(".npz"):
        state, meta = _read_npz(path)
    elif path.endswith(".safetensors"):
        state, meta = _read_safetensors(path)
    elif path.endswith((".pth", ".pt", ".pth.tar")):
        state, meta = _read_torch(path)
    else:
        raise ValueError(
            f"Unknown checkpoint format {path!r}: expected .npz, .safetensors, .pth or .pt."
        )
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    if not state:
        raise ValueError(f"{path!r} holds no arrays.")
    return state, meta


def read_state_dict(path):
    """The state_dict of a checkpoint file (see `read_checkpoint_file`)."""
    return read_checkpoint_file(path)[0]


def write_state_dict(state, path, meta=None):
    """Writes a state_dict atomically as `.npz` (meta as JSON under `__meta__`) or
    `.pth` (`{"state_dict": ..., "meta": ...}`, needs torch, which reads it back
    with `torch.load(path, weights_only=True)`)."""
    if path.endswith(".npz"):
        arrays = dict(state)
        if meta is not None:
            arrays[META_KEY] = np.asarray(json.dumps(meta))

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    elif path.endswith((".pth", ".pt")):
        torch = import_optional("torch", f"Writing {path!r}", "install it, or write a .npz.")
        payload = {"state_dict": {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}}
        if meta is not None:
            payload["meta"] = meta

        def write(tmp):
            torch.save(payload, tmp)

    else:
        raise ValueError(f"Unknown state_dict format {path!r}: expected .npz or .pth.")
    return atomic_write(path, write)
