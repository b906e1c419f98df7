"""BatchNormalization with the original's defaults, in one place."""

import keras

# PyTorch BatchNorm2d defaults: eps 1e-5, momentum 0.1 (= Keras momentum 0.9).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def batch_norm(
    name=None,
    axis=-1,
    synchronized=False,
    epsilon=BN_EPSILON,
    momentum=BN_MOMENTUM,
    dtype=None,
):
    """Returns a `BatchNormalization` with EncNet's defaults.

    Args:
        name: layer name.
        axis: the feature axis; `1` normalises the codeword axis of `(B, K, D)`.
        synchronized: compute batch statistics across all replicas of a
            `tf.distribute` strategy (cross-replica "SyncBN").
        epsilon, momentum: as in `keras.layers.BatchNormalization`.
        dtype: dtype policy (a parent layer passes its own).
    """
    return keras.layers.BatchNormalization(
        axis=axis,
        epsilon=epsilon,
        momentum=momentum,
        synchronized=synchronized,
        name=name,
        dtype=dtype,
    )
