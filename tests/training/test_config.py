import os

import pytest
import yaml

from enc_tf.config import ConfigError, load_config, save_config
from enc_tf.presets import find


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_yaml_and_overrides(tmp_path):
    path = _write(
        tmp_path, "data: {base_size: 128, crop_size: 112}\ntrain: {epochs: 3, batch_size: 8}\n"
    )
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


def test_init_from_and_backbone_weights_exclude_each_other():
    with pytest.raises(ConfigError, match="model.init_from"):
        load_config(None, ["model.init_from=run", "model.backbone_weights=imagenet"])


def test_every_recipe_in_configs_loads():
    import glob
    import os

    paths = sorted(
        glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "*.yaml"))
    )
    assert len(paths) >= 8
    for path in paths:
        config = load_config(path)
        assert config.train.batch_size in (8, 16) or "context_shapes" in path
        if "pcontext" in path or "voc" in path:
            assert config.model.lateral
        if "fcn" in path:
            assert config.model.arch == "fcn" and not config.model.se_loss
        # Every real-data recipe starts from published weights of its own backbone, by
        # preset; the ContextShapes ones train from scratch (no download in the demo).
        m = config.model
        if "finetune" in path:  # settings of the MMSegmentation checkpoint it starts from
            assert not m.align_corners and m.backbone == "resnet50v1c"
        if "context_shapes" in path:
            assert m.backbone_weights is None and m.init_from is None
        else:
            preset = find(m.init_from or m.backbone_weights)
            assert preset is not None and preset.backbone == m.backbone, path
            assert preset.kind == ("model" if m.init_from else "backbone"), path


@pytest.mark.parametrize(
    "override,message",
    [
        ("optimizer.base_lr=.nan", r"optimizer.base_lr must be a finite number, got nan"),
        ("optimizer.base_lr=.inf", r"optimizer.base_lr must be a finite number, got inf"),
        ("optimizer.momentum=-0.1", r"optimizer.momentum must be >= 0, got -0.1"),
        ("optimizer.momentum=1", r"optimizer.momentum must be below 1, got 1.0"),
        ("optimizer.weight_decay=-1e-4", r"optimizer.weight_decay must be >= 0, got -0.0001"),
        ("optimizer.power=-0.9", r"optimizer.power must be >= 0"),
        ("optimizer.head_lr_multiplier=-10", r"optimizer.head_lr_multiplier must be >= 0"),
        ("loss.aux_weight=-1", r"loss.aux_weight must be >= 0, got -1.0"),
        ("loss.se_weight=-0.2", r"loss.se_weight must be >= 0"),
        ("loss.se_weight=.nan", r"loss.se_weight must be a finite number"),
        ("train.time_limit_minutes=.nan", r"train.time_limit_minutes must be a finite number"),
        ("data.rotate_degrees=-5", r"data.rotate_degrees must be >= 0, got -5.0"),
        ("data.context_shapes_train=0", r"data.context_shapes_train must be positive, got 0"),
        ("data.context_shapes_val=0", r"data.context_shapes_val must be positive"),
        ("data.context_shapes_size=16", r"data.context_shapes_size must be at least 32, got 16"),
        ("train.run_dir=", r"train.run_dir must name a directory"),
        ("train.run_dir=' '", r"train.run_dir must name a directory"),
        ("train.deterministic=yes please", r"train.deterministic: expected bool"),
        ("optimizer.base_lr=1e-3x", r"optimizer.base_lr: expected float, got '1e-3x'"),
        ("model.dropout=1.5", r"model.dropout must be in \[0, 1\), got 1.5"),
    ],
)
def test_impossible_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_a_negative_loss_weight_in_a_yaml_file_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"loss.aux_weight must be >= 0, got -1.0"):
        load_config(_write(tmp_path, "loss: {aux_weight: -1}\n"))


def test_exponent_notation_floats_are_accepted(tmp_path):
    # PyYAML (YAML 1.1) reads `1e-3` as the string '1e-3'.
    assert yaml.safe_load("x: 1e-3")["x"] == "1e-3"
    path = _write(
        tmp_path, "optimizer: {base_lr: 1e-3, weight_decay: 5E-5}\nloss: {aux_weight: 2.e-1}\n"
    )
    config = load_config(path, ["optimizer.warmup_epochs=1e0", "train.time_limit_minutes=+1.5e2"])
    assert config.optimizer.base_lr == 1e-3 and isinstance(config.optimizer.base_lr, float)
    assert config.optimizer.weight_decay == 5e-5 and config.loss.aux_weight == 0.2
    assert config.optimizer.warmup_epochs == 1.0 and config.train.time_limit_minutes == 150.0
    assert load_config(None, ["optimizer.base_lr=1e-3"]).optimizer.base_lr == 1e-3
    # Only float keys: an int key stays strict, and a string key keeps the text.
    with pytest.raises(ConfigError, match=r"train.epochs: expected int, got '1e3'"):
        load_config(None, ["train.epochs=1e3"])
    assert load_config(None, ["train.run_dir=1e3"]).train.run_dir == "1e3"
    save_config(config, str(tmp_path / "resolved.yaml"))
    assert load_config(str(tmp_path / "resolved.yaml")) == config


def test_deterministic_flag_and_valid_edge_values():
    assert load_config().train.deterministic is False
    config = load_config(
        None,
        [
            "train.deterministic=true",
            "loss.aux_weight=0",
            "optimizer.momentum=0",
            "data.rotate_degrees=10",
            "optimizer.weight_decay=0",
        ],
    )
    assert (
        config.train.deterministic is True
        and config.loss.aux_weight == 0.0
        and config.data.rotate_degrees == 10.0
    )


