import keras
import numpy as np
import pytest

from enc_tf import build_encnet, build_fcn
from enc_tf.contracts.labels import presence_targets
from enc_tf.losses import encnet_losses

SIZES = [(64, 64), (97, 131), (128, 160)]


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.fixture(scope="module")
def encnet150():
    return build_encnet(150)


@pytest.mark.slow
@pytest.mark.parametrize("output_stride", [8, 16])
def test_output_shapes_for_any_input_size(output_stride, encnet150):
    model = encnet150 if output_stride == 8 else build_encnet(150, output_stride=16)
    head = model.get_layer("enc_head")
    for h, w in SIZES:
        x = np.zeros((2, h, w, 3), "float32")
        out = model(x, training=False)
        assert set(out) == {"seg", "aux", "se"}
        assert out["seg"].shape == (2, h, w, 150) and out["aux"].shape == (2, h, w, 150)
        assert out["se"].shape == (2, 150)
        feats = model.get_layer("backbone")(x, training=False)
        low = head.compute_intermediates([feats["c2"], feats["c3"], feats["c4"]])["seg_lowres"]
        expected = -(-h // 4)  # stem + max-pool, then layer2's stride 2, etc.
        expected = -(-expected // 2) if output_stride == 8 else -(-expected // 4)
        assert low.shape[1] == expected


def test_parameter_count_equals_the_originals(encnet150):
    assert _trainable(encnet150) == 36_164_578  # PyTorch-Encoding EncNet resnet50s, 150 classes
    # The FCN baseline swaps EncHead for an FCNHead(2048 -> 512 -> 150).
    enc_head = encnet150.get_layer("enc_head")
    enc_head_params = sum(int(np.prod(w.shape)) for w in enc_head.trainable_weights)
    by_hand = (
        3 * 3 * 2048 * 512
        + 2 * 512  # conv5 + BN
        + 512 * 512
        + 2 * 512  # EncModule projection + BN
        + 32 * 512
        + 32
        + 2 * 32  # codewords, scale, BN over codewords
        + 512 * 512
        + 512  # fc
        + 512 * 150
        + 150  # SE head
        + 512 * 150
        + 150  # classifier
    )
    assert enc_head_params == by_hand
    fcn = build_fcn(150)
    assert _trainable(fcn) == 36_164_578 - by_hand + 3 * 3 * 2048 * 512 + 2 * 512 + 512 * 150 + 150


def test_options_change_the_outputs():
    model = build_encnet(4, aux=False, se_loss=False, input_shape=(64, 64, 3))
    assert set(model.output_names) == {"seg"}
    fcn = build_fcn(4, aux=False)
    assert set(fcn.output_names) == {"seg"}
    x = np.random.default_rng(0).normal(size=(1, 48, 40, 3)).astype("float32")
    half_pixel = build_encnet(4, align_corners=False)
    corners = build_encnet(4)
    corners.set_weights(half_pixel.get_weights())
    assert not np.allclose(corners(x)["seg"], half_pixel(x)["seg"], atol=1e-4)
    np.testing.assert_allclose(corners(x)["se"], half_pixel(x)["se"], atol=1e-6)


def test_bad_arguments():
    for bad in (0, 2.5, True, "150"):
        with pytest.raises(ValueError, match="num_classes"):
            build_encnet(bad)
    with pytest.raises(ValueError, match="Unknown backbone"):
        build_encnet(3, backbone="resnet34")
    with pytest.raises(ValueError, match="output_stride"):
        build_fcn(3, output_stride=4)
    with pytest.raises(ValueError, match="lateral=True .* output_stride=8"):
        build_encnet(3, lateral=True, output_stride=16)


@pytest.mark.slow
@pytest.mark.parametrize(
    "builder,kwargs",
    [(build_encnet, dict(lateral=True)), (build_encnet, dict(output_stride=16)), (build_fcn, {})],
)
def test_keras_file_round_trip(tmp_path, builder, kwargs):
    model = builder(6, **kwargs)
    rng = np.random.default_rng(1)
    for w in model.non_trainable_weights:  # non-trivial BatchNorm statistics
        w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    for h, w in ((64, 80), (97, 131)):
        x = rng.normal(size=(1, h, w, 3)).astype("float32")
        expected, ours = model(x, training=False), restored(x, training=False)
        assert set(expected) == set(ours)
        for key in expected:
            np.testing.assert_array_equal(expected[key], ours[key])


@pytest.mark.slow
def test_fit_lowers_the_loss():
    keras.utils.set_random_seed(0)
    num_classes = 4
    model = build_encnet(num_classes, input_shape=(64, 64, 3))
    rng = np.random.default_rng(0)
    images = rng.normal(size=(4, 64, 64, 3)).astype("float32")
    labels = np.zeros((4, 64, 64), "int32")
    labels[:, :, 32:] = 1
    labels[2:, :32] = 2
    labels[:, :4] = 255  # ignored
    targets = {
        "seg": labels,
        "aux": labels,
        "se": np.asarray(presence_targets(labels, num_classes)),
    }
    losses, weights = encnet_losses()
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss=losses, loss_weights=weights
    )
    # Training-mode loss (BatchNorm on batch statistics), as model.fit reports it.
    history = model.fit(images, targets, batch_size=2, epochs=6, shuffle=False, verbose=0).history
    first, last = history["loss"][0], history["loss"][-1]
    assert np.isfinite(last) and last < 0.8 * first, history["loss"]
    assert {"seg_loss", "aux_loss", "se_loss"} <= set(history)


def test_mixed_precision_outputs_are_float32():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_encnet(3)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    out = model(np.zeros((1, 64, 64, 3), "float32"), training=False)
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in out.values())
    encoding = model.get_layer("enc_head").enc_module.encoding
    assert encoding.compute_dtype == "bfloat16" and encoding.codewords.dtype == "float32"
    assert model.get_layer("backbone").get_layer("layer4_2_conv2").compute_dtype == "bfloat16"


