import keras
import numpy as np
import pytest

from enc_tf.backbones import (
    CaffeInput,
    build_backbone,
    first_block_dilation,
    stage_strides_and_dilations,
)
from enc_tf.contracts.images import IMAGENET_MEAN, IMAGENET_STD
from enc_tf.errors import ModelFileError
from tests.support.keras_applications import write_legacy_h5


def test_dilation_schedule_follows_the_original():
    assert stage_strides_and_dilations(8) == ((2, 1), (1, 2), (1, 4))
    assert stage_strides_and_dilations(16) == ((2, 1), (2, 1), (1, 2))
    assert [first_block_dilation(d) for d in (1, 2, 4)] == [1, 1, 2]
    with pytest.raises(ValueError, match="output_stride"):
        stage_strides_and_dilations(4)


@pytest.fixture(scope="module")
def os8():
    return build_backbone("resnet50s", output_stride=8)


@pytest.mark.parametrize("output_stride", [8, 16])
def test_stage_shapes_on_odd_sizes(output_stride, os8):
    backbone = os8 if output_stride == 8 else build_backbone("resnet50s", output_stride=16)
    feats = backbone(np.zeros((1, 97, 131, 3), "float32"), training=False)
    # PyTorch arithmetic: floor((n + 2 - 3) / 2) + 1 per stride-2 3x3 conv / max-pool.
    last = (13, 17) if output_stride == 8 else (7, 9)
    assert feats["c1"].shape == (1, 25, 33, 256)
    assert feats["c2"].shape == (1, 13, 17, 512)
    assert feats["c3"].shape == (1, *((13, 17) if output_stride == 8 else (7, 9)), 1024)
    assert feats["c4"].shape == (1, *last, 2048)


def test_conv_dilations_and_strides(os8):
    def rate(name):
        return os8.get_layer(name).dilation_rate[0]

    assert [rate("layer3_0_conv2"), rate("layer3_1_conv2"), rate("layer3_5_conv2")] == [1, 2, 2]
    assert [rate("layer4_0_conv2"), rate("layer4_1_conv2"), rate("layer4_2_conv2")] == [2, 4, 4]
    assert os8.get_layer("layer2_0_conv2").strides == (2, 2)  # the stride sits on the 3x3 conv
    assert os8.get_layer("layer2_0_conv2_pad").padding == ((1, 1), (1, 1))  # symmetric
    os16 = build_backbone("resnet50s", output_stride=16)
    assert [
        os16.get_layer(n).dilation_rate[0]
        for n in ("layer3_1_conv2", "layer4_0_conv2", "layer4_1_conv2")
    ] == [1, 1, 2]


