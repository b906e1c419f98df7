import keras
import numpy as np
import pytest

from enc_tf.layers import EncModule
from tests.layers.test_encoding import reference_encoding
from tests.support.layer_test import run_layer_test


def _randomise(layer, seed=0):
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        if "moving_variance" in w.path:
            w.assign(rng.uniform(0.5, 2.0, w.shape).astype("float32"))
        elif "scale" in w.path:
            w.assign(rng.uniform(-1.0, -0.1, w.shape).astype("float32"))
        else:
            w.assign((rng.normal(size=w.shape) * 0.2).astype("float32"))


def _bn(x, bn):
    gamma, beta, mean, var = (np.asarray(v, np.float64) for v in bn.get_weights())
    shape = [1] * x.ndim
    shape[bn.axis[0] if isinstance(bn.axis, (list, tuple)) else bn.axis] = -1
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + 1e-5) * gamma.reshape(
        shape
    ) + beta.reshape(shape)


def reference_enc_module(x, layer):
    """Float64 NumPy EncModule in inference mode (the paper's Section 3.1)."""
    x = np.asarray(x, np.float64)
    proj = np.einsum("bhwc,cd->bhwd", x, layer.project.conv.kernel.numpy()[0, 0].astype(np.float64))
    feats = np.maximum(_bn(proj, layer.project.bn), 0)
    encoded = reference_encoding(
        feats, layer.encoding.codewords.numpy(), layer.encoding.scale.numpy()
    )
    encoded_bn = np.maximum(_bn(encoded, layer.bn_codes), 0)
    en = encoded_bn.mean(axis=1)
    gamma = 1 / (1 + np.exp(-(en @ layer.fc.kernel.numpy() + layer.fc.bias.numpy())))
    out = np.maximum(x + x * gamma[:, None, None, :], 0)
    se = en @ layer.se_head.kernel.numpy() + layer.se_head.bias.numpy()
    return {
        "X": feats,
        "E": encoded,
        "E_bn_relu": encoded_bn,
        "en": en,
        "gamma": gamma,
        "out": out,
        "se": se,
    }


def test_matches_float64_reference():
    layer = EncModule(num_classes=5, num_codes=4)
    x = np.random.default_rng(1).normal(size=(2, 5, 6, 16)).astype("float32")
    layer(x)
    _randomise(layer)
    ours = layer.compute_intermediates(x, training=False)
    expected = reference_enc_module(x, layer)
    for key, value in expected.items():
        np.testing.assert_allclose(ours[key], value, rtol=2e-4, atol=2e-5, err_msg=key)
    out, se = layer(x, training=False)
    np.testing.assert_array_equal(out, ours["out"])
    np.testing.assert_array_equal(se, ours["se"])


def test_batch_norm_over_codewords_uses_batch_and_channel_statistics():
    layer = EncModule(num_classes=3, num_codes=4)
    x = np.random.default_rng(2).normal(size=(3, 4, 4, 8)).astype("float32")
    layer(x)
    bn = layer.bn_codes
    assert bn.moving_mean.shape == (4,)
    # One training call: E from batch statistics, and the moving mean updated with momentum 0.9.
    encoded = np.asarray(layer.compute_intermediates(x, training=True)["E"], np.float64)
    np.testing.assert_allclose(
        bn.moving_mean.numpy(), 0.1 * encoded.mean(axis=(0, 2)), rtol=1e-4, atol=1e-6
    )
    assert bn.epsilon == 1e-5 and bn.momentum == 0.9


def test_without_se_head_and_sync_flag():
    layer = EncModule(num_classes=3, num_codes=4, se_loss=False, sync_batch_norm=True)
    layer(np.zeros((1, 3, 3, 8), "float32"))
    norms = [
        sublayer
        for sublayer in layer._flatten_layers(include_self=False)
        if isinstance(sublayer, keras.layers.BatchNormalization)
    ]
    assert len(norms) == 2 and all(n.synchronized for n in norms)
    assert "se" not in layer.compute_intermediates(np.zeros((1, 3, 3, 8), "float32"))


@pytest.mark.parametrize(
    "se_loss,output_shape,num_trainable",
    # project conv, BN (2); codewords, scale; bn_codes (2); fc (2); se_head (2).
    # BN statistics: 2 + 2.
    [(True, ((2, 3, 4, 6), (2, 3)), 11), (False, (2, 3, 4, 6), 9)],
)
def test_layer_contract(se_loss, output_shape, num_trainable, tmp_path):
    run_layer_test(
        EncModule,
        {"num_classes": 3, "num_codes": 4, "se_loss": se_loss},
        (2, 3, 4, 6),
        output_shape,
        num_trainable,
        4,
        tmp_path,
    )
