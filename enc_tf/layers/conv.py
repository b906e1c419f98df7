"""A 2D convolution that splits a wide input into channel groups on CPUs."""

import keras
from keras import ops

from enc_tf.machine import kernel_choices

SPLIT_INPUT_CHANNELS = 512  # the widest input one convolution reads on a CPU


@keras.saving.register_keras_serializable(package="enc_tf")
class SplitConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose convolution, where the machine's kernels want it
    (`enc_tf.machine.KernelChoices.split_wide_convolutions`: on CPUs), runs as a sum of
    convolutions over groups of at most `SPLIT_INPUT_CHANNELS` input channels.

    The same function and weights (the kernel is sliced, not reshaped), within float32
    rounding; the gradients too (`_channel_groups`). Why: on CPUs TensorFlow's
    convolutions are slow for wide inputs, and EncHead's first 3x3 conv (2048 -> 512
    channels at stride 8) is a quarter of EncNet-ResNet50's FLOPs; four convolutions of
    512 channels ran it faster (oneDNN with AVX-512 and with AVX2 kernels; the measured
    figures and their CPUs: docs/benchmarks.md). GPUs (cuDNN) take the single
    convolution. Grouped convolutions (`groups > 1`) take Keras's path.
    """

    def _split(self, kernel):
        return (
            keras.backend.backend() == "tensorflow"
            and self.groups == 1
            and kernel.shape[2] > SPLIT_INPUT_CHANNELS
            and kernel_choices().split_wide_convolutions
        )

    def convolution_op(self, inputs, kernel):
        if not self._split(kernel):
            return super().convolution_op(inputs, kernel)
        channels = kernel.shape[2]
        bounds = [
            (start, min(start + SPLIT_INPUT_CHANNELS, channels))
            for start in range(0, channels, SPLIT_INPUT_CHANNELS)
        ]
        parts = [
            super(SplitConv2D, self).convolution_op(group, weights)
            for group, weights in zip(
                _channel_groups(inputs, bounds, axis=3), _channel_groups(kernel, bounds, axis=2)
            )
        ]
        total = parts[0]
        for part in parts[1:]:
            total = ops.add(total, part)
        return total


def _channel_groups(x, bounds, axis):
    """Slices `[start, stop)` of `x` along `axis` (a 4-D tensor) whose gradient is one
    concatenation of the slices' gradients. TensorFlow's own gradient of a slice is a
    zero-filled tensor of `x`'s full width, one per slice, then summed: EncNet-ResNet50's
    training steps ran 4-5% faster without them (docs/benchmarks.md). The forward pass
    stays slices, which TFLite's XNNPACK delegate runs (it does not run an uneven SPLIT_V)."""
    import tensorflow as tf  # the split path runs on TensorFlow only (`_split`)

    @tf.custom_gradient
    def groups(x):
        def gradient(*upstream):
            return tf.concat(upstream, axis=axis)

        leading = (slice(None),) * axis
        return [x[leading + (slice(start, stop),)] for start, stop in bounds], gradient

    return groups(tf.convert_to_tensor(x))
