"""Loading keras.applications ImageNet weights (ResNet, MobileNetV3) from a local file."""

import logging
import os

import h5py
import numpy as np

logger = logging.getLogger(__name__)

# Layers of the "with top" files that a backbone does not have (ResNet; MobileNetV3).
_CLASSIFIER_LAYERS = {"probs", "predictions", "fc1000", "conv_2", "logits"}
# The official files (`include_top=False`) for each backbone that reads one.
WEIGHT_FILES = {
    "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet101": "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "mobilenetv3_large": "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
    "mobilenetv3_small": "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
    "mobilenetv3_large_minimalistic": (
        "weights_mobilenet_v3_large_minimalistic_224_1.0_float_no_top_v2.h5"
    ),
    "mobilenetv3_small_minimalistic": (
        "weights_mobilenet_v3_small_minimalistic_224_1.0_float_no_top_v2.h5"
    ),
}


def _layer_groups(path, expected):
    """`{layer_name: [arrays in weight_names order]}` of a Keras HDF5 weight file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Backbone weight file not found: {path!r}. Download {expected} yourself and "
            "pass its local path; nothing is downloaded at run time."
        )
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path!r} is not a readable HDF5 weight file: {err}") from err
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise ValueError(
                f"{path!r} is not a Keras HDF5 weight file (no 'layer_names' attribute); "
                f"expected the keras.applications file {expected}."
            )
        groups = {}
        for raw_name in root.attrs["layer_names"]:
            name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
            group = root[name]
            weight_names = [
                w.decode() if isinstance(w, bytes) else str(w)
                for w in group.attrs.get("weight_names", [])
            ]
            if weight_names:
                groups[name] = [np.asarray(group[w]) for w in weight_names]
    return groups


def load_keras_applications_weights(backbone, path, name):
    """Loads a keras.applications ImageNet weight file (`WEIGHT_FILES[name]`, or its
    with-top version) into a backbone.

    Layers are matched by name (our `resnet50`/`resnet101` and `mobilenetv3_*`
    backbones use the keras.applications names); dilation changes no weight shape.
    The weights load unchanged: the backbone's input layer (`CaffeInput`,
    `SignedUnitInput`) adapts our normalised input to the one they were trained on.

    Args:
        backbone: a model from `build_backbone(name)`.
        path: local path of the weight file.
        name: the backbone's name, a key of `WEIGHT_FILES` (for messages).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a Keras weight file, or layers are
            missing, unexpected or of the wrong shape (all are listed).
    """
    official = WEIGHT_FILES[name]
    groups = _layer_groups(path, official)
    ours = {layer.name: layer for layer in backbone.layers if layer.weights}
    missing = sorted(set(ours) - set(groups))
    unexpected = sorted(set(groups) - set(ours) - _CLASSIFIER_LAYERS)
    mismatched = []
    for layer_name in sorted(set(ours) & set(groups)):
        expected = [tuple(w.shape) for w in ours[layer_name].weights]
        found = [tuple(a.shape) for a in groups[layer_name]]
        if expected != found:
            mismatched.append(f"{layer_name}: file {found} vs model {expected}")
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{path!r} does not fit backbone {name!r} "
            f"({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(mismatched)} mis-shaped layers). Missing: {missing[:10]}; "
            f"unexpected: {unexpected[:10]}; mis-shaped: {mismatched[:10]}. "
            f"Is it {official} (the file of the same network and depth)?"
        )
    for layer_name, layer in ours.items():
        layer.set_weights(groups[layer_name])
    logger.info("Loaded %d layers of ImageNet weights from %s", len(ours), path)
