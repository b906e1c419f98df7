"""Loading the keras.applications ResNet ImageNet weights from a local file."""

import logging
import os

import h5py
import numpy as np

logger = logging.getLogger(__name__)

# ImageNet statistics of the normalised input the model takes ([0, 1] RGB).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Layers of the "with top" file that a backbone does not have.
_CLASSIFIER_LAYERS = {"probs", "predictions", "fc1000"}


def fold_caffe_preprocessing(kernel):
    """Adapts a first-conv kernel trained on "caffe" input to normalised RGB input.

    keras.applications ResNets expect BGR pixels in [0, 255] minus the ImageNet
    mean; our models take `(rgb - mean) / std` on [0, 1]. Per RGB channel `c`,
    caffe input = normalised input * 255 * std[c] (the means cancel), in
    reversed channel order, so the kernel's input axis is reversed and scaled.

    Args:
        kernel: `(kh, kw, 3, filters)` array expecting BGR caffe input.

    Returns:
        The kernel for normalised RGB input, same shape.
    """
    scale = 255.0 * np.asarray(IMAGENET_STD, dtype=np.float64)
    return (kernel[:, :, ::-1, :] * scale[None, None, :, None]).astype(kernel.dtype)


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
    keras.applications names); dilation changes no weight shape. The first
    conv is adapted to normalised RGB input (`fold_caffe_preprocessing`).

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
        arrays = list(groups[name])
        if name == "conv1_conv":
            arrays[0] = fold_caffe_preprocessing(arrays[0])
        layer.set_weights(arrays)
    logger.info("Loaded %d layers of ImageNet weights from %s", len(ours), path)
