import pytest
import yaml

from enc_tf.training.config import ConfigError, load_config, save_config


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_yaml_and_overrides(tmp_path):
    path = _write(tmp_path, "data: {base_size: 128, crop_size: 112}\ntrain: {epochs: 3, batch_size: 8}\n")
    config = load_config(path, ["train.epochs=5", "optimizer.base_lr=0.01", "model.aux=false"])
    assert config.train.epochs == 5 and config.train.batch_size == 8
    assert config.optimizer.base_lr == 0.01 and config.model.aux is False
    assert config.data.crop_size == 112 and config.model.backbone == "resnet50s"
    save_config(config, str(tmp_path / "resolved.yaml"))
    again = load_config(str(tmp_path / "resolved.yaml"))
    assert again == config
    assert yaml.safe_load((tmp_path / "resolved.yaml").read_text())["train"]["epochs"] == 5


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["train.epoch=3"], "Unknown config key 'train.epoch'. Did you mean 'train.epochs'"),
        (["trian.epochs=3"], "Unknown config key 'trian'"),
        (["train.epochs=three"], r"train.epochs: expected int, got 'three'"),
        (["model.aux=1"], "model.aux: expected bool"),
        (["data.crop_size=600"], r"data.crop_size \(600\) is larger than data.base_size \(520\)"),
        (["model.backbone=resnet18"], "model.backbone: 'resnet18' is not one of"),
        (["train.batch_size=0"], "train.batch_size must be positive"),
        (["model.lateral=true", "model.output_stride=16"], "model.lateral needs"),
        (["data.dataset=ade20k"], "data.root is required"),
        (["train.epochs"], "must look like key.sub=value"),
    ],
)
def test_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "data: [unclosed\n"))
    with pytest.raises(ConfigError, match="data: expected a mapping"):
        load_config(_write(tmp_path, "data: 3\n"))


def test_every_recipe_in_configs_loads():
    import glob
    import os

    paths = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "*.yaml")))
    assert len(paths) >= 8
    for path in paths:
        config = load_config(path)
        assert config.train.batch_size in (8, 16) or "context_shapes" in path
        if "pcontext" in path or "voc" in path:
            assert config.model.lateral
        if "fcn" in path:
            assert config.model.arch == "fcn" and not config.model.se_loss
