"""A 2D convolution run by the algorithm the machine's kernels run fastest."""

import keras
from keras import ops

from enc_tf.machine import kernel_choices

SPLIT_INPUT_CHANNELS = 512  # the widest input one convolution reads on a CPU
# The narrowest convolution (input and output channels) Winograd's algorithm runs: narrower
# ones measured no faster (docs/benchmarks.md, "Choices per machine").
WINOGRAD_MIN_CHANNELS = 128


@keras.saving.register_keras_serializable(package="enc_tf")
class TunedConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` that computes the same convolution with the same weights by
    the algorithm the machine's kernels run fastest (`enc_tf.machine.KernelChoices`):

    - `winograd` (CPUs): a 3x3, stride-1, "same" convolution in float32 with at least
      `WINOGRAD_MIN_CHANNELS` input and output channels runs by Winograd's F(2x2, 3x3)
      (`enc_tf.layers.winograd`; dilated ones on the `dilation_rate`-strided sub-grids, as
      TensorFlow runs them). 2.25 times fewer multiply-adds: the 3x3 convolutions are most
      of a dilated ResNet's and of EncHead's, and TensorFlow's CPU kernels run them slower
      than the matrix products Winograd's algorithm is made of.
    - `split_wide_convolutions` (CPUs), for the others: a convolution over more than
      `SPLIT_INPUT_CHANNELS` input channels runs as a sum over groups of at most that many
      (the kernel is sliced, not reshaped); its gradient is one concatenation
      (`_channel_groups`).
    - else (GPUs, and other convolutions) Keras's own convolution.

    Results equal Keras's within float32 rounding, gradients too; the measured speeds and
    their CPUs: docs/benchmarks.md. Exports for other runtimes trace it under
    `enc_tf.machine.portable_kernels()` (no Winograd). Grouped convolutions (`groups > 1`)
    take Keras's path.

    Example:
    >>> TunedConv2D(8, 3, padding="same")(keras.random.normal((1, 5, 5, 4))).shape
    (1, 5, 5, 8)
    """

    def _algorithm(self, inputs, kernel):
        if keras.backend.backend() != "tensorflow" or self.groups != 1:
            return "keras"
        choices = kernel_choices()
        if (
            choices.winograd
            and tuple(self.kernel_size) == (3, 3)
            and tuple(self.strides) == (1, 1)
            and self.dilation_rate[0] == self.dilation_rate[1]
            and self.padding == "same"
            and self.data_format == "channels_last"
            and min(kernel.shape[2], kernel.shape[3]) >= WINOGRAD_MIN_CHANNELS
            and keras.backend.standardize_dtype(inputs.dtype) == "float32"
        ):
            return "winograd"
        if choices.split_wide_convolutions and kernel.shape[2] > SPLIT_INPUT_CHANNELS:
            return "split"
        return "keras"

    def convolution_op(self, inputs, kernel):
        algorithm = self._algorithm(inputs, kernel)
        if algorithm == "winograd":
            return _winograd(inputs, kernel, self.dilation_rate[0])
        if algorithm == "keras":
            return super().convolution_op(inputs, kernel)
        channels = kernel.shape[2]
        bounds = [
            (start, min(start + SPLIT_INPUT_CHANNELS, channels))
            for start in range(0, channels, SPLIT_INPUT_CHANNELS)
        ]
        parts = [
            super(TunedConv2D, self).convolution_op(group, weights)
            for group, weights in zip(
                _channel_groups(inputs, bounds, axis=3), _channel_groups(kernel, bounds, axis=2)
            )
        ]
        total = parts[0]
        for part in parts[1:]:
            total = ops.add(total, part)
        return total


def _winograd(inputs, kernel, dilation):
    """A 3x3 "same" convolution with `dilation` by `winograd_conv3x3`: dilated, on each of
    the `dilation**2` sub-grids (TensorFlow's `SpaceToBatchND` wrapping), whose padding
    beyond the image is the same zeros."""
    import tensorflow as tf  # the Winograd path runs on TensorFlow only (`_algorithm`)

    from enc_tf.layers.winograd import winograd_conv3x3

    if dilation == 1:
        return winograd_conv3x3(inputs, kernel, SPLIT_INPUT_CHANNELS)
    height, width = tf.shape(inputs)[1], tf.shape(inputs)[2]
    pad = [[0, (-height) % dilation], [0, (-width) % dilation]]
    grids = tf.space_to_batch(inputs, [dilation, dilation], pad)
    outputs = winograd_conv3x3(grids, kernel, SPLIT_INPUT_CHANNELS)
    return tf.batch_to_space(outputs, [dilation, dilation], pad)


def _channel_groups(x, bounds, axis):
    """Slices `[start, stop)` of `x` along `axis` (a 4-D tensor) whose gradient is one
    concatenation of the slices' gradients. TensorFlow's own gradient of a slice is a
    zero-filled tensor of `x`'s full width, one per slice, then summed: EncNet-ResNet50's
    training steps ran 4-5% faster without them (docs/benchmarks.md). The forward pass
    stays slices, which TFLite's XNNPACK delegate runs (it does not run an uneven SPLIT_V)."""
    import tensorflow as tf  # the split path runs on TensorFlow only (`_algorithm`)

    @tf.custom_gradient
    def groups(x):
        def gradient(*upstream):
            return tf.concat(upstream, axis=axis)

        leading = (slice(None),) * axis
        return [x[leading + (slice(start, stop),)] for start, stop in bounds], gradient

    return groups(tf.convert_to_tensor(x))
