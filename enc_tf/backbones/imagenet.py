"""ImageNet weights for the backbones, in the layouts their publishers use.

- timm's ResNet-s / ResNet-c (`resnet50s.gluon_in1k`, `resnet50c.gluon_in1k`, ...:
  GluonCV's ResNet-v1s/-v1c, whose deep stem `conv1.0/.1/.3/.4/.6`, `bn1` is the
  original PyTorch-Encoding's key layout), as `.safetensors`, `.pth` or `.npz`;
- mmcv's ResNetV1c (`open-mmlab://resnet50_v1c`: `stem.0/.1/.3/.4/.6/.7`);
- keras.applications' `notop` `.h5` files (ResNet50/101, MobileNetV3).

The classifier (`fc.*`) is ignored. The stem's width in the file names the layout
(128: ResNet-s, our `resnet*s`; 64: ResNet-c / V1c, our `resnet*v1c`), and a file
for another backbone than the one being built is refused with one line.
"""

import numpy as np

from enc_tf.backbones.keras_weights import WEIGHT_FILES, load_keras_applications_weights
from enc_tf.backbones.resnet import RESNETS
from enc_tf.errors import EncTfError, ModelFileError
from enc_tf.state_dicts import deep_stem_module_map, load_state_dict, read_state_dict, stage_depth

# `{our stem layer: torch module path}` of the deep stem in each publisher's layout: timm's
# ResNet-s/-c and the original PyTorch-Encoding (`conv1.0/.1/.3/.4/.6`, `bn1`), and mmcv's
# ResNetV1c, which MMSegmentation's EncNet checkpoints use too (`stem.0/.1/.3/.4/.6/.7`).
TIMM_STEM = {
    "stem_conv1": "conv1.0",
    "stem_bn1": "conv1.1",
    "stem_conv2": "conv1.3",
    "stem_bn2": "conv1.4",
    "stem_conv3": "conv1.6",
    "stem_bn3": "bn1",
}
MMCV_STEM = {
    "stem_conv1": "stem.0",
    "stem_bn1": "stem.1",
    "stem_conv2": "stem.3",
    "stem_bn2": "stem.4",
    "stem_conv3": "stem.6",
    "stem_bn3": "stem.7",
}
# The first stem key of each deep-stem layout, and the stem table that reads it.
_LAYOUTS = {
    "conv1.0.weight": ("timm / PyTorch-Encoding", TIMM_STEM),
    "stem.0.weight": ("mmcv ResNetV1c", MMCV_STEM),
}
_PREFIXES = ("module.", "pretrained.", "backbone.", "model.")


def _strip(state):
    """Drops a wrapper prefix every key shares (`module.`, `backbone.`, ...) and the
    classifier."""
    for prefix in _PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def _deep_stem_layout(state, source):
    for key, (layout, stem) in _LAYOUTS.items():
        if key in state:
            return layout, stem
    raise ValueError(
        f"{source} is not a deep-stem ResNet ImageNet checkpoint: it has neither "
        f"'conv1.0.weight' (timm's resnet*s / resnet*c, PyTorch-Encoding) nor 'stem.0.weight' "
        f"(mmcv ResNetV1c); its first keys are {sorted(state)[:3]}."
    )


def imagenet_backbone_name(state, source="the checkpoint"):
    """Our backbone name for a deep-stem ResNet ImageNet state_dict (`resnet50s`,
    `resnet101v1c`, ...), from its depth and stem width."""
    state = _strip(state)
    _, stem = _deep_stem_layout(state, source)
    width = int(np.shape(state[stem["stem_conv3"] + ".weight"])[0])
    depth = stage_depth(state, "")
    name = deep_stem_backbone(depth, width)
    if name is None:
        raise ValueError(f"{source}: a ResNet{depth} with a stem {width} wide is none of ours.")
    return name


def deep_stem_backbone(depth, stem_width):
    """Our deep-stem ResNet of that depth and stem width (`resnet50s`: 50, 128;
    `resnet50v1c`: 50, 64), or None."""
    for name, (family, d, width) in RESNETS.items():
        if family == "deep_stem" and d == depth and width == stem_width:
            return name
    return None


def load_imagenet_state(backbone, state, name, source="the checkpoint"):
    """Loads a deep-stem ResNet ImageNet state_dict (timm, PyTorch-Encoding or mmcv layout)
    into `backbone`, built as `name`.

    Raises:
        ValueError: the file is for another backbone (named), or keys are missing,
            unexpected or mis-shaped (all listed).
    """
    state = _strip(state)
    _, stem = _deep_stem_layout(state, source)
    found = imagenet_backbone_name(state, source)
    if found != name:
        raise ValueError(
            f"{source} holds {found} ImageNet weights, not {name}: set model.backbone to "
            f"{found} or choose the {name} weights."
        )
    load_state_dict(deep_stem_module_map(backbone, "", stem), state, source)


def load_imagenet_weights(backbone, path, name):
    """Loads the ImageNet weight file at `path` into `backbone` (built as `name`): a
    keras.applications `.h5` for the backbones in `WEIGHT_FILES`, else a deep-stem
    ResNet state_dict file (`.safetensors`, `.pth`, `.npz`; timm, PyTorch-Encoding or
    mmcv layout).

    Raises:
        ModelFileError: one line naming `path`: missing, unreadable, for another
            backbone, or keys/layers missing, unexpected or mis-shaped.
    """
    try:
        if name in WEIGHT_FILES:
            load_keras_applications_weights(backbone, path, name)
        elif name in RESNETS:
            load_imagenet_state(backbone, read_state_dict(path), name, source=path)
        else:
            raise ValueError(f"{name} has no ImageNet weights in a layout enc_tf reads.")
    except EncTfError:
        raise
    except (ValueError, KeyError, OSError) as err:
        message = " ".join(str(err).split())
        raise ModelFileError(message if path in message else f"{path}: {message}") from err
