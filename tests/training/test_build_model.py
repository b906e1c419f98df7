"""The model a config describes: backbone, head size and local ImageNet weights."""

import keras
import numpy as np
import pytest

from enc_tf.config import Config, ConfigError, validate
from enc_tf.data.classes import make_class_info
from enc_tf.errors import ModelFileError
from enc_tf.models import BACKBONE_NAME
from enc_tf.training import build_model
from tests.support.keras_applications import write_legacy_h5
from tests.support.tiny_models import randomise_batch_norms


def _config(**model):
    config = Config()
    for key, value in model.items():
        setattr(config.model, key, value)
    validate(config)
    return config


def test_mobilenet_with_keras_applications_weights(tmp_path):
    reference = keras.applications.MobileNetV3Small(
        weights=None, include_top=False, input_shape=(None, None, 3)
    )
    randomise_batch_norms(reference, seed=1)
    path = tmp_path / "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    write_legacy_h5(reference, path)
    config = _config(
        backbone="mobilenetv3_small", output_stride=16, backbone_weights=str(path), num_codes=8
    )
    model = build_model(config, make_class_info(["a", "b", "c"]), sync_batch_norm=False)
    backbone = model.get_layer(BACKBONE_NAME)
    for name in ("conv", "expanded_conv_3_depthwise", "conv_1_bn"):
        for ours, theirs in zip(
            backbone.get_layer(name).weights, reference.get_layer(name).weights
        ):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    head = model.get_layer("enc_head")
    assert (head.channels, head.num_codes) == (64, 8)  # default width, configured codewords


def test_head_size_keys_default_by_backbone_and_are_checked():
    classes = make_class_info(["a", "b"])
    resnet = build_model(_config(backbone="resnet50v1c", output_stride=16), classes, False)
    assert (resnet.get_layer("enc_head").channels, resnet.get_layer("enc_head").num_codes) == (
        512,
        32,
    )
    wide = build_model(
        _config(backbone="mobilenetv3_small", output_stride=16, head_channels=64), classes, False
    )
    assert wide.get_layer("enc_head").channels == 64
    with pytest.raises(ConfigError, match="model.head_channels"):
        _config(head_channels=-1)


@pytest.mark.parametrize(
    "backbone, name",
    [("resnet50s", "resnet50s.npz"), ("mobilenetv3_small", "mobilenet_v3_small_no_top.h5")],
)
def test_a_corrupt_backbone_weight_file_is_one_error_naming_it(tmp_path, backbone, name):
    path = tmp_path / name
    path.write_bytes(b"\x89 truncated download")
    config = _config(backbone=backbone, output_stride=16, backbone_weights=str(path))
    with pytest.raises(ModelFileError, match=f"{path}.*(corrupt|not a readable)") as info:
        build_model(config, make_class_info(["a", "b"]), sync_batch_norm=False)
    assert "\n" not in str(info.value)
