import pytest

from enc_tf.layers import ConvBNReLU
from tests.support.layer_test import run_layer_test


@pytest.mark.parametrize("kernel_size,sync_batch_norm", [(1, False), (3, True)])
def test_layer_contract(kernel_size, sync_batch_norm, tmp_path):
    # conv kernel + BN gamma, beta; BN moving mean, variance.
    run_layer_test(
        ConvBNReLU,
        {"filters": 4, "kernel_size": kernel_size, "sync_batch_norm": sync_batch_norm},
        (2, 3, 5, 3),
        (2, 3, 5, 4),
        3,
        2,
        tmp_path,
    )
