from enc_tf.backbones.caffe_input import CaffeInput
from tests.support.layer_test import run_layer_test


def test_layer_contract(tmp_path):
    run_layer_test(CaffeInput, {}, (2, 3, 4, 3), (2, 3, 4, 3), 0, 0, tmp_path)
