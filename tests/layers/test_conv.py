import keras
import numpy as np
import pytest
import tensorflow as tf

from enc_tf.layers import TunedConv2D
from enc_tf.layers.conv import SPLIT_INPUT_CHANNELS, WINOGRAD_MIN_CHANNELS
from enc_tf.machine import portable_kernels
from tests.support.layer_test import run_layer_test


def _pair(channels, filters=8, kernel_size=3, **kwargs):
    ours = TunedConv2D(filters, kernel_size, **kwargs)
    theirs = keras.layers.Conv2D(filters, kernel_size, **kwargs)
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


def _op_types(layer, x):
    return [op.type for op in tf.function(layer).get_concrete_function(x).graph.get_operations()]


def _conv_ops(layer, x):
    return _op_types(layer, x).count("Conv2D")


def _splitting(monkeypatch, split, winograd=False):
    """`KernelChoices` as on a machine that does (a CPU) or does not (a GPU) split wide
    convolutions and run 3x3 ones by Winograd's algorithm; the choice of the running
    process stays in force under `portable_kernels`."""
    import dataclasses

    from enc_tf.layers import conv
    from enc_tf.machine import kernel_choices

    def choices():
        real = kernel_choices()
        return dataclasses.replace(
            real, split_wide_convolutions=split, winograd=winograd and real.winograd
        )

    monkeypatch.setattr(conv, "kernel_choices", choices)


def _assert_same_function(ours, theirs, x):
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
        tape.gradient(loss_ours, [x, *ours.trainable_weights]),
        tape.gradient(loss_theirs, [x, *theirs.trainable_weights]),
    ):
        np.testing.assert_allclose(g_ours, g_theirs, atol=1e-5 * float(np.abs(g_theirs).max()))


def test_3x3_convolutions_run_by_winograd_with_the_same_result(monkeypatch):
    """Even and odd sizes (9 x 7), dilated ones, a bias, wide inputs in channel groups."""
    _splitting(monkeypatch, True, winograd=True)
    for channels, kwargs in (
        (WINOGRAD_MIN_CHANNELS, {"dilation_rate": 1, "use_bias": True}),
        (WINOGRAD_MIN_CHANNELS + 3, {"dilation_rate": 2, "use_bias": False}),
        (SPLIT_INPUT_CHANNELS + 76, {"dilation_rate": 4, "use_bias": False}),
    ):
        ours, theirs, x = _pair(channels, WINOGRAD_MIN_CHANNELS, padding="same", **kwargs)
        kinds = _op_types(ours, x)
        assert "Conv2D" not in kinds and kinds.count("BatchMatMulV2") >= 1, kwargs
        _assert_same_function(ours, theirs, x)


def test_winograd_runs_only_where_it_computes_the_same_convolution_faster(monkeypatch):
    """Not for strides, other kernel sizes, "valid" padding, narrow convolutions (no
    faster), bfloat16 (its rounding), nor in graphs for other runtimes."""
    _splitting(monkeypatch, True, winograd=True)
    wide = WINOGRAD_MIN_CHANNELS
    for channels, filters, kwargs in (
        (wide, wide, {"strides": 2, "padding": "same"}),
        (wide, wide, {"kernel_size": 1}),
        (wide, wide, {"kernel_size": 5, "padding": "same"}),
        (wide, wide, {"padding": "valid"}),
        (wide - 1, wide, {"padding": "same"}),
        (wide, wide - 1, {"padding": "same"}),
        (wide, wide, {"padding": "same", "dtype": "mixed_bfloat16"}),
    ):
        ours, _, x = _pair(channels, filters, **kwargs)
        assert _conv_ops(ours, x) == 1, (channels, filters, kwargs)
    ours, theirs, x = _pair(wide, wide, padding="same")
    with portable_kernels():
        assert _conv_ops(ours, x) == 1
    assert _conv_ops(ours, x) == 0


def test_wide_inputs_are_split_into_channel_groups_with_the_same_result(monkeypatch):
    # 1100 channels: groups of 512, 512 and 76.
    _splitting(monkeypatch, True)
    for kwargs in ({"padding": "same"}, {"padding": "valid", "dilation_rate": 2}):
        ours, theirs, x = _pair(2 * SPLIT_INPUT_CHANNELS + 76, use_bias=True, **kwargs)
        assert _conv_ops(ours, x) == 3 and _conv_ops(theirs, x) == 1
        _assert_same_function(ours, theirs, x)


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


@pytest.mark.parametrize("channels, filters", [(SPLIT_INPUT_CHANNELS + 8, 4), (128, 128)])
def test_layer_contract(tmp_path, channels, filters):
    """Split, and by Winograd's algorithm (on CPUs; unknown sizes included)."""
    run_layer_test(
        TunedConv2D,
        {"filters": filters, "kernel_size": (3, 3), "padding": "same", "use_bias": False},
        (2, 6, 5, channels),
        (2, 6, 5, filters),
        1,
        0,
        tmp_path,
    )
