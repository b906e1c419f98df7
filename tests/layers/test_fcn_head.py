import numpy as np
import pytest

from enc_tf.layers import FCNHead
from tests.support.layer_test import run_layer_test


def test_matches_float64_reference_and_width_rule():
    head = FCNHead(4)
    x = np.random.default_rng(0).normal(size=(1, 5, 6, 64)).astype("float32")
    out = head(x, training=False)
    assert out.shape == (1, 5, 6, 4)
    assert head.block.conv.kernel.shape == (3, 3, 64, 16)  # a quarter of the input width
    kernel = head.block.conv.kernel.numpy().astype(np.float64)
    padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = sum(
        np.einsum("bhwc,cd->bhwd", padded[:, i : i + 5, j : j + 6], kernel[i, j])
        for i in range(3)
        for j in range(3)
    )
    gamma, beta, mean, var = head.block.bn.get_weights()
    hidden = np.maximum((conv - mean) / np.sqrt(var + 1e-5) * gamma + beta, 0)
    expected = hidden @ head.classifier.kernel.numpy()[0, 0] + head.classifier.bias.numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_explicit_width_and_dropout_only_in_training():
    head = FCNHead(3, channels=8, dropout=0.5)
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 16)).astype("float32")
    np.testing.assert_array_equal(head(x, training=False), head(x, training=False))
    assert head.block.conv.kernel.shape[-1] == 8
    assert not np.allclose(head(x, training=True), head(x, training=True))


@pytest.mark.parametrize("channels", [None, 3])
def test_layer_contract(channels, tmp_path):
    # block: conv kernel, BN gamma, beta (+ 2 statistics); classifier kernel, bias.
    run_layer_test(
        FCNHead,
        {"num_classes": 3, "channels": channels},
        (2, 3, 4, 8),
        (2, 3, 4, 3),
        5,
        2,
        tmp_path,
    )
