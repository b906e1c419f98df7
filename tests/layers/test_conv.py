import keras
import numpy as np
import tensorflow as tf

from enc_tf.layers import SplitConv2D
from enc_tf.layers.conv import SPLIT_INPUT_CHANNELS
from tests.support.layer_test import run_layer_test


def _pair(channels, **kwargs):
    ours, theirs = SplitConv2D(8, 3, **kwargs), keras.layers.Conv2D(8, 3, **kwargs)
    shape = (2, 9, 7, channels)
    ours.build(shape)
    theirs.build(shape)
    rng = np.random.default_rng(0)
    for a, b in zip(ours.weights, theirs.weights):
        value = rng.normal(0, 0.05, a.shape).astype("float32")
        a.assign(value)
        b.assign(value)
    x = tf.constant(rng.normal(size=shape).astype("float32"))
    return ours, theirs, x


def _conv_ops(layer, x):
    graph = tf.function(layer).get_concrete_function(x).graph
    return sum(op.type == "Conv2D" for op in graph.get_operations())


def _splitting(monkeypatch, split):
    """`KernelChoices` as on a machine that does (oneDNN on a CPU) or does not split."""
    import dataclasses

    from enc_tf.layers import conv
    from enc_tf.machine import kernel_choices

    choices = dataclasses.replace(kernel_choices(), split_wide_convolutions=split)
    monkeypatch.setattr(conv, "kernel_choices", lambda: choices)


def test_wide_inputs_are_split_into_channel_groups_with_the_same_result(monkeypatch):
    # 1100 channels: groups of 512, 512 and 76.
    _splitting(monkeypatch, True)
    for kwargs in ({"padding": "same"}, {"padding": "valid", "dilation_rate": 2}):
        ours, theirs, x = _pair(2 * SPLIT_INPUT_CHANNELS + 76, use_bias=True, **kwargs)
        assert _conv_ops(ours, x) == 3 and _conv_ops(theirs, x) == 1
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            y_ours, y_theirs = ours(x), theirs(x)
            weight = tf.stop_gradient(tf.cos(y_theirs))  # a fixed, non-uniform weighting
            loss_ours, loss_theirs = (
                tf.reduce_sum(y_ours * weight),
                tf.reduce_sum(y_theirs * weight),
            )
        scale = float(np.abs(y_theirs).max())
        np.testing.assert_allclose(y_ours, y_theirs, atol=1e-5 * scale)
        for g_ours, g_theirs in zip(
            tape.gradient(loss_ours, [x, ours.kernel, ours.bias]),
            tape.gradient(loss_theirs, [x, theirs.kernel, theirs.bias]),
        ):
            np.testing.assert_allclose(g_ours, g_theirs, atol=1e-5 * float(np.abs(g_theirs).max()))


def test_the_gradient_of_the_groups_is_one_concatenation(monkeypatch):
    """The forward pass slices the groups (what TFLite's XNNPACK delegate runs); their
    gradient is one concatenation, not TensorFlow's zero-filled full-width tensor per
    slice, summed (training steps 4-5% slower). Eagerly and in a graph alike."""
    _splitting(monkeypatch, True)
    ours, theirs, x = _pair(2 * SPLIT_INPUT_CHANNELS + 76, padding="same")
    weight = tf.constant(np.random.default_rng(1).normal(size=(2, 9, 7, 8)).astype("float32"))

    def gradients(layer, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * weight)
        return tape.gradient(loss, [x, layer.kernel])

    for g_ours, g_theirs in zip(gradients(ours, x), gradients(theirs, x)):
        np.testing.assert_allclose(g_ours, g_theirs, atol=1e-5 * float(np.abs(g_theirs).max()))
    graph = tf.function(gradients).get_concrete_function(ours, x).graph
    kinds = [op.type for op in graph.get_operations()]
    assert "StridedSliceGrad" not in kinds and kinds.count("StridedSlice") == 6
    assert kinds.count("ConcatV2") == 2 and "SplitV" not in kinds


def test_narrow_inputs_are_one_convolution(monkeypatch):
    _splitting(monkeypatch, True)
    ours, theirs, x = _pair(SPLIT_INPUT_CHANNELS, padding="same")
    assert _conv_ops(ours, x) == 1
    np.testing.assert_array_equal(ours(x), theirs(x))


def test_wide_inputs_are_one_convolution_where_the_kernels_take_them_whole(monkeypatch):
    """GPUs: no slices."""
    _splitting(monkeypatch, False)
    ours, theirs, x = _pair(2 * SPLIT_INPUT_CHANNELS + 76, padding="same")
    assert _conv_ops(ours, x) == 1
    np.testing.assert_array_equal(ours(x), theirs(x))


def test_layer_contract(tmp_path):
    run_layer_test(
        SplitConv2D,
        {"filters": 4, "kernel_size": (3, 3), "padding": "same", "use_bias": False},
        (2, 6, 5, SPLIT_INPUT_CHANNELS + 8),
        (2, 6, 5, 4),
        1,
        0,
        tmp_path,
    )
