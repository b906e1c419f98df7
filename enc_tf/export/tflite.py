"""TFLite export: float32, float16, dynamic-range int8 and full int8, builtin ops only.

The converted model has one signature, `serving_default`, with a fixed-size input
`images` float32 `[1, S, S, 3]` (normalised as in training) and outputs `seg`
(logits `[1, S, S, C]`) and, when the model has an SE head, `se` (logits `[1, C]`).
Conversion allows TFLite builtin ops only: a model that would need Flex (Select TF)
ops fails to convert instead of producing a file that phones cannot run.

Full int8 quantises the backbone and heads with a representative dataset but keeps
the Encoding / EncModule path in float (selective quantization through TF's
QuantizationDebugger): quantizing it as a whole breaks the SE logits (see README).
"""

import logging
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)

MODES = ("float32", "float16", "dynamic_int8", "int8")
# Under mode "int8", ops whose TFLite tensor names contain these (the Encoding layer,
# the codeword BatchNorm, the SE gate and head) and ops of these types (which only
# the EncModule uses) stay float.
FLOAT_SCOPES = ("/encoding_", "/bn_codes_", "/fc_", "/se_head_")
FLOAT_OPS = ("MEAN", "LOGISTIC", "SOFTMAX", "BATCH_MATMUL", "FULLY_CONNECTED")


def inference_model(model, size):
    """A fixed-size `[1, size, size, 3]` model with the `seg` (and `se`) outputs only."""
    images = keras.Input((size, size, 3), batch_size=1, name="images")
    outputs = model(images, training=False)
    outputs = {k: v for k, v in outputs.items() if k in ("seg", "se")} if isinstance(outputs, dict) else {"seg": outputs}
    return keras.Model(images, outputs, name="encnet_tflite")


def _converter(fixed):
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def convert(model, mode="float32", size=480, representative=None, float_scopes=FLOAT_SCOPES):
    """The TFLite flatbuffer (bytes) of `model` in `mode` (one of `MODES`).

    Args:
        model: a Keras segmentation model.
        size: the fixed input size.
        representative: for `int8`, a callable returning an iterable of
            normalised `(size, size, 3)` (or `(1, size, size, 3)`) float32 images
            from the training data (a few dozen suffice).
        float_scopes: for `int8`, name fragments of the ops kept in float.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    fixed = inference_model(model, int(size))
    converter = _converter(fixed)
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        if representative is None:
            raise ValueError("mode 'int8' needs a representative dataset (training images).")

        def dataset():
            for image in representative():
                image = np.asarray(image, np.float32)
                yield [image[None] if image.ndim == 3 else image]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        if float_scopes:
            # Selective quantization: the named ops (and the head-only op types of the
            # SE path) stay float; everything else is int8.
            float_names = [d["name"] for d in _tensor_details(_converter(fixed).convert())
                           if any(scope in d["name"] for scope in float_scopes)]
            options = tf.lite.experimental.QuantizationDebugOptions(
                denylisted_nodes=float_names, denylisted_ops=list(FLOAT_OPS), fully_quantize=False
            )
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=dataset, debug_options=options
            )
            return debugger.get_nondebug_quantized_model()
    return converter.convert()


def _tensor_details(flatbuffer):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=flatbuffer).get_tensor_details()


def write_tflite(flatbuffer, path):
    """Writes the flatbuffer atomically (temporary file, then rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".tflite", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(flatbuffer)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


class TFLiteRunner:
    """Runs an exported model with ai-edge-litert's `Interpreter` through its signature.

    Call with one normalised `(S, S, 3)` image; returns `{"seg": (S, S, C), "se": (C,)}`
    as float32.
    """

    def __init__(self, model_content=None, model_path=None, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=model_content, model_path=model_path, num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner()
        details = self.runner.get_input_details()
        if list(details) != ["images"]:
            raise ValueError(f"Expected one input named 'images', got {sorted(details)}.")
        self.input_shape = tuple(int(v) for v in details["images"]["shape"])
        self.outputs = sorted(self.runner.get_output_details())

    def __call__(self, image):
        image = np.asarray(image, np.float32)
        if image.shape != self.input_shape[1:]:
            raise ValueError(f"This TFLite model takes images of shape {self.input_shape[1:]}, got {image.shape}.")
        out = self.runner(images=image[None])
        return {k: np.asarray(v, np.float32)[0] for k, v in out.items()}
