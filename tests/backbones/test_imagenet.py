"""ImageNet backbones from the publishers' layouts, against timm itself: its resnet50s and
resnet50c with random weights, saved as users download them (safetensors, .pth), loaded
through our loader; every stage's output compared (float32, relative error <= 1e-4)."""

import hashlib

import numpy as np
import pytest

from enc_tf.backbones import build_backbone
from enc_tf.backbones.imagenet import imagenet_backbone_name, load_imagenet_weights
from enc_tf.config import Config, validate
from enc_tf.data.classes import make_class_info
from enc_tf.errors import ModelFileError
from enc_tf.models import BACKBONE_NAME
from enc_tf.presets import registry
from enc_tf.state_dicts import read_state_dict
from enc_tf.training import build_model
from tests.support.http_server import Route, serve
from tests.support.timm_models import random_resnet, stage_outputs

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch")
# The mmcv ResNetV1c names of timm's deep stem.
MMCV_STEM = {"conv1.0": "stem.0", "conv1.1": "stem.1", "conv1.3": "stem.3", "conv1.4": "stem.4"}
MMCV_STEM.update({"conv1.6": "stem.6", "bn1": "stem.7"})


def _save(state, path):
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, str(path))
    return str(path)


def _assert_stages_match(backbone, reference):
    images = np.random.default_rng(0).normal(size=(1, 64, 80, 3)).astype(np.float32)
    ours = backbone(images)
    for name, theirs in zip(("c1", "c2", "c3", "c4"), stage_outputs(reference, images)):
        mine = np.asarray(ours[name])
        assert mine.shape == theirs.shape, name
        error = np.abs(mine - theirs).max() / np.abs(theirs).max()
        assert error <= 1e-4, (name, error)


@pytest.mark.parametrize(
    "timm_name, ours, suffix",
    [("resnet50s", "resnet50s", ".safetensors"), ("resnet50c", "resnet50v1c", ".pth")],
)
def test_timm_files_load_with_parity(tmp_path, timm_name, ours, suffix):
    reference = random_resnet(timm_name)
    path = _save(reference.state_dict(), tmp_path / f"{timm_name}{suffix}")
    assert imagenet_backbone_name(read_state_dict(path)) == ours
    backbone = build_backbone(ours, output_stride=8)
    load_imagenet_weights(backbone, path, ours)
    _assert_stages_match(backbone, reference)


def test_mmcv_v1c_layout_and_wrong_backbone(tmp_path):
    reference = random_resnet("resnet50c", seed=3)
    state = {}
    for key, value in reference.state_dict().items():
        module, _, leaf = key.rpartition(".")
        state[f"{MMCV_STEM.get(module, module)}.{leaf}"] = value
    path = _save(state, tmp_path / "resnet50_v1c-mmcv.pth")
    backbone = build_backbone("resnet50v1c", output_stride=8)
    load_imagenet_weights(backbone, path, "resnet50v1c")
    _assert_stages_match(backbone, reference)
    wrong = build_backbone("resnet50s", output_stride=8)
    with pytest.raises(ValueError, match="holds resnet50v1c ImageNet weights, not resnet50s"):
        load_imagenet_weights(wrong, path, "resnet50s")


def test_a_backbone_preset_starts_a_training_run(tmp_path, monkeypatch):
    """`model.backbone_weights: <preset>` downloads (from 127.0.0.1) timm's safetensors file,
    verifies and loads it."""
    reference = random_resnet("resnet50s", seed=5)
    path = _save(reference.state_dict(), tmp_path / "model.safetensors")
    body = open(path, "rb").read()
    digest = hashlib.sha256(body).hexdigest()
    route = Route(body)
    monkeypatch.setenv("ENC_TF_HOME", str(tmp_path / "home"))
    with serve({"/timm/resnet50s.gluon_in1k/model.safetensors": route}) as base:
        preset = registry.Preset(
            "test_resnet50s", "backbone", (base + "/timm/resnet50s.gluon_in1k/model.safetensors",),
            "sha256:" + digest, "torch_state", "resnet50s", "a test",
        )  # fmt: skip
        monkeypatch.setitem(registry.PRESETS, preset.name, preset)
        config = Config()
        config.model.backbone_weights = "test_resnet50s"
        config.model.output_stride = 8
        validate(config)
        model = build_model(config, make_class_info(["a", "b"]), sync_batch_norm=False)
        _assert_stages_match(model.get_layer(BACKBONE_NAME), reference)
        config.model.backbone = "resnet50v1c"  # the preset holds resnet50s weights
        with pytest.raises(Exception, match="holds resnet50s weights, but model.backbone is"):
            build_model(config, make_class_info(["a", "b"]), sync_batch_norm=False)
    assert route.requests == 1


def test_a_file_that_is_no_imagenet_resnet_is_one_error(tmp_path):
    path = _save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    config = Config()
    config.model.backbone_weights = path
    validate(config)
    with pytest.raises(ModelFileError, match="not a deep-stem ResNet ImageNet checkpoint"):
        build_model(config, make_class_info(["a", "b"]), sync_batch_norm=False)


def test_a_keras_applications_preset_starts_a_mobilenet(tmp_path, monkeypatch):
    """The keras.applications `.h5` layout, served and verified by its MD5 as Keras publishes."""
    import keras

    from tests.support.keras_applications import write_legacy_h5
    from tests.support.tiny_models import randomise_batch_norms

    reference = keras.applications.MobileNetV3Small(
        weights=None, include_top=False, input_shape=(None, None, 3)
    )
    randomise_batch_norms(reference, seed=2)
    name = "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    write_legacy_h5(reference, tmp_path / name)
    body = (tmp_path / name).read_bytes()
    route = Route(body)
    monkeypatch.setenv("ENC_TF_HOME", str(tmp_path / "home"))
    with serve({f"/keras-applications/mobilenet_v3/{name}": route}) as base:
        preset = registry.Preset(
            "test_mobilenet", "backbone", (f"{base}/keras-applications/mobilenet_v3/{name}",),
            "md5:" + hashlib.md5(body).hexdigest(), "keras_h5", "mobilenetv3_small", "a test",
        )  # fmt: skip
        monkeypatch.setitem(registry.PRESETS, preset.name, preset)
        config = Config()
        config.model.backbone = "mobilenetv3_small"
        config.model.output_stride = 16
        config.model.backbone_weights = "test_mobilenet"
        validate(config)
        model = build_model(config, make_class_info(["a", "b"]), sync_batch_norm=False)
    ours = model.get_layer(BACKBONE_NAME).get_layer("expanded_conv_3_depthwise").weights
    theirs = reference.get_layer("expanded_conv_3_depthwise").weights
    for mine, want in zip(ours, theirs):
        np.testing.assert_array_equal(mine.numpy(), want.numpy())
    assert route.requests == 1
