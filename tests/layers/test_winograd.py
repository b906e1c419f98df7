"""Winograd's F(2x2, 3x3) against TensorFlow's direct convolution in float64."""

import numpy as np
import pytest
import tensorflow as tf

from enc_tf.layers.winograd import winograd_conv3x3


def _case(shape, filters, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=shape).astype(dtype))
    w = tf.constant(rng.normal(0, 0.2, size=(3, 3, shape[-1], filters)).astype(dtype))
    weight = tf.constant(rng.normal(size=(*shape[:-1], filters)).astype(dtype))
    return x, w, weight


def _value_and_gradients(convolution, x, w, weight):
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = convolution(x, w)
        loss = tf.reduce_sum(y * weight)  # a fixed, non-uniform weighting of the outputs
    return [y, *tape.gradient(loss, [x, w])]


def _direct(x, w):
    return tf.nn.conv2d(x, w, 1, "SAME")


@pytest.mark.parametrize("shape", [(2, 6, 8, 5), (1, 7, 5, 3), (3, 1, 1, 4), (1, 2, 9, 6)])
@pytest.mark.parametrize("group_channels", [None, 2])
def test_values_and_gradients_equal_the_direct_convolution(shape, group_channels):
    """In float64 the algorithm is exact (to rounding): even and odd sizes, a 1x1 image,
    channel groups of uneven width; the gradients for the input and the kernel too."""
    x, w, weight = _case(shape, 7)
    ours = _value_and_gradients(lambda x, w: winograd_conv3x3(x, w, group_channels), x, w, weight)
    reference = _value_and_gradients(_direct, x, w, weight)
    for a, b, name in zip(ours, reference, ("output", "input gradient", "kernel gradient")):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * float(np.abs(b).max()), err_msg=name)


def test_float32_stays_within_rounding_of_float64():
    """Wide channels as in EncNet's head: float32 within 1e-5 of the float64 result."""
    x64, w64, weight64 = _case((1, 10, 12, 256), 64, seed=1)
    reference = _value_and_gradients(_direct, x64, w64, weight64)
    x, w, weight = (tf.cast(t, tf.float32) for t in (x64, w64, weight64))
    ours = _value_and_gradients(lambda x, w: winograd_conv3x3(x, w, 128), x, w, weight)
    for a, b in zip(ours, reference):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * float(np.abs(b).max()))


def test_unknown_batch_and_spatial_sizes_in_a_graph():
    x, w, weight = _case((2, 7, 6, 4), 3)
    signature = [tf.TensorSpec([None, None, None, 4], tf.float64), tf.TensorSpec(w.shape, w.dtype)]
    function = tf.function(
        lambda x, w, weight: _value_and_gradients(winograd_conv3x3, x, w, weight),
        input_signature=[*signature, tf.TensorSpec([None, None, None, 3], tf.float64)],
    )
    for size in ((2, 7, 6), (1, 4, 9)):
        x, _, weight = _case((*size, 4), 3, seed=sum(size))
        for a, b in zip(function(x, w, weight), _value_and_gradients(_direct, x, w, weight)):
            np.testing.assert_allclose(a, b, atol=1e-12 * float(np.abs(b).max()))


def _ancestors(tensor):
    seen, stack = set(), [tensor.op]
    while stack:
        op = stack.pop()
        if op not in seen:
            seen.add(op)
            stack.extend(t.op for t in op.inputs)
    return seen


def test_the_gradient_recomputes_the_tiles_instead_of_keeping_them():
    """A training step keeps what a direct convolution's would (its input and kernel): the
    gradient's tiles and transformed kernel are made after the upstream gradient exists
    (a control dependency), so TensorFlow's graph optimiser cannot merge them with the
    forward pass's, which would then stay alive until the backward pass."""
    x, w, weight = _case((1, 6, 6, 4), 3, dtype="float32")
    graph = (
        tf.function(lambda x, w: _value_and_gradients(winograd_conv3x3, x, w, weight))
        .get_concrete_function(x, w)
        .graph
    )
    products = [op for op in graph.get_operations() if op.type == "BatchMatMulV2"]
    assert len(products) == 3  # forward; the kernel's and the input's gradients
    forward, kernel_gradient, input_gradient = products
    upstream = kernel_gradient.inputs[1].op  # the gradient of the 16 products
    for recomputed in (kernel_gradient.inputs[0], input_gradient.inputs[1]):
        assert any(upstream in op.control_inputs for op in _ancestors(recomputed))
        assert all(recomputed is not t for t in forward.inputs)


def test_other_kernels_are_refused():
    x, _, _ = _case((1, 4, 4, 3), 2)
    with pytest.raises(ValueError, match=r"\(3, 3, C, K\) kernel"):
        winograd_conv3x3(x, tf.zeros((5, 5, 3, 2), tf.float64))
    with pytest.raises(ValueError, match=r"\(3, 3, C, K\) kernel"):
        winograd_conv3x3(x, tf.zeros((3, 3, 4, 2), tf.float64))
