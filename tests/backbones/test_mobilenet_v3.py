import functools

import keras
import numpy as np
import pytest

from enc_tf.backbones import SignedUnitInput, build_backbone, head_size
from enc_tf.backbones.keras_weights import WEIGHT_FILES
from enc_tf.backbones.mobilenet_v3 import MOBILENETS, block_schedule, make_divisible
from enc_tf.contracts.images import IMAGENET_MEAN, IMAGENET_STD
from enc_tf.errors import ModelFileError
from tests.support.keras_applications import write_legacy_h5
from tests.support.tiny_models import randomise_batch_norms

# keras.applications layer names of the stage outputs (c4: the model's output).
STAGES = {
    "mobilenetv3_large": ("expanded_conv_2_add", "expanded_conv_5_add", "expanded_conv_11_add"),
    "mobilenetv3_small": ("expanded_conv_project_bn", "expanded_conv_2_add", "expanded_conv_7_add"),
}
CHANNELS = {"mobilenetv3_large": (24, 40, 112, 960), "mobilenetv3_small": (16, 24, 48, 576)}
APPLICATIONS = {
    "mobilenetv3_large": keras.applications.MobileNetV3Large,
    "mobilenetv3_small": keras.applications.MobileNetV3Small,
}
for _size in ("large", "small"):  # the same layout, without squeeze-and-excite
    _name = f"mobilenetv3_{_size}"
    STAGES[f"{_name}_minimalistic"] = STAGES[_name]
    CHANNELS[f"{_name}_minimalistic"] = CHANNELS[_name]
    APPLICATIONS[f"{_name}_minimalistic"] = functools.partial(
        APPLICATIONS[_name], minimalistic=True
    )


def _normalised(rgb):
    return (rgb - np.array(IMAGENET_MEAN, "float32")) / np.array(IMAGENET_STD, "float32")


def test_make_divisible_is_keras_depth():
    from keras.src.applications.mobilenet_v3 import _depth

    values = [v * r for v in (3, 16, 24, 40, 80, 112, 160, 960) for r in (0.25, 1, 2.3, 2.5, 6)]
    assert [make_divisible(v) for v in values] == [_depth(v) for v in values]


def test_schedule_dilates_the_stages_past_the_output_stride():
    large = MOBILENETS["mobilenetv3_large"]
    os32, os16, os8 = (block_schedule(large, s) for s in (32, 16, 8))
    # Undilated: keras.applications' own strides.
    assert [s for s, _, _ in os32] == [spec[3] for spec in large]
    assert {d for _, d, _ in os32} == {1}
    # Stage 4 (blocks 12-14): stride 1; the first block keeps rate 1, the others 2.
    assert [r[:2] for r in os16[12:]] == [(1, 1), (1, 2), (1, 2)]
    assert os16[:12] == os32[:12]
    # Output stride 8: stage 3 (blocks 6-11) at rate 2 after its first block, stage 4 at 4.
    assert [r[:2] for r in os8[6:]] == [(1, 1)] + [(1, 2)] * 6 + [(1, 4)] * 2
    assert [r[2] for r in os8] == [None, None, "c1", None, None, "c2"] + [None] * 5 + ["c3"] + [
        None
    ] * 3
    small = block_schedule(MOBILENETS["mobilenetv3_small"], 16)
    assert [i for i, r in enumerate(small) if r[2]] == [0, 2, 7]  # c1 comes from block 0
    with pytest.raises(ValueError, match="output_stride"):
        block_schedule(large, 4)