def test_a_shipped_recipe_loads_by_name_and_an_unknown_name_lists_them(tmp_path, monkeypatch):
    from enc_tf.config import RECIPES_DIR, recipe_names

    names = recipe_names()
    assert "ade20k_encnet_resnet50s" in names and "context_shapes" in names
    monkeypatch.chdir(tmp_path)  # nowhere near the repository's configs/
    by_name = load_config("ade20k_encnet_resnet50s", ["train.epochs=3"])
    assert by_name == load_config(
        os.path.join(RECIPES_DIR, "ade20k_encnet_resnet50s.yaml"), ["train.epochs=3"]
    )
    assert load_config("context_shapes.yaml") == load_config("context_shapes")
    (tmp_path / "context_shapes.yaml").write_text("train: {epochs: 2}\n")
    assert load_config("context_shapes.yaml").train.epochs == 2  # a file wins over a name
    with pytest.raises(ConfigError, match="ade20k_typo.*not a file.*ade20k_encnet_resnet50s"):
        load_config("ade20k_typo")
    with pytest.raises(ConfigError, match="sub/ade20k_encnet_resnet50s"):
        load_config("sub/ade20k_encnet_resnet50s")  # a path is never read as a name


def test_optional_keys_are_null_when_unset_and_positive_when_set(tmp_path):
    config = load_config()
    unset = (config.model.num_codes, config.model.backbone_weights, config.model.init_from)
    assert unset == (None, None, None) and config.train.time_budget_minutes is None
    for word in ("null", "none", "None", "~", ""):  # YAML's null, or the word
        assert load_config(None, [f"model.num_codes={word}"]).model.num_codes is None
    yaml_file = _write(tmp_path, "model: {backbone_weights: none, head_channels: 64}\n")
    config = load_config(yaml_file, ["train.time_limit_minutes=2.5", "train.steps_per_epoch=~"])
    assert config.model.backbone_weights is None and config.model.head_channels == 64
    assert config.train.time_limit_minutes == 2.5 and config.train.steps_per_epoch is None
    save_config(config, str(tmp_path / "resolved.yaml"))
    assert "backbone_weights: null" in (tmp_path / "resolved.yaml").read_text()
    assert load_config(str(tmp_path / "resolved.yaml")) == config
    for key in ("model.num_codes", "train.steps_per_epoch", "train.time_budget_minutes"):
        with pytest.raises(ConfigError, match=f"{key} must be positive, or null .* got 0"):
            load_config(None, [f"{key}=0"])
    with pytest.raises(ConfigError, match=r"model.num_codes: expected int, got 'many'"):
        load_config(None, ["model.num_codes=many"])
    with pytest.raises(ConfigError, match=r"train.mixed_precision: 'none' is not one of"):
        load_config(None, ["train.mixed_precision=none"])  # Keras's policy names, float32 first


def test_a_recipe_extends_its_base_section_by_section(tmp_path):
    base = _write(tmp_path, "data: {base_size: 300, crop_size: 200}\ntrain: {epochs: 7}\n")
    (tmp_path / "child.yaml").write_text(
        f"base: {os.path.basename(base)}\ndata: {{crop_size: 100}}\nmodel: {{aux: false}}\n"
    )
    config = load_config(str(tmp_path / "child.yaml"), ["train.seed=3"])
    assert (config.data.base_size, config.data.crop_size) == (300, 100)  # merged, not replaced
    assert config.train.epochs == 7 and config.train.seed == 3 and config.model.aux is False
    # A shipped recipe by name; the resolved config is whole (no base key left).
    (tmp_path / "fcn.yaml").write_text(
        "base: ade20k_encnet_resnet50s\nmodel: {arch: fcn, se_loss: false}\n"
    )
    fcn = load_config(str(tmp_path / "fcn.yaml"))
    assert fcn.model.arch == "fcn" and fcn.model.backbone_weights == "resnet50s.gluon_in1k"
    save_config(fcn, str(tmp_path / "resolved.yaml"))
    assert "base" not in yaml.safe_load((tmp_path / "resolved.yaml").read_text())


def test_recipe_bases_refuse_cycles_unknown_keys_and_bad_names(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match=r"cycle: a.yaml -> b.yaml -> a.yaml"):
        load_config(str(tmp_path / "a.yaml"))
    (tmp_path / "c.yaml").write_text("base: ade20k_encnet_resnet50s\nmodel: {codes: 3}\n")
    with pytest.raises(ConfigError, match=r"Unknown config key 'model.codes'"):
        load_config(str(tmp_path / "c.yaml"))
    (tmp_path / "d.yaml").write_text("base: no_such_recipe\n")
    with pytest.raises(ConfigError, match=r"Config file not found: no_such_recipe"):
        load_config(str(tmp_path / "d.yaml"))
    (tmp_path / "e.yaml").write_text("base: [a]\n")
    with pytest.raises(ConfigError, match=r"e.yaml: base must name a recipe, got \['a'\]"):
        load_config(str(tmp_path / "e.yaml"))


def test_the_shipped_recipes_that_extend_another_hold_only_what_differs():
    import enc_tf.config as config_module

    extending = 0
    for name in config_module.recipe_names():
        own = yaml.safe_load(open(config_module.resolve_recipe(name)))
        if config_module.BASE_KEY not in own:
            continue
        extending += 1
        base = config_module.read_recipe(config_module.resolve_recipe(own.pop("base")))
        for section, values in own.items():
            same = {k: v for k, v in values.items() if base.get(section, {}).get(k) == v}
            assert not same, f"{name} repeats its base's {section} {same}"
    assert extending >= 8
