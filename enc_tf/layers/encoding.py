"""The Encoding layer of EncNet (Zhang et al., CVPR 2018, Sec. 3.1)."""

import math

import keras
from keras import ops

from enc_tf.layers.arguments import positive_int


def scaled_l2(x, codewords, scale):
    """Scaled squared distances `s_k * ||x_i - c_k||^2` in matmul form.

    Args:
        x: `(B, N, D)` features.
        codewords: `(K, D)` codewords.
        scale: `(K,)` smoothing factors.

    Returns:
        `(B, N, K)`. The `(B, N, K, D)` residual tensor is never built:
        `||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2`.
    """
    x_sq = ops.sum(ops.square(x), axis=-1, keepdims=True)  # (B, N, 1)
    c_sq = ops.sum(ops.square(codewords), axis=-1)  # (K,)
    x_dot_c = ops.matmul(x, ops.transpose(codewords))  # (B, N, K)
    return scale * (x_sq - 2.0 * x_dot_c + c_sq)


def aggregate(assignments, x, codewords):
    """Residual encoding `E_k = sum_i a_ik (x_i - c_k)` in matmul form.

    Args:
        assignments: `(B, N, K)` soft assignments.
        x: `(B, N, D)` features.
        codewords: `(K, D)` codewords.

    Returns:
        `(B, K, D)`, computed as `A^T X - (sum_i A)[..., None] * C`.
    """
    weighted = ops.matmul(ops.transpose(assignments, (0, 2, 1)), x)  # (B, K, D)
    mass = ops.expand_dims(ops.sum(assignments, axis=1), -1)  # (B, K, 1)
    return weighted - mass * codewords


@keras.saving.register_keras_serializable(package="enc_tf")
class Encoding(keras.layers.Layer):
    """Learnable residual encoding over a dictionary of `num_codes` codewords.

    Each feature `x_i` is softly assigned to the codewords with weights
    `softmax_k(s_k * ||x_i - c_k||^2)` (the smoothing factors `s_k` are
    negative), and the residuals `x_i - c_k` are summed per codeword. The
    computation runs in float32 under the mixed (16-bit) policies, in float64
    under a float64 policy, and is returned in the layer's compute dtype.

    Args:
        num_codes: int, number of codewords `K`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Input shape:
        `(B, H, W, D)`; `H` and `W` may be unknown.

    Output shape:
        `(B, K, D)`.

    Example:
    >>> x = keras.random.normal((2, 6, 8, 16))
    >>> Encoding(num_codes=4)(x).shape
    (2, 4, 16)
    """

    def __init__(self, num_codes=32, **kwargs):
        super().__init__(**kwargs)
        self.num_codes = positive_int("Encoding", "num_codes", num_codes)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"Encoding: the channel axis of the input must be known, got shape {input_shape}."
            )
        bound = 1.0 / math.sqrt(self.num_codes * channels)
        # autocast=False keeps the float32 variables float32 under mixed precision.
        self._work_dtype = "float64" if self.variable_dtype == "float64" else "float32"
        self.codewords = self.add_weight(
            name="codewords",
            shape=(self.num_codes, channels),
            initializer=keras.initializers.RandomUniform(-bound, bound),
            dtype=self._work_dtype,
            autocast=False,
        )
        self.scale = self.add_weight(
            name="scale",
            shape=(self.num_codes,),
            initializer=keras.initializers.RandomUniform(-1.0, 0.0),
            dtype=self._work_dtype,
            autocast=False,
        )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})

    def call(self, inputs):
        channels = self.codewords.shape[-1]
        x = ops.cast(inputs, self.codewords.dtype)
        x = ops.reshape(x, (ops.shape(x)[0], -1, channels))  # (B, N, D), n = h*W + w
        assignments = ops.softmax(scaled_l2(x, self.codewords, self.scale), axis=-1)
        encoded = aggregate(assignments, x, self.codewords)
        return ops.cast(encoded, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_codes, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"num_codes": self.num_codes})
        return config
