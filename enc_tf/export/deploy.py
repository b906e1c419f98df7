"""TFLite files that apps run as they are: pixels in, segmentation out, metadata inside.

The research signature (`enc_tf.export.tflite`) takes normalised float images and returns
logits; an app would need our Python around it. A deployment file carries the input
normalisation in its graph, its outputs in the form on-device clients read, and metadata
(`enc_tf.export.metadata`: name, version, licence, labels). Two targets:

- `mediapipe` (the default): input `image`, float32 RGB pixel values in [0, 255],
  `[1, H, W, 3]`; one output, `confidences`, float32 class probabilities `[1, H, W, C]`.
  MediaPipe's `ImageSegmenter` (Android, iOS, web, Python) computes the category mask itself
  from that output (per-pixel argmax after resizing the scores to the image's size). Its input
  is float because MediaPipe always feeds a float32 tensor (its image-to-tensor step
  normalises with one mean and std for all channels, read from the metadata: here 0 and 1, so
  the file gets pixel values and applies ImageNet's per-channel statistics itself); a uint8
  input is refused there ("Input and interpreter tensor type do not match"). It reads the
  last output tensor as the scores and a first one, if any, as quality scores, so the file
  has exactly one output.
- `uint8`: input `image`, uint8 RGB `[1, H, W, 3]`, for the LiteRT interpreter and integer
  accelerators (NNAPI, Edge TPU); output `category_mask`, uint8 `[1, H, W]` (the argmax at
  input size; at most 256 classes) and, with `confidences=True`, `confidences` as above.

In `int8` mode the interior is int8 as in the research file; the Encoding path and the
final softmax stay float (see `enc_tf.export.tflite`); `DeploymentRunner.report` names
every op that computes in float.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from enc_tf.contracts.images import denormalize, normalize
from enc_tf.errors import ConfigError
from enc_tf.export.tflite import FLOAT_SCOPES, convert_fixed, input_size, open_interpreter
from enc_tf.models.logits import select_logits

TARGETS = ("mediapipe", "uint8")
DEFAULT_TARGET = "mediapipe"
INPUT_NAME = "image"
MASK_OUTPUT = "category_mask"
SCORES_OUTPUT = "confidences"
MAX_MASK_CLASSES = 256  # a uint8 category mask


def deployment_outputs(target, confidences=False):
    """The output names of a deployment file's signature (the file orders its output
    tensors its own way: `DeploymentRunner.output_order`)."""
    if target not in TARGETS:
        raise ConfigError(f"The deployment target must be one of {TARGETS}, got {target!r}.")
    if target == "mediapipe":
        return (SCORES_OUTPUT,)
    return (MASK_OUTPUT, SCORES_OUTPUT) if confidences else (MASK_OUTPUT,)


@keras.saving.register_keras_serializable(package="enc_tf")
class CategoryMask(keras.layers.Layer):
    """Logits `(..., C)` -> the uint8 index of the largest, `(...)`: TFLite's ARG_MAX and a
    CAST. (`keras.ops.argmax` first maps -0.0 to +0.0 with a bitwise AND, which TFLite has
    no builtin kernel for.)"""

    def call(self, logits):
        return tf.cast(tf.argmax(logits, axis=-1), tf.uint8)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def compute_output_spec(self, logits):
        return keras.KerasTensor(logits.shape[:-1], dtype="uint8")


def deployment_model(model, size, target=DEFAULT_TARGET, confidences=False):
    """A Keras model of `model`'s deployment signature (see the module's description):
    batch 1, a fixed `size` (int or `(H, W)`), pixel input, normalisation inside."""
    outputs = deployment_outputs(target, confidences)
    height, width = input_size(size)
    dtype = "uint8" if target == "uint8" else "float32"
    image = keras.Input((height, width, 3), batch_size=1, dtype=dtype, name=INPUT_NAME)
    logits = select_logits(model(normalize(image), training=False))["seg"]
    num_classes = logits.shape[-1]
    if MASK_OUTPUT in outputs and num_classes > MAX_MASK_CLASSES:
        raise ConfigError(
            f"A uint8 category mask holds at most {MAX_MASK_CLASSES} classes; this model has "
            f"{num_classes}: use the 'mediapipe' target (class probabilities)."
        )
    logits = ops.cast(logits, "float32")
    values = {
        MASK_OUTPUT: CategoryMask(name=MASK_OUTPUT)(logits),
        SCORES_OUTPUT: ops.softmax(logits, axis=-1),
    }
    # Named outputs: the TFLite signature keeps the names.
    return keras.Model(image, {name: values[name] for name in outputs}, name="encnet_deploy")


def convert_deployment(
    model,
    mode="float32",
    size=480,
    representative=None,
    target=DEFAULT_TARGET,
    confidences=False,
    float_scopes=FLOAT_SCOPES,
):
    """The TFLite flatbuffer of `model`'s deployment signature, without metadata
    (`enc_tf.export.metadata.add_metadata` adds it).

    `representative` yields normalised images, as for `enc_tf.export.tflite.convert`; they
    are turned back into pixels for calibration (`convert_fixed` casts them to the input's
    dtype).
    """
    fixed = deployment_model(model, size, target, confidences)
    pixels = None
    if representative is not None:
        pixels = lambda: (denormalize(image) for image in representative())  # noqa: E731
    return convert_fixed(fixed, mode, pixels, float_scopes)


class DeploymentRunner:
    """Runs a deployment file with LiteRT's interpreter, as an app would: one `(H, W, 3)`
    RGB image of the file's size (uint8, or pixel values as float) in, `{output name:
    array without the batch axis}` out."""

    def __init__(self, model_content=None, model_path=None, num_threads=None):
        self.interpreter = open_interpreter(model_content, model_path, num_threads)
        self.runner = self.interpreter.get_signature_runner()
        details = self.runner.get_input_details()
        if list(details) != [INPUT_NAME]:
            raise ValueError(
                f"Expected a deployment file (one input named {INPUT_NAME!r}), "
                f"got inputs {sorted(details)}."
            )
        self.input_shape = tuple(int(v) for v in details[INPUT_NAME]["shape"])
        self.input_dtype = np.dtype(details[INPUT_NAME]["dtype"])

    def __call__(self, image):
        image = np.asarray(image)
        if image.shape != self.input_shape[1:]:
            raise ValueError(
                f"This file takes RGB images of shape {self.input_shape[1:]}, got {image.shape}."
            )
        out = self.runner(**{INPUT_NAME: image.astype(self.input_dtype)[None]})
        return {name: np.asarray(value)[0] for name, value in out.items()}

    def output_order(self):
        """The output names in the order of the file's output tensors (the order MediaPipe
        reads them in)."""
        by_index = {d["index"]: name for name, d in self.runner.get_output_details().items()}
        return [by_index[d["index"]] for d in self.interpreter.get_output_details()]

    def report(self):
        """`{"input": dtype name, "outputs": {name: (dtype name, shape)}, "float_ops": {op
        type: count}}`: what an app feeds and reads, and which ops compute in float (an op
        with a float32 first input or output)."""
        tensors = {d["index"]: d for d in self.interpreter.get_tensor_details()}
        float_ops = {}
        for op in self.interpreter._get_ops_details():
            if op["op_name"] == "DELEGATE":  # a delegate's node stands for ops counted here
                continue
            ends = [t for t in list(op["inputs"][:1]) + list(op["outputs"]) if t >= 0]
            if any(tensors[t]["dtype"] == np.float32 for t in ends if t in tensors):
                float_ops[op["op_name"]] = float_ops.get(op["op_name"], 0) + 1
        return {
            "input": self.input_dtype.name,
            "outputs": {
                name: (np.dtype(d["dtype"]).name, tuple(int(v) for v in d["shape"]))
                for name, d in self.runner.get_output_details().items()
            },
            "float_ops": float_ops,
        }
