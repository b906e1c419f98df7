"""ONNX export through tf2onnx, checked with ONNX Runtime.

The ONNX model has one input and two outputs, batch-first and channels-last like the
Keras model:

- `images` float32 `[batch, height, width, 3]`, normalised as in training
  (`(pixel / 255 - mean) / std`, ImageNet mean and std); any size unless the export
  fixes one;
- `seg` float32 `[batch, height, width, C]` segmentation logits at the input size;
- `se` float32 `[batch, C]` SE-loss (class presence) logits, when the model has them.

The class names and palette travel in the model's metadata (`classes`, JSON), the
normalisation in `mean` and `std`. `tf2onnx` and `onnxruntime` are optional
dependencies (`pip install enc_tf[onnx]`); they are imported when used.
"""

import contextlib
import json
import logging
import os

import numpy as np
import tensorflow as tf

from enc_tf.contracts.images import IMAGENET_MEAN, IMAGENET_STD
from enc_tf.errors import ConfigError, import_optional
from enc_tf.export.tolerance import EXPORT_TOLERANCE
from enc_tf.files import write_bytes_atomic
from enc_tf.machine import portable_kernels
from enc_tf.models.logits import logits_function

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
# Largest accepted ONNX Runtime vs Keras difference of any output (see EXPORT_TOLERANCE).
DEFAULT_TOLERANCE = max(EXPORT_TOLERANCE.values())
OPSETS = range(11, 19)  # 11: Resize with aligned corners; 18: tf2onnx 1.17's newest
INPUT_NAME = "images"
CLASSES_KEY = "classes"
# tf2onnx's switch, read when it converts: "FALSE" runs its graph optimizers in place.
CATCH_ERRORS_VARIABLE = "TF2ONNX_CATCH_ERRORS"


def _require(module):
    return import_optional(
        module, "ONNX export", "pip install 'enc_tf[onnx]' (tf2onnx, onnxruntime)."
    )


def _name_dimensions(proto):
    """Gives the dynamic dimensions readable names (tf2onnx writes `unk__123`)."""
    names = {
        INPUT_NAME: ("batch", "height", "width", None),
        "seg": ("batch", "height", "width", None),
        "se": ("batch", None),
    }
    for value in list(proto.graph.input) + list(proto.graph.output):
        for dim, name in zip(value.type.tensor_type.shape.dim, names.get(value.name, ())):
            if name and not dim.HasField("dim_value"):
                dim.dim_param = name


def to_onnx(model, classes=None, size=None, opset=DEFAULT_OPSET):
    """The `onnx.ModelProto` of `model` (see the module docstring for its interface).

    Args:
        model: a Keras segmentation model (dict outputs `seg`, optional `se`).
        classes: optional `ClassInfo` stored in the metadata.
        size: fix the input to `[batch, size, size, 3]` (None: any height and width).
        opset: the ONNX opset, 11 to 18.
    """
    tf2onnx = _require("tf2onnx")
    _require("onnx")
    if size is not None and int(size) < 1:
        raise ConfigError(f"size must be positive, got {size}.")
    if int(opset) not in OPSETS:
        raise ConfigError(f"opset must be in {OPSETS.start}..{OPSETS.stop - 1}, got {opset}.")
    function = logits_function(model, None if size is None else int(size), input_name=INPUT_NAME)
    converter_log = logging.getLogger("tf2onnx")
    level = converter_log.level
    converter_log.setLevel(max(level, logging.WARNING))  # its INFO lines are per-pass statistics
    try:
        # Portable kernels: ONNX runtimes run their own convolution algorithms.
        with portable_kernels(), _optimizers_in_place():
            proto, _ = tf2onnx.convert.from_function(
                function, input_signature=function.input_signature, opset=int(opset)
            )
    finally:
        converter_log.setLevel(level)
    _name_dimensions(proto)
    metadata = {
        "mean": json.dumps([float(v) for v in IMAGENET_MEAN]),
        "std": json.dumps([float(v) for v in IMAGENET_STD]),
    }
    if classes is not None:
        metadata[CLASSES_KEY] = json.dumps(
            {**classes.to_dict(), "num_classes": classes.num_classes}
        )
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = "EncNet (enc_tf): images = normalised float32 NHWC; seg/se = logits."
    return proto


@contextlib.contextmanager
def _optimizers_in_place():
    """tf2onnx runs each of its graph optimizers on a deep copy of the graph, weights
    included, so that a failing one can be skipped: converting EncNet-ResNet50s peaked at
    9.1 GB of memory against 5.9 GB in place (and took 16.0 s against 11.7). Within this
    scope it optimizes in place (an optimizer that fails fails the export); a
    `TF2ONNX_CATCH_ERRORS` the user set is left as it is."""
    if CATCH_ERRORS_VARIABLE in os.environ:
        yield
        return
    os.environ[CATCH_ERRORS_VARIABLE] = "FALSE"
    try:
        yield
    finally:
        os.environ.pop(CATCH_ERRORS_VARIABLE, None)


def write_onnx(proto, path):
    """Writes the model atomically (temporary file, then rename)."""
    return write_bytes_atomic(proto.SerializeToString(), path)


class OnnxRunner:
    """Runs an exported model with ONNX Runtime (CPU unless `providers` says otherwise).

    Call with normalised float32 images `[B, H, W, 3]` (or one `[H, W, 3]` image);
    returns `{"seg": ..., "se": ...}` as NumPy arrays with the same leading shape.
    """

    def __init__(self, model, num_threads=None, providers=("CPUExecutionProvider",)):
        ort = _require("onnxruntime")
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        content = model.SerializeToString() if hasattr(model, "SerializeToString") else model
        self.session = ort.InferenceSession(
            content, sess_options=options, providers=list(providers)
        )
        inputs = self.session.get_inputs()
        if [i.name for i in inputs] != [INPUT_NAME]:
            raise ValueError(
                f"Expected one input named {INPUT_NAME!r}, got {[i.name for i in inputs]}."
            )
        self.input_shape = tuple(inputs[0].shape)
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    @property
    def classes(self):
        """The stored `ClassInfo`, or None."""
        from enc_tf.data.classes import make_class_info

        if CLASSES_KEY not in self.metadata:
            return None
        record = json.loads(self.metadata[CLASSES_KEY])
        return make_class_info(record["names"], record.get("palette"))

    def __call__(self, images):
        images = np.asarray(images)
        if images.dtype != np.float32:
            raise ValueError(f"images: expected normalised float32, got {images.dtype}.")
        single = images.ndim == 3
        batch = images[None] if single else images
        expected = self.input_shape
        if batch.ndim != 4 or any(
            isinstance(e, int) and e != s for e, s in zip(expected, batch.shape)
        ):
            raise ValueError(
                f"images: this ONNX model takes {list(expected)}, got {list(images.shape)}."
            )
        out = dict(zip(self.outputs, self.session.run(self.outputs, {INPUT_NAME: batch})))
        return {k: v[0] for k, v in out.items()} if single else out


def max_relative_error(model, runner, images):
    """Largest |ONNX - Keras| over each output, relative to that output's largest |Keras|."""
    expected = logits_function(model, input_name=INPUT_NAME)(tf.constant(images, tf.float32))
    got = runner(np.asarray(images, np.float32))
    return {
        k: float(np.abs(got[k] - v.numpy()).max() / max(float(np.abs(v.numpy()).max()), 1e-6))
        for k, v in expected.items()
    }
