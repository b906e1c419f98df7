"""TFLite export: float32, float16, dynamic-range int8 and full int8, builtin ops only.

The converted model has one signature, `serving_default`, with a fixed-size input
`images` float32 `[1, S, S, 3]` (normalised as in training) and outputs `seg`
(logits `[1, S, S, C]`) and, when the model has an SE head, `se` (logits `[1, C]`).
Conversion allows TFLite builtin ops only: a model that would need Flex (Select TF)
ops fails to convert instead of producing a file that phones cannot run.

Full int8 quantises the backbone and heads with a representative dataset but keeps
the Encoding / EncModule path in float (selective quantization: TF's quantizer with a
denylist of op names and types): quantizing it as a whole breaks the SE logits (see
docs/export.md).
"""

import contextlib
import io
import logging
import warnings

import keras
import numpy as np
import tensorflow as tf

from enc_tf.errors import ConfigError, ModelFileError, import_optional
from enc_tf.files import write_bytes_atomic
from enc_tf.machine import portable_kernels
from enc_tf.models.logits import select_logits
from enc_tf.quiet import native_output_quieted

logger = logging.getLogger(__name__)

MODES = ("float32", "float16", "dynamic_int8", "int8")
# Under mode "int8", ops whose TFLite tensor names contain these (the Encoding layer,
# the codeword BatchNorm, the SE gate and head) and ops of these types (which only
# the EncModule uses) stay float.
# The sub-layers of `EncModule` that stay float when the rest of a model is quantized to int8
# (the Encoding layer, the codeword BatchNorm, the SE gate and head), by their names in it;
# quantization-aware training (`enc-qat`) leaves them float as well.
FLOAT_KEPT_SUBLAYERS = ("encoding", "bn_codes", "fc", "se_head")
FLOAT_SCOPES = tuple(f"/{name}_" for name in FLOAT_KEPT_SUBLAYERS)
FLOAT_OPS = ("MEAN", "LOGISTIC", "SOFTMAX", "BATCH_MATMUL", "FULLY_CONNECTED")


def input_size(size):
    """`(H, W)` of a fixed input size given as an int (square) or `(H, W)`."""
    height, width = (size, size) if np.ndim(size) == 0 else tuple(size)
    if int(height) != height or int(width) != width or min(height, width) < 1:
        raise ConfigError(f"size must be a positive integer or (height, width), got {size!r}.")
    return int(height), int(width)


def inference_model(model, size):
    """A fixed-size `[1, H, W, 3]` model (`size`: int or `(H, W)`) with the `seg` (and
    `se`) outputs only."""
    images = keras.Input((*input_size(size), 3), batch_size=1, name="images")
    outputs = select_logits(model(images, training=False))
    return keras.Model(images, outputs, name="encnet_tflite")


def _converter(fixed):
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


@contextlib.contextmanager
def _keras_export_output_to_log():
    """The converter saves the Keras model with `model.export`, which prints every
    captured tensor; that goes to the debug log instead of the terminal."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        logger.debug("%s", buffer.getvalue())


def convert(model, mode="float32", size=480, representative=None, float_scopes=FLOAT_SCOPES):
    """The TFLite flatbuffer (bytes) of `model` in `mode` (one of `MODES`).

    Args:
        model: a Keras segmentation model.
        size: the fixed input size: an int (square) or `(H, W)`.
        representative: for `int8`, a callable returning an iterable of
            normalised `(H, W, 3)` (or `(1, H, W, 3)`) float32 images from the
            training data (a few dozen suffice).
        float_scopes: for `int8`, name fragments of the ops kept in float.
    """
    return convert_fixed(inference_model(model, size), mode, representative, float_scopes)


def convert_fixed(fixed, mode="float32", representative=None, float_scopes=FLOAT_SCOPES):
    """`convert` of a Keras model with one fixed-size `[1, H, W, 3]` input: the research
    signature (`inference_model`) or a deployment one (`enc_tf.export.deploy`).
    `representative` yields images of the input's dtype and contract."""
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}.")
    if mode == "int8" and representative is None:
        raise ConfigError("mode 'int8' needs a representative dataset (training images).")
    _, height, width, _ = fixed.inputs[0].shape
    from tensorflow.lite.python.convert_phase import ConverterError

    try:
        # TFLite runs its own convolution kernels: the graph gets plain convolutions.
        with _keras_export_output_to_log(), warnings.catch_warnings(), portable_kernels():
            # Quantizing with a representative dataset, the converter warns that the float
            # input has no quantization statistics: it needs none (the input stays float).
            warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected")
            return _convert(fixed, mode, representative, float_scopes)
    except ConverterError as err:  # e.g. an op without a TFLite builtin kernel
        raise ModelFileError(
            f"TFLite cannot convert the model ({mode}, {height} x {width}): {err}", exit_code=1
        ) from err


