import os
import subprocess

import keras
import numpy as np
import pytest

from enc_tf import build_encnet, build_fcn
from enc_tf.backbones import build_backbone
from enc_tf.convert import (
    build_from_state,
    infer_config,
    load_backbone_state,
    module_map,
    state_dict_from_model,
)
from enc_tf.errors import ModelFileError
from enc_tf.state_dicts import load_state_dict, read_state_dict
from tests.support import oracle
from tests.support.commands import command
from tests.support.tiny_models import randomise_batch_norms


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _n_batch_norms(model):
    return sum(
        isinstance(layer, keras.layers.BatchNormalization)
        for layer in model._flatten_layers(include_self=False, recursive=True)
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "builder,kwargs,torch_keys,torch_params",
    [
        # Figures of the original's pcontext_r50_lateral and voc_r101 (oracle README §1).
        (build_encnet, dict(num_classes=59, lateral=True), 381, 43_915_217),
        (build_encnet, dict(num_classes=21, backbone="resnet101s", lateral=True), 687, 62_858_591),
        (build_fcn, dict(num_classes=7), None, None),
    ],
)
def test_round_trip_through_the_torch_layout(builder, kwargs, torch_keys, torch_params):
    model = builder(**kwargs)
    randomise_batch_norms(model)
    state = state_dict_from_model(model)
    if torch_keys is not None:
        # The original also stores num_batches_tracked for each BatchNorm.
        assert len(state) + _n_batch_norms(model) == torch_keys
        assert _trainable(model) == torch_params
    config = infer_config(state)
    for key, value in kwargs.items():
        assert config[key] == value
    rebuilt, _ = build_from_state(state)
    x = np.random.default_rng(1).normal(size=(1, 64, 48, 3)).astype("float32")
    expected, ours = model(x, training=False), rebuilt(x, training=False)
    for key in expected:
        np.testing.assert_array_equal(expected[key], ours[key])


def test_layouts_are_transposed_as_torch_expects():
    model = build_fcn(3, aux=False)
    state = state_dict_from_model(model)
    kernel = model.get_layer("fcn_head").block.conv.kernel.numpy()  # (3, 3, 2048, 512) HWIO
    assert state["head.conv5.0.weight"].shape == (512, 2048, 3, 3)
    np.testing.assert_array_equal(state["head.conv5.0.weight"][5, 7], kernel[:, :, 7, 5])
    assert "pretrained.layer3.5.downsample.0.weight" not in state  # only block 0 projects
    assert state["pretrained.layer3.0.downsample.0.weight"].shape == (1024, 512, 1, 1)


@pytest.fixture(scope="module")
def small_model():
    return build_encnet(5, se_loss=True, aux=True)


def test_mismatches_are_listed_and_nothing_is_assigned(small_model):
    state = state_dict_from_model(small_model)
    before = small_model.get_layer("enc_head").classifier.kernel.numpy().copy()
    bad = {k: v + 1.0 for k, v in state.items()}
    del bad["head.conv5.1.running_var"]
    bad["head.extra.weight"] = np.zeros(3, "float32")
    bad["head.encmodule.encoding.3.codewords"] = np.zeros((16, 512), "float32")
    with pytest.raises(ValueError) as err:
        load_state_dict(module_map(small_model), bad, source="bad.npz")
    message = str(err.value)
    assert "bad.npz" in message and "1 missing, 1 unexpected, 1 mis-shaped" in message
    assert "head.conv5.1.running_var" in message and "head.extra.weight" in message
    assert "head.encmodule.encoding.3.codewords" in message
    np.testing.assert_array_equal(
        small_model.get_layer("enc_head").classifier.kernel.numpy(), before
    )


