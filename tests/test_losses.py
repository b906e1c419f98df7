import numpy as np
import pytest

from enc_tf.losses import (
    PresenceBinaryCrossEntropy,
    SegmentationCrossEntropy,
    encnet_loss_terms,
    encnet_losses,
)


def reference_ce(labels, logits, ignore):
    logits = logits.astype(np.float64)
    log_probs = (
        logits
        - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
        - logits.max(-1, keepdims=True)
    )
    valid = labels != ignore
    picked = np.take_along_axis(log_probs, np.where(valid, labels, 0)[..., None], axis=-1)[..., 0]
    return -picked[valid].sum() / max(valid.sum(), 1)


def test_cross_entropy_skips_the_ignore_value():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 6, 4)).astype("float32") * 3
    labels = rng.integers(0, 4, size=(2, 5, 6))
    labels[0, :2] = 255
    loss = SegmentationCrossEntropy()
    np.testing.assert_allclose(
        float(loss(labels, logits)), reference_ce(labels, logits, 255), rtol=1e-6
    )
    np.testing.assert_allclose(
        float(loss(labels[..., None], logits)), reference_ce(labels, logits, 255), rtol=1e-6
    )
    # Mean over the valid pixels of the whole batch, not per image.
    assert (
        abs(
            float(loss(labels, logits))
            - np.mean([reference_ce(labels[i], logits[i], 255) for i in range(2)])
        )
        > 1e-4
    )
    assert float(loss(np.full((1, 2, 2), 255), logits[:1, :2, :2])) == 0.0
    minus_one = np.where(labels == 255, -1, labels)
    np.testing.assert_allclose(
        float(SegmentationCrossEntropy(ignore_index=-1)(minus_one, logits)),
        reference_ce(labels, logits, 255),
        rtol=1e-6,
    )


def test_softmax_cross_entropy_and_its_gradient_follow_the_definition():
    """Values and gradients against float64 `logsumexp(z) - z[y]` and `softmax(z) - onehot(y)`
    (far-off logits included) and against TensorFlow's fused kernel; the training graph does
    not run that kernel."""
    import tensorflow as tf

    from enc_tf.losses import softmax_cross_entropy

    rng = np.random.default_rng(5)
    logits = rng.normal(size=(2, 6, 7, 5)) * 4
    logits[0, 0, 0] += 500.0  # exp would overflow without the shift by the peak
    labels = rng.integers(0, 5, size=(2, 6, 7))
    weights = rng.uniform(size=(2, 6, 7))
    weights[1, :3] = 0.0  # as ignored pixels
    shifted = logits - logits.max(-1, keepdims=True)
    softmax = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
    expected = -np.log(np.take_along_axis(softmax, labels[..., None], -1)[..., 0])
    expected_grad = (softmax - np.eye(5)[labels]) * weights[..., None]

    def loss_and_grad(fn, dtype):
        z = tf.constant(logits, dtype)
        with tf.GradientTape() as tape:
            tape.watch(z)
            values = fn(tf.constant(labels, tf.int32), z)
            total = tf.reduce_sum(values * tf.constant(weights, dtype))
        return values.numpy(), tape.gradient(total, z).numpy()

    for dtype, tol in (("float64", 1e-12), ("float32", 2e-5)):
        values, grad = loss_and_grad(softmax_cross_entropy, dtype)
        assert values.dtype == dtype and grad.dtype == dtype
        np.testing.assert_allclose(values, expected, rtol=tol, atol=tol)
        np.testing.assert_allclose(grad, expected_grad, rtol=tol, atol=tol)
    fused = loss_and_grad(
        lambda y, z: tf.nn.sparse_softmax_cross_entropy_with_logits(y, z), "float32"
    )
    ours = loss_and_grad(softmax_cross_entropy, "float32")
    as_arrays = softmax_cross_entropy(labels, logits.astype("float32")).numpy()  # NumPy in
    np.testing.assert_allclose(as_arrays, ours[0], rtol=1e-6)
    np.testing.assert_allclose(ours[0], fused[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours[1], fused[1], rtol=1e-6, atol=1e-6)

    loss = SegmentationCrossEntropy()

    @tf.function
    def step(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            value = loss(labels, z)
        return tape.gradient(value, z)

    graph = step.get_concrete_function(tf.constant(logits, tf.float32)).graph
    kinds = {op.type for op in graph.get_operations()}
    assert not any("SoftmaxCrossEntropy" in kind for kind in kinds), kinds


def test_float64_losses_compute_in_float64():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 4, 4, 3)) * 3
    labels = rng.integers(0, 3, size=(2, 4, 4))
    losses, _ = encnet_losses(dtype="float64")
    value = losses["seg"](labels, logits)
    assert value.dtype == "float64"
    np.testing.assert_allclose(float(value), reference_ce(labels, logits, 255), rtol=1e-13)


def test_presence_bce_matches_reference_and_is_stable():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 5)).astype("float32") * 4
    targets = (rng.random((3, 5)) > 0.5).astype("float32")
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    expected = -np.mean(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    np.testing.assert_allclose(
        float(PresenceBinaryCrossEntropy()(targets, logits)), expected, rtol=1e-6
    )
    extreme = float(
        PresenceBinaryCrossEntropy()(np.array([[1.0, 0.0]]), np.array([[-200.0, 200.0]], "float32"))
    )
    np.testing.assert_allclose(extreme, 200.0, rtol=1e-6)


def test_loss_terms_and_weights():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, size=(2, 4, 4))
    outputs = {
        "seg": rng.normal(size=(2, 4, 4, 3)).astype("float32"),
        "aux": rng.normal(size=(2, 4, 4, 3)).astype("float32"),
        "se": rng.normal(size=(2, 3)).astype("float32"),
    }
    terms = encnet_loss_terms(outputs, labels, aux_weight=0.4, se_weight=0.1)
    total = float(terms["ce_seg"]) + 0.4 * float(terms["ce_aux"]) + 0.1 * float(terms["bce_se"])
    np.testing.assert_allclose(float(terms["total"]), total, rtol=1e-6)
    only_seg = encnet_loss_terms({"seg": outputs["seg"]}, labels)
    assert set(only_seg) == {"ce_seg", "total"}
    losses, weights = encnet_losses(aux=False)
    assert set(losses) == {"seg", "se"} and weights == {"seg": 1.0, "se": 0.2}


@pytest.mark.parametrize("cls", [SegmentationCrossEntropy, PresenceBinaryCrossEntropy])
def test_config_round_trip(cls):
    loss = cls()
    assert type(cls.from_config(loss.get_config())) is cls
    if cls is SegmentationCrossEntropy:
        assert cls.from_config(cls(ignore_index=-1).get_config()).ignore_index == -1