def _convert(fixed, mode, representative, float_scopes):
    converter = _converter(fixed)
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        dtype = fixed.inputs[0].dtype

        def dataset():
            for image in representative():
                image = np.asarray(image, dtype)
                yield [image[None] if image.ndim == 3 else image]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        if float_scopes:
            return _selectively_quantize(converter, float_scopes)
    return converter.convert()


def _selectively_quantize(converter, float_scopes):
    """Full int8 except the ops named by `float_scopes` and of types `FLOAT_OPS`.

    The steps of TF's `QuantizationDebugger.get_nondebug_quantized_model` without its
    extra (float and instrumented) conversions: calibrate once, read the op names from
    the calibrated model (they are the float model's), then quantize with a denylist.
    """
    from tensorflow.lite.python import convert as lite_convert  # TF's own quantizer entry point

    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True  # as the QuantizationDebugger sets it
    calibrated = converter.convert()
    float_names = [
        d["name"]
        for d in _tensor_details(calibrated)
        if any(scope in d["name"] for scope in float_scopes)
    ]
    if not float_names:
        logger.warning(
            "No tensor name contains any of %s: the whole model is quantized.", float_scopes
        )
    with native_output_quieted():
        return lite_convert.mlir_quantize(
            calibrated,
            disable_per_channel=converter._experimental_disable_per_channel,
            fully_quantize=False,
            denylisted_ops=list(FLOAT_OPS),
            denylisted_nodes=float_names,
        )


def _interpreter_class():
    """LiteRT's `Interpreter` (the `tflite` extra)."""
    module = import_optional(
        "ai_edge_litert.interpreter", "Running a TFLite file", "pip install 'enc_tf[tflite]'."
    )
    return module.Interpreter


def _tensor_details(flatbuffer):
    Interpreter = _interpreter_class()

    with native_output_quieted():
        return Interpreter(model_content=flatbuffer).get_tensor_details()


def delegate_coverage(interpreter):
    """`(delegated, total, {op name: count left})` for an interpreter whose tensors are
    allocated: how many of the model's ops the delegates (XNNPACK by default) took over,
    and the ops left on TFLite's own kernels.

    A delegate replaces each partition it takes by one `DELEGATE` node whose inputs and
    outputs are the partition's boundary tensors; the ops inside are found by walking
    back from its outputs to its inputs.
    """
    ops = interpreter._get_ops_details()
    original = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {t: op["index"] for op in original for t in op["outputs"]}
    inside = set()
    for node in (op for op in ops if op["op_name"] == "DELEGATE"):
        boundary, stack, seen = set(node["inputs"]), list(node["outputs"]), set()
        while stack:
            tensor = stack.pop()
            if tensor in boundary or tensor in seen or tensor not in producer:
                continue
            seen.add(tensor)
            inside.add(producer[tensor])
            stack.extend(t for t in ops[producer[tensor]]["inputs"] if t >= 0)
    left = {}
    for op in original:
        if op["index"] not in inside:
            left[op["op_name"]] = left.get(op["op_name"], 0) + 1
    return len(inside), len(original), left


def open_interpreter(model_content=None, model_path=None, num_threads=None):
    """LiteRT's `Interpreter` over a file's bytes or path, its tensors allocated (with the
    XNNPACK delegate, LiteRT's default on CPU)."""
    Interpreter = _interpreter_class()
    with native_output_quieted():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
        interpreter = Interpreter(
            model_content=model_content, model_path=model_path, num_threads=num_threads
        )
        interpreter.allocate_tensors()
    return interpreter


def write_tflite(flatbuffer, path):
    """Writes the flatbuffer atomically (temporary file, then rename)."""
    return write_bytes_atomic(flatbuffer, path)


class TFLiteRunner:
    """Runs an exported model with ai-edge-litert's `Interpreter` through its signature.

    Call with one normalised `(S, S, 3)` image; returns `{"seg": (S, S, C), "se": (C,)}`
    as float32.
    """

    def __init__(self, model_content=None, model_path=None, num_threads=None):
        self.interpreter = open_interpreter(model_content, model_path, num_threads)
        self.runner = self.interpreter.get_signature_runner()
        details = self.runner.get_input_details()
        if list(details) != ["images"]:
            raise ValueError(f"Expected one input named 'images', got {sorted(details)}.")
        self.input_shape = tuple(int(v) for v in details["images"]["shape"])
        self.outputs = sorted(self.runner.get_output_details())

    def __call__(self, image):
        image = np.asarray(image, np.float32)
        if image.shape != self.input_shape[1:]:
            raise ValueError(
                f"This TFLite model takes images of shape {self.input_shape[1:]}, "
                f"got {image.shape}."
            )
        out = self.runner(images=image[None])
        return {k: np.asarray(v, np.float32)[0] for k, v in out.items()}