def test_read_state_dict_formats_and_errors(tmp_path, small_model):
    state = state_dict_from_model(small_model)
    path = tmp_path / "dp.npz"
    np.savez(path, **{f"module.{k}": v for k, v in state.items()})
    assert sorted(read_state_dict(str(path))) == sorted(state)  # DataParallel prefix removed
    with pytest.raises(ModelFileError, match="Checkpoint not found: .*missing.npz"):
        read_state_dict(str(tmp_path / "missing.npz"))
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip")
    unknown = tmp_path / "weights.bin"
    unknown.write_bytes(b"\0")
    with pytest.raises(ValueError, match="corrupt.npz"):
        read_state_dict(str(tmp_path / "corrupt.npz"))
    with pytest.raises(ValueError, match="Unknown checkpoint format"):
        read_state_dict(str(unknown))


def test_infer_config_rejects_other_layouts(small_model):
    state = state_dict_from_model(small_model)
    torchvision_like = {k: v for k, v in state.items() if not k.startswith("pretrained.conv1.")}
    torchvision_like["pretrained.conv1.weight"] = np.zeros((64, 3, 7, 7), "float32")
    with pytest.raises(ValueError, match="deep-stem"):
        infer_config(torchvision_like)
    headless = {k: v for k, v in state.items() if not k.startswith("head.")}
    with pytest.raises(ValueError, match="Neither an EncNet head"):
        infer_config(headless)


def test_backbone_imagenet_checkpoint_loads_without_prefix_and_classifier(small_model):
    full = state_dict_from_model(small_model)
    imagenet = {k[len("pretrained.") :]: v for k, v in full.items() if k.startswith("pretrained.")}
    imagenet["fc.weight"] = np.zeros((1000, 2048), "float32")
    imagenet["fc.bias"] = np.zeros((1000,), "float32")
    backbone = build_backbone("resnet50s")
    load_backbone_state(backbone, imagenet, source="resnet50s.npz")
    np.testing.assert_array_equal(
        backbone.get_layer("layer4_2_conv3").kernel.numpy(),
        small_model.get_layer("backbone").get_layer("layer4_2_conv3").kernel.numpy(),
    )


def test_keras_family_backbone_is_refused():
    with pytest.raises(ValueError, match="deep-stem"):
        module_map(build_fcn(3, backbone="resnet50", aux=False))


@pytest.mark.slow
def test_command_line_converts_the_oracle_checkpoint(tmp_path):
    state_path = tmp_path / "encnet_ade.npz"
    np.savez(state_path, **oracle.state_dict("ade_r50"))
    out = tmp_path / "models" / "encnet.keras"
    cmd = command("enc-convert", "pytorch-encoding", state_path, "--out", out)
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr
    assert '"backbone": "resnet50s"' in result.stdout and '"num_classes": 150' in result.stdout
    model = keras.models.load_model(out)
    ref = oracle.load_npz("ade_r50", "outputs")
    x = oracle.to_keras_layout(oracle.load_npz("ade_r50", "input")["x"])
    assert oracle.rel_to_absmax(model(x, training=False)["se"], ref["se"]) <= 2e-3
    assert [p.name for p in out.parent.iterdir()] == ["encnet.keras"]  # no temporary left behind

    # A failing conversion reports the problem and leaves the existing file intact.
    before = out.read_bytes()
    broken = tmp_path / "broken.npz"
    np.savez(
        broken,
        **{
            k: v
            for k, v in oracle.state_dict("ade_r50").items()
            if k != "head.encmodule.selayer.bias"
        },
    )
    cmd[4] = str(broken)
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 2
    assert "head.encmodule.selayer.bias" in result.stderr
    assert out.read_bytes() == before


def test_reads_pth_checkpoints(tmp_path, small_model):
    import torch  # optional for users (`.[torch]`), part of `.[dev]`

    state = state_dict_from_model(small_model)
    checkpoint = {
        "epoch": 3,
        "state_dict": {f"module.{k}": torch.from_numpy(v) for k, v in state.items()},
    }
    path = tmp_path / "encnet.pth"
    torch.save(checkpoint, path)
    loaded = read_state_dict(str(path))
    assert sorted(loaded) == sorted(state)
    for key, value in state.items():
        np.testing.assert_array_equal(loaded[key], value)
