import pytest

from enc_tf.layers import batch_norm
from tests.support.layer_test import run_layer_test


@pytest.mark.parametrize(
    "kwargs,input_shape,dynamic_input_shape",
    [
        ({}, (2, 3, 4, 5), None),
        # EncModule's BatchNorm over the codeword axis of (B, K, D): K must be known.
        ({"axis": 1, "synchronized": True}, (3, 4, 5), (None, 4, 5)),
    ],
)
def test_layer_contract(kwargs, input_shape, dynamic_input_shape, tmp_path):
    run_layer_test(
        batch_norm,
        kwargs,
        input_shape,
        input_shape,
        2,
        2,
        tmp_path,
        dynamic_input_shape=dynamic_input_shape,
    )


def _pair(shape, seed=0, **kwargs):
    """Our BatchNorm and Keras's, with the same random weights and statistics."""
    import keras
    import numpy as np

    from enc_tf.layers.normalization import BatchNorm

    ours, theirs = BatchNorm(**kwargs), keras.layers.BatchNormalization(**kwargs)
    ours.build(shape)
    theirs.build(shape)
    rng = np.random.default_rng(seed)
    for a, b in zip(ours.weights, theirs.weights):
        value = rng.uniform(0.5, 1.5, a.shape).astype("float32")
        a.assign(value)
        b.assign(value)
    return ours, theirs


def _float64_training_step(x, gamma, beta, mean, var, eps, momentum):
    """Batch normalisation in training as Keras defines it, in float64 NumPy."""
    import numpy as np

    x = x.astype(np.float64)
    batch_mean = x.mean(axis=(0, 1, 2))
    batch_var = x.var(axis=(0, 1, 2))  # biased, as Keras keeps it
    y = (x - batch_mean) / np.sqrt(batch_var + eps) * gamma + beta
    return (
        y,
        mean * momentum + batch_mean * (1 - momentum),
        var * momentum + batch_var * (1 - momentum),
    )


def test_fused_training_matches_keras_and_float64():
    """The fused kernel trains the same function: outputs, gradients and moving
    statistics, against Keras's BatchNormalization and a float64 reference."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, size=(2, 7, 9, 16)).astype("float32")
    ours, theirs = _pair(x.shape, epsilon=1e-5, momentum=0.9)
    start = [w.numpy().astype(np.float64) for w in ours.weights]
    xt = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(xt)
        y_ours, y_theirs = ours(xt, training=True), theirs(xt, training=True)
        weight = tf.sin(xt)
        loss_ours, loss_theirs = tf.reduce_sum(y_ours * weight), tf.reduce_sum(y_theirs * weight)
    y64, mean64, var64 = _float64_training_step(x, *start, eps=1e-5, momentum=0.9)
    np.testing.assert_allclose(y_ours, y64, atol=2e-5)
    np.testing.assert_allclose(y_ours, y_theirs, atol=2e-5)
    np.testing.assert_allclose(ours.moving_mean, mean64, rtol=1e-6)
    np.testing.assert_allclose(ours.moving_variance, var64, rtol=1e-5)
    np.testing.assert_allclose(ours.moving_variance, theirs.moving_variance, rtol=1e-6)
    grads_ours = tape.gradient(loss_ours, [xt, ours.gamma, ours.beta])
    grads_theirs = tape.gradient(loss_theirs, [xt, theirs.gamma, theirs.beta])
    for g_ours, g_theirs in zip(grads_ours, grads_theirs):
        scale = float(np.abs(g_theirs).max())
        np.testing.assert_allclose(g_ours, g_theirs, atol=1e-5 * scale)
    # The fused kernel really ran (a Keras implementation detail would not name it).
    graph = tf.function(lambda t: ours(t, training=True)).get_concrete_function(xt).graph
    assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}


def test_inference_and_other_cases_take_keras_path():
    import numpy as np
    import tensorflow as tf

    x = np.random.default_rng(2).normal(size=(2, 5, 6, 8)).astype("float32")
    ours, theirs = _pair(x.shape)
    np.testing.assert_array_equal(ours(x, training=False), theirs(x, training=False))
    graph = tf.function(lambda t: ours(t, training=False)).get_concrete_function(x).graph
    assert "FusedBatchNormV3" not in {op.type for op in graph.get_operations()}
    synced, reference = _pair(x.shape, synchronized=True)
    np.testing.assert_allclose(synced(x, training=True), reference(x, training=True), atol=1e-6)
    graph = tf.function(lambda t: synced(t, training=True)).get_concrete_function(x).graph
    assert "FusedBatchNormV3" not in {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_fused_training_under_mixed_precision(policy):
    import keras
    import numpy as np

    x = np.random.default_rng(3).normal(size=(2, 6, 6, 8)).astype("float32")
    ours, theirs = _pair(x.shape, dtype=policy)
    y_ours, y_theirs = ours(x, training=True), theirs(x, training=True)
    assert keras.backend.standardize_dtype(y_ours.dtype) == policy.split("_")[1]
    assert all(w.dtype == "float32" for w in ours.weights)
    tolerance = 3e-2 if policy == "mixed_bfloat16" else 5e-3
    np.testing.assert_allclose(
        np.asarray(y_ours, np.float32), np.asarray(y_theirs, np.float32), atol=tolerance
    )
    np.testing.assert_allclose(ours.moving_variance, theirs.moving_variance, rtol=1e-3)
