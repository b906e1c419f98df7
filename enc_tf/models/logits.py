"""One way from a segmentation model to its logits, for loading, comparison and every export."""

import tensorflow as tf

LOGIT_OUTPUTS = ("seg", "se")  # the outputs an exported or loaded model keeps (no auxiliary head)
# How far another runtime's float32 logits (TFLite, ONNX Runtime) may be from Keras's, relative
# to each output's largest |logit|. The SE logits pass through the Encoding's BatchNorm over
# codewords, whose moving variance is near 0 for unused codewords: it amplifies float32
# summation-order noise ~300x, so kernels that sum in another order (XNNPACK, MLAS, oneDNN;
# AVX2 vs AVX-512) differ there by 1e-4 and more. A wrong conversion differs by 1e-1.
EXPORT_TOLERANCE = {"seg": 1e-4, "se": 1e-3}


def select_logits(outputs):
    """The `seg` (and `se`) entries of a model's outputs; a bare tensor is `seg`."""
    if not isinstance(outputs, dict):
        outputs = {"seg": outputs}
    return {name: outputs[name] for name in LOGIT_OUTPUTS if name in outputs}


def model_logits(model, images):
    """`{"seg": (B, H, W, C), "se": (B, C)}` float32 logits of `model` in inference mode."""
    return {
        name: tf.cast(value, tf.float32)
        for name, value in select_logits(model(images, training=False)).items()
    }


def logits_function(model, size=None, batch=None, input_name="images"):
    """`model_logits` as a `tf.function` over float32 `(batch, size, size, 3)` images.

    `size` and `batch` fix those dimensions; None leaves them dynamic.
    """
    spec = tf.TensorSpec([batch, size, size, 3], tf.float32, name=input_name)
    return tf.function(lambda images: model_logits(model, images), input_signature=[spec])


def precision_logits_function(model, precision="float32", size=None, batch=None):
    """`logits_function` of `model` computing in `precision` (`float32`, `bfloat16`,
    `auto`; see `enc_tf.models.precision`); logits come back as float32."""
    from enc_tf.models.precision import with_precision

    return logits_function(with_precision(model, precision), size, batch)
