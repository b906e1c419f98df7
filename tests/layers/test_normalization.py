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
