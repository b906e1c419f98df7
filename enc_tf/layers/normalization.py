"""BatchNormalization with the original's defaults and a fused training kernel, in one place."""

import keras
from keras import ops

# PyTorch BatchNorm2d defaults: eps 1e-5, momentum 0.1 (= Keras momentum 0.9).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
_FUSED_DTYPES = ("float16", "bfloat16", "float32")


@keras.saving.register_keras_serializable(package="enc_tf")
class BatchNorm(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that trains with TensorFlow's fused kernel.

    Keras computes batch normalisation in training as `moments` plus arithmetic:
    several passes over the activation forward and backward, and two casts each
    way under mixed precision. On the TensorFlow backend, for `(B, H, W, C)`
    inputs normalised over the last axis, this layer trains with
    `FusedBatchNormV3` instead (oneDNN on CPU, cuDNN on GPU; half and bfloat16
    inputs with float32 statistics, no casts): the same function within float32
    rounding, the same weights and the same moving-statistics update (the biased
    batch variance, as Keras). Training steps are faster with it (docs/benchmarks.md
    has the measured figures, with their CPU).

    Inference keeps Keras's path (`x * scale + offset`): there the graph optimiser
    would fuse `FusedBatchNormV3` into the preceding convolution, and oneDNN's
    fused kernel measured slower than convolution plus scale-and-offset.
    Synchronized (cross-replica) BatchNorm, renorm, masks and other ranks take
    Keras's own path.

    Args:
        folded: the layer was folded into the preceding convolution for inference
            (`enc_tf.models.transforms.fold_batch_norms`): it only adds `beta`, and
            refuses to train.
        **kwargs: `keras.layers.BatchNormalization` arguments.
    """

    def __init__(self, folded=False, **kwargs):
        super().__init__(**kwargs)
        self.folded = bool(folded)

    def fold(self, shift):
        """Becomes `x + shift`: statistics and scale set to the identity (so that
        Keras's own formula gives the same), `beta` to `shift`."""
        self.gamma.assign(ops.ones_like(self.gamma))
        self.moving_mean.assign(ops.zeros_like(self.moving_mean))
        self.moving_variance.assign(ops.full_like(self.moving_variance, 1.0 - self.epsilon))
        self.beta.assign(shift)
        self.folded = True

    def get_config(self):
        return {**super().get_config(), "folded": self.folded}

    def _fused(self, inputs, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and not self.synchronized
            and not self.renorm
            and mask is None
            and self.scale
            and self.center
            and len(inputs.shape) == 4
            and self.axis in (3, -1)
            and keras.backend.standardize_dtype(inputs.dtype) in _FUSED_DTYPES
        )

    def call(self, inputs, training=None, mask=None):
        if self.folded:
            if training and self.trainable:
                raise ValueError(
                    f"{self.name} is folded into its convolution for inference; train the "
                    "unfolded model."
                )
            return ops.add(inputs, ops.cast(self.beta, inputs.dtype))
        if not (training and self.trainable and self._fused(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        stats = [ops.cast(v, "float32") for v in (self.gamma, self.beta)]
        empty = tf.constant([], tf.float32)
        outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=stats[0],
            offset=stats[1],
            mean=empty,
            variance=empty,
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        # The kernel returns the unbiased variance (n / (n - 1)); Keras keeps the biased.
        shape = tf.shape(inputs)
        count = tf.cast(shape[0] * shape[1] * shape[2], tf.float32)
        variance = variance * (tf.maximum(count - 1.0, 0.0) / tf.maximum(count, 1.0))
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return ops.cast(outputs, self.compute_dtype)


def batch_norm(
    name=None,
    axis=-1,
    synchronized=False,
    epsilon=BN_EPSILON,
    momentum=BN_MOMENTUM,
    dtype=None,
):
    """Returns a `BatchNorm` with EncNet's defaults.

    Args:
        name: layer name.
        axis: the feature axis; `1` normalises the codeword axis of `(B, K, D)`.
        synchronized: compute batch statistics across all replicas of a
            `tf.distribute` strategy (cross-replica "SyncBN").
        epsilon, momentum: as in `keras.layers.BatchNormalization`.
        dtype: dtype policy (a parent layer passes its own).
    """
    return BatchNorm(
        axis=axis,
        epsilon=epsilon,
        momentum=momentum,
        synchronized=synchronized,
        name=name,
        dtype=dtype,
    )