@pytest.mark.parametrize("name", sorted(MOBILENETS))
@pytest.mark.parametrize("output_stride", [8, 16])
def test_stage_shapes(name, output_stride):
    backbone = build_backbone(name, output_stride=output_stride)
    feats = backbone(np.zeros((1, 64, 96, 3), "float32"), training=False)
    deep = (64 // output_stride, 96 // output_stride)
    sizes = [(16, 24), (8, 12), deep if output_stride == 8 else (4, 6), deep]
    for key, size, channels in zip(("c1", "c2", "c3", "c4"), sizes, CHANNELS[name]):
        assert feats[key].shape == (1, *size, channels), key


@pytest.fixture(scope="module", params=sorted(MOBILENETS))
def keras_mobilenet(request, tmp_path_factory):
    """keras.applications' network with random weights and BatchNorm statistics, and its
    weights written as the official file is."""
    name = request.param
    reference = APPLICATIONS[name](weights=None, include_top=False, input_shape=(None, None, 3))
    randomise_batch_norms(reference, seed=3)
    path = tmp_path_factory.mktemp("weights") / f"{name}_no_top.h5"
    write_legacy_h5(reference, path)
    return name, reference, str(path)


def test_keras_applications_weights_reproduce_every_stage(keras_mobilenet):
    name, reference, path = keras_mobilenet
    ours = build_backbone(name, output_stride=32, weights=path)
    rgb = np.random.default_rng(1).uniform(0, 1, (2, 64, 96, 3)).astype("float32")
    outputs = [reference.get_layer(n).output for n in STAGES[name]] + [reference.output]
    expected = keras.Model(reference.input, outputs)(rgb * 255.0)  # its Rescaling: [-1, 1]
    feats = ours(_normalised(rgb), training=False)
    for key, ref in zip(("c1", "c2", "c3", "c4"), expected):
        ref = np.asarray(ref)
        error = np.max(np.abs(np.asarray(feats[key]) - ref)) / np.max(np.abs(ref))
        assert error < 1e-4, (key, error)
    # Every weight of the file is used, and dilation changes none: output stride 16 loads
    # the same file and agrees up to c3.
    assert ours.count_params() == reference.count_params()
    dilated = build_backbone(name, output_stride=16, weights=path)
    out = dilated(_normalised(rgb), training=False)
    np.testing.assert_allclose(out["c3"], feats["c3"], rtol=1e-5, atol=1e-5)
    assert out["c4"].shape[1:3] == (4, 6)


def test_weight_file_of_the_other_network_is_refused(keras_mobilenet, tmp_path):
    name, _, path = keras_mobilenet
    other = next(n for n in MOBILENETS if n != name)
    with pytest.raises(ValueError, match=r"mis-shaped|missing|unexpected") as info:
        build_backbone(other, weights=path)
    assert WEIGHT_FILES[other] in str(info.value)
    with pytest.raises(ModelFileError, match="nothing is downloaded"):
        build_backbone(name, weights=str(tmp_path / "absent.h5"))


def test_signed_unit_input_is_keras_rescaling():
    rgb = np.random.default_rng(2).uniform(0, 1, (2, 3, 4, 3)).astype("float32")
    expected = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(rgb * 255.0)
    np.testing.assert_allclose(SignedUnitInput()(_normalised(rgb)), expected, atol=1e-5)


def test_head_sizes_by_family():
    assert head_size("resnet50s") == (512, 32)
    assert head_size("mobilenetv3_large") == (128, 16)
    assert head_size("mobilenetv3_small") == (64, 16)
    assert head_size("mobilenetv3_large_minimalistic") == (128, 16)
    with pytest.raises(ValueError, match="Unknown backbone"):
        head_size("vgg16")


def test_minimalistic_has_no_global_pooling():
    """No layer of a minimalistic backbone sees the whole image: a change in one corner of
    a 512-pixel image leaves the features of the far corner, outside the receptive field,
    exactly unchanged; the full network's squeeze-and-excite spreads it everywhere."""
    for name, reaches in (("mobilenetv3_large_minimalistic", False), ("mobilenetv3_large", True)):
        backbone = build_backbone(name, output_stride=16)
        assert (
            any(isinstance(layer, keras.layers.GlobalAveragePooling2D) for layer in backbone.layers)
            == reaches
        )
        images = np.random.default_rng(5).normal(size=(1, 512, 512, 3)).astype("float32")
        changed = images.copy()
        changed[:, :96, :96] = 20.0
        a, b = (np.asarray(backbone(x, training=False)["c4"][0, -1, -1]) for x in (images, changed))
        change = np.max(np.abs(a - b)) / np.max(np.abs(a))
        assert change > 0.0 if reaches else change == 0.0, (name, change)