def test_deep_stem_layout_and_batch_norms(os8):
    assert os8.get_layer("stem_conv1").kernel.shape == (3, 3, 3, 64)
    assert os8.get_layer("stem_conv3").kernel.shape == (3, 3, 64, 128)
    norms = [layer for layer in os8.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 3 + 16 * 3 + 4 and all(
        n.epsilon == 1e-5 and n.momentum == 0.9 and not n.synchronized for n in norms
    )
    assert not any(layer.use_bias for layer in os8.layers if isinstance(layer, keras.layers.Conv2D))
    synced = build_backbone("resnet50s", sync_batch_norm=True)
    assert all(
        layer.synchronized
        for layer in synced.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )


def test_stem_width_is_a_parameter_of_one_builder():
    """MMSegmentation's ResNetV1c `-d8` stem (32, 32, 64) vs the `s` stem (64, 64, 128)."""
    narrow = build_backbone("resnet50v1c")
    assert [narrow.get_layer(f"stem_conv{i}").kernel.shape[-1] for i in (1, 2, 3)] == [32, 32, 64]
    assert narrow.get_layer("layer1_0_conv1").kernel.shape == (1, 1, 64, 64)
    assert narrow.get_layer("layer1_0_down_conv").kernel.shape == (1, 1, 64, 256)
    # Same layers and names as resnet50s: only the stem and layer1's input are narrower.
    wide = build_backbone("resnet50s")
    assert [layer.name for layer in narrow.layers] == [layer.name for layer in wide.layers]
    differ = [
        a.path for a, b in zip(narrow.weights, wide.weights) if tuple(a.shape) != tuple(b.shape)
    ]
    # 3 stem convs, 3 stem BatchNorms x 4 arrays, layer1's first 1x1 and shortcut convs.
    assert len(differ) == 3 + 3 * 4 + 2 and all(
        n.startswith(("stem_", "layer1_0_conv1", "layer1_0_down_conv")) for n in differ
    ), differ
    # The stem width overrides the name's default, through the same builder.
    assert build_backbone("resnet50v1c", stem_width=128).count_params() == wide.count_params()
    for bad in (0, 63, 64.0, True):
        with pytest.raises(ValueError, match="stem_width must be a positive even int"):
            build_backbone("resnet50v1c", stem_width=bad)


@pytest.mark.slow
def test_resnet101s_depth():
    backbone = build_backbone("resnet101s")
    assert "layer3_22_conv3" in {layer.name for layer in backbone.layers}
    assert "layer3_23_conv3" not in {layer.name for layer in backbone.layers}


@pytest.fixture(scope="module")
def keras_resnet50(tmp_path_factory):
    reference = keras.applications.ResNet50(
        weights=None, include_top=False, input_shape=(None, None, 3)
    )
    rng = np.random.default_rng(0)
    for layer in reference.layers:
        if isinstance(layer, keras.layers.BatchNormalization):  # keep activations in range
            layer.moving_variance.assign(
                rng.uniform(1.0, 3.0, layer.moving_variance.shape).astype("float32")
            )
            layer.gamma.assign(rng.uniform(0.2, 0.6, layer.gamma.shape).astype("float32"))
    path = (
        tmp_path_factory.mktemp("weights") / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )
    write_legacy_h5(reference, path)
    return reference, str(path)


@pytest.mark.slow
def test_keras_applications_weights_reproduce_keras_resnet50(keras_resnet50):
    reference, path = keras_resnet50
    ours = build_backbone("resnet50", output_stride=32, weights=path)
    rgb = np.random.default_rng(1).uniform(0, 1, (1, 64, 96, 3)).astype("float32")
    normalised = (rgb - np.array(IMAGENET_MEAN, "float32")) / np.array(IMAGENET_STD, "float32")
    caffe = keras.applications.resnet.preprocess_input(rgb * 255.0)
    names = {
        "c1": "conv2_block3_out",
        "c2": "conv3_block4_out",
        "c3": "conv4_block6_out",
        "c4": "conv5_block3_out",
    }
    expected = keras.Model(
        reference.input, [reference.get_layer(n).output for n in names.values()]
    )(caffe)
    feats = ours(normalised, training=False)
    for key, ref in zip(names, expected):
        ref = np.asarray(ref)
        assert np.max(np.abs(np.asarray(feats[key]) - ref)) / np.max(np.abs(ref)) < 1e-4, key
    # Dilation changes no weight: the same file loads into the output-stride-8 network.
    dilated = build_backbone("resnet50", output_stride=8, weights=path)
    out = dilated(normalised, training=False)
    assert out["c4"].shape == (1, 8, 12, 2048)
    np.testing.assert_allclose(out["c2"], feats["c2"], rtol=1e-5, atol=1e-5)


def test_caffe_input_is_keras_preprocess_input():
    rgb = np.random.default_rng(2).uniform(0, 1, (2, 3, 4, 3)).astype("float32")
    normalised = (rgb - np.array(IMAGENET_MEAN, "float32")) / np.array(IMAGENET_STD, "float32")
    expected = keras.applications.resnet.preprocess_input(rgb * 255.0)
    np.testing.assert_allclose(CaffeInput()(normalised), expected, rtol=1e-5, atol=1e-3)


def test_weight_file_errors(tmp_path, keras_resnet50):
    _, path = keras_resnet50
    with pytest.raises(ModelFileError, match="absent.h5.*nothing is downloaded"):
        build_backbone("resnet50", weights=str(tmp_path / "absent.h5"))
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.h5"):
        build_backbone("resnet50", weights=str(tmp_path / "junk.h5"))
    with pytest.raises(ValueError, match=r"missing.*resnet101_weights_tf_dim"):
        build_backbone("resnet101", weights=path)
    with pytest.raises(ModelFileError, match=r"\.h5.*expected \.npz, \.safetensors, \.pth"):
        build_backbone("resnet50s", weights=path)  # a keras.applications file for a deep stem
    with pytest.raises(ValueError, match="Unknown backbone"):
        build_backbone("resnet18")
    with pytest.raises(ValueError, match="stem_width is a ResNet argument"):
        build_backbone("mobilenetv3_large", stem_width=64)