@pytest.mark.parametrize("backbone", ["mobilenetv3_large", "mobilenetv3_small"])
def test_mobilenet_encnet_sizes_its_head_and_round_trips(tmp_path, backbone):
    model = build_encnet(6, backbone=backbone, output_stride=8, lateral=True)
    head = model.get_layer("enc_head")
    defaults = {"mobilenetv3_large": (128, 16), "mobilenetv3_small": (64, 16)}[backbone]
    assert (head.channels, head.num_codes) == defaults
    config = model.get_config()
    assert (config["head_channels"], config["num_codes"]) == defaults  # stored, not None
    x = np.random.default_rng(2).normal(size=(1, 64, 48, 3)).astype("float32")
    outputs = model(x, training=False)
    assert outputs["seg"].shape == (1, 64, 48, 6) and outputs["aux"].shape == (1, 64, 48, 6)
    assert outputs["se"].shape == (1, 6)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    for key, value in restored(x, training=False).items():
        np.testing.assert_array_equal(value, outputs[key])
    fcn = build_fcn(6, backbone=backbone, output_stride=16)
    assert fcn(x, training=False)["seg"].shape == (1, 64, 48, 6)


def test_head_width_and_codewords_are_arguments():
    wide = build_encnet(3, backbone="mobilenetv3_small", head_channels=64, num_codes=8)
    head = wide.get_layer("enc_head")
    assert (head.channels, head.num_codes) == (64, 8)
    assert head.enc_module.encoding.codewords.shape == (8, 64)
    resnet = build_encnet(3, backbone="resnet50v1c", output_stride=16, aux=False)
    assert (resnet.get_config()["head_channels"], resnet.get_config()["num_codes"]) == (512, 32)
    for bad in (0, -4, 2.5, True):
        with pytest.raises(ValueError, match="head_channels"):
            build_encnet(3, backbone="mobilenetv3_small", head_channels=bad)
        with pytest.raises(ValueError, match="num_codes"):
            build_encnet(3, backbone="mobilenetv3_small", num_codes=bad)
