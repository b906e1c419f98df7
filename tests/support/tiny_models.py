"""Small Keras models with the segmentation models' output contract, for fast tests."""

import keras
import numpy as np


def tiny_segmenter(num_classes=3, seed=0, tuned_width=None):
    """`images (B, H, W, 3)` -> `{"seg": (B, H, W, C) logits, "se": (B, C) logits}`.

    Two 'same'-padded 3x3 convolutions with random weights: the output depends on
    position near borders, so where windows and padding fall matters. `tuned_width`:
    a `TunedConv2D` of that many channels in and out between them (by Winograd's
    algorithm on CPUs from `WINOGRAD_MIN_CHANNELS`).
    """
    from enc_tf.layers import TunedConv2D

    images = keras.Input((None, None, 3), name="images")
    x = keras.layers.Conv2D(tuned_width or 8, 3, padding="same", activation="tanh", name="conv1")(
        images
    )
    if tuned_width:
        x = TunedConv2D(tuned_width, 3, padding="same", activation="tanh", name="tuned")(x)
    seg = keras.layers.Conv2D(num_classes, 3, padding="same", name="seg")(x)
    se = keras.layers.Dense(num_classes, name="se")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(images, {"seg": seg, "se": se})
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.6, w.shape).astype("float32") for w in model.weights])
    if tuned_width:  # outputs of order 1 over its 9 * tuned_width inputs
        kernel = model.get_layer("tuned").kernel
        kernel.assign(kernel * (1.5 / np.sqrt(9 * tuned_width)))
    return model


def randomise_batch_norms(model, seed=0):
    """Every BatchNorm of `model` (nested ones too) gets random statistics, scale and
    offset, so that conversions and foldings are checked on values that matter."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.5, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, n).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.5, n).astype("float32"))
