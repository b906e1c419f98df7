"""Loading the keras.applications ResNet ImageNet weights from a local file."""

import logging
import os

import h5py
import numpy as np

logger = logging.getLogger(__name__)

# Layers of the "with top" file that a backbone does not have.
_CLASSIFIER_LAYERS = {"probs", "predictions", "fc1000"}


def _layer_groups(path):
    """`{layer_name: [arrays in weight_names order]}` of a Keras HDF5 weight file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Backbone weight file not found: {path!r}. Download "
            "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 (or the resnet101 one) "
            "yourself and pass its local path; nothing is downloaded at run time."
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
                "expected the keras.applications ResNet weights."
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


def load_keras_applications_weights(backbone, path):
    """Loads `resnet50/101_weights_tf_dim_ordering_tf_kernels[_notop].h5` into a backbone.

    Layers are matched by name (our `resnet50`/`resnet101` backbones use the
    keras.applications names); dilation changes no weight shape. The weights
    load unchanged: the backbone's `CaffeInput` layer adapts its input.

    Args:
        backbone: a model from `build_backbone("resnet50" | "resnet101")`.
        path: local path of the weight file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a Keras weight file, or layers are
            missing, unexpected or of the wrong shape (all are listed).
    """
    groups = _layer_groups(path)
    ours = {layer.name: layer for layer in backbone.layers if layer.weights}
    missing = sorted(set(ours) - set(groups))
    unexpected = sorted(set(groups) - set(ours) - _CLASSIFIER_LAYERS)
    mismatched = []
    for name in sorted(set(ours) & set(groups)):
        expected = [tuple(w.shape) for w in ours[name].weights]
        found = [tuple(a.shape) for a in groups[name]]
        if expected != found:
            mismatched.append(f"{name}: file {found} vs model {expected}")
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{path!r} does not fit backbone {backbone.name!r} "
            f"({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(mismatched)} mis-shaped layers). Missing: {missing[:10]}; "
            f"unexpected: {unexpected[:10]}; mis-shaped: {mismatched[:10]}. "
            "Is it the weight file of the same depth (resnet50 vs resnet101)?"
        )
    for name, layer in ours.items():
        layer.set_weights(groups[name])
    logger.info("Loaded %d layers of ImageNet weights from %s", len(ours), path)
