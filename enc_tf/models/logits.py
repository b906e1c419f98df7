"""One way from a segmentation model to its logits, for loading, comparison and every export."""

import tensorflow as tf

LOGIT_OUTPUTS = ("seg", "se")  # the outputs an exported or loaded model keeps (no auxiliary head)


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
