"""Every layer refuses a bad constructor argument with what it received, as Keras's layers do,
instead of coercing it (int(2.7) == 2, bool("false") is True)."""

import numpy as np
import pytest

from enc_tf.layers import ConvBNReLU, EncHead, EncModule, Encoding, FCNHead

GOOD = {
    ConvBNReLU: {"filters": 4},
    EncHead: {"num_classes": 3},
    EncModule: {"num_classes": 3},
    FCNHead: {"num_classes": 3},
    Encoding: {},
}
BAD = [
    (ConvBNReLU, "filters", 0),
    (ConvBNReLU, "filters", 2.7),
    (ConvBNReLU, "kernel_size", 2),
    (ConvBNReLU, "kernel_size", -1),
    (ConvBNReLU, "sync_batch_norm", "false"),
    (EncHead, "num_classes", 0),
    (EncHead, "num_codes", "32"),
    (EncHead, "channels", 0),
    (EncHead, "dropout", 1.0),
    (EncHead, "dropout", -0.1),
    (EncHead, "lateral", 1),
    (EncHead, "se_loss", "yes"),
    (EncModule, "num_codes", 0),
    (EncModule, "num_classes", True),
    (EncModule, "se_loss", None),
    (FCNHead, "num_classes", -3),
    (FCNHead, "channels", 16.5),
    (FCNHead, "dropout", 2),
    (Encoding, "num_codes", 0),
]


@pytest.mark.parametrize("layer,name,value", BAD, ids=lambda x: getattr(x, "__name__", repr(x)))
def test_a_bad_argument_is_refused_with_what_was_received(layer, name, value):
    with pytest.raises(ValueError, match=rf"{layer.__name__}: argument `{name}` .*Received: "):
        layer(**{**GOOD[layer], name: value})


def test_numpy_numbers_and_bools_are_accepted():
    head = EncHead(np.int64(3), lateral=np.bool_(False), dropout=np.float32(0.1), channels=8)
    assert head.num_classes == 3 and head.lateral is False and head.dropout == pytest.approx(0.1)
    assert type(head.num_classes) is int and type(head.dropout) is float
    assert FCNHead(3, channels=None).channels is None
