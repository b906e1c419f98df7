"""Small Keras models with the segmentation models' output contract, for fast tests."""

import keras
import numpy as np


def tiny_segmenter(num_classes=3, seed=0):
    """`images (B, H, W, 3)` -> `{"seg": (B, H, W, C) logits, "se": (B, C) logits}`.

    Two 'same'-padded 3x3 convolutions with random weights: the output depends on
    position near borders, so where windows and padding fall matters.
    """
    images = keras.Input((None, None, 3), name="images")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="tanh", name="conv1")(images)
    seg = keras.layers.Conv2D(num_classes, 3, padding="same", name="seg")(x)
    se = keras.layers.Dense(num_classes, name="se")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(images, {"seg": seg, "se": se})
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.6, w.shape).astype("float32") for w in model.weights])
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
