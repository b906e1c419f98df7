"""Typed training configuration: dataclasses, read from YAML, overridden by `key.sub=value`.

Every key is checked: an unknown key, a value of the wrong type or an
impossible value is a `ConfigError` that names the key.
"""

import dataclasses
import difflib
import math
import os
import re
import typing

import yaml

from enc_tf.backbones import BACKBONES
from enc_tf.errors import ConfigError  # noqa: F401  (raised here, imported from here by callers)
from enc_tf.files import write_text_atomic

# The smallest ContextShapes scene: objects and cues need room (enc_tf.data.context_shapes
# checks its arguments against this too).
CONTEXT_SHAPES_MIN_SIZE = 32


@dataclasses.dataclass
class DataConfig:
    # context_shapes, folder, ade20k, voc, pascal_context, cityscapes, tfrecord
    dataset: str = "context_shapes"
    root: str = ""  # dataset directory (context_shapes: cache directory, "" = default)
    train_split: str = "train"
    val_split: str = "val"
    classes: str = ""  # folder datasets: class list file ("" = root/classes.yaml)
    label_mapping: str = "identity"  # folder datasets: identity or reduce_zero
    base_size: int = 520
    crop_size: int = 480
    scale_min: float = 0.5
    scale_max: float = 2.0
    rotate_degrees: float = 0.0
    blur_probability: float = 0.0
    photometric: bool = False
    # the generated ContextShapes dataset's size (also enc-data generate's defaults)
    context_shapes_train: int = 400
    context_shapes_val: int = 100
    context_shapes_size: int = 384


@dataclasses.dataclass
class ModelConfig:
    arch: str = "encnet"  # encnet or fcn
    backbone: str = "resnet50s"
    output_stride: int = 8
    aux: bool = True
    se_loss: bool = True
    lateral: bool = False
    # Encoding codewords; null: the backbone's default (ResNet 32, MobileNetV3 16)
    num_codes: int | None = None
    # EncHead width; null: the backbone's default (ResNet 512, MobileNetV3 128 / 64)
    head_channels: int | None = None
    dropout: float = 0.1
    # the bilinear upsampling rule: true as the original; MMSegmentation's configs use false
    align_corners: bool = True
    # ImageNet weights for the backbone: a preset name (`enc-presets list`), "imagenet" (the
    # backbone's usual preset), an http(s) URL, a local file, or none (from scratch)
    backbone_weights: str | None = None
    # start from a trained model (fine-tuning): a preset name, an http(s) URL, a .keras file
    # or a run directory; none: start from backbone_weights
    init_from: str | None = None


@dataclasses.dataclass
class OptimizerConfig:
    base_lr: float = 0.004  # for a global batch of 16; scaled by batch / 16
    momentum: float = 0.9
    weight_decay: float = 1e-4
    weight_decay_mode: str = "coupled"  # coupled (the original's L2) or decoupled
    head_lr_multiplier: float = 10.0
    power: float = 0.9
    warmup_epochs: float = 0.0


@dataclasses.dataclass
class LossConfig:
    aux_weight: float = 0.2
    se_weight: float = 0.2


@dataclasses.dataclass
class TrainConfig:
    batch_size: int = 16  # global
    epochs: int = 120
    steps_per_epoch: int | None = None  # null: one pass over the training split
    val_every_epochs: int = 1
    seed: int = 0
    mixed_precision: str = "float32"  # the Keras dtype policy: float32, mixed_float16, ...
    xla: bool = False
    strategy: str = "auto"  # auto, default, mirrored, multi_worker
    run_dir: str = "runs/default"
    image_log_every_epochs: int = 1
    # null: no limit; else stop after the epoch that passes it
    time_limit_minutes: float | None = None
    # null: run the recipe's schedule; else measure this machine first and plan the epochs
    # (at most train.epochs) and the schedule that fit this many minutes (training.budget)
    time_budget_minutes: float | None = None
    deterministic: bool = False  # deterministic TensorFlow ops (slower; same seed, same result)


@dataclasses.dataclass
class Config:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


# The datasets by name: the one list (enc_tf.data reads each; `data.sources.SOURCES` holds
# the readers of the on-disk layouts among them).
DATASETS = ("context_shapes", "folder", "ade20k", "voc", "pascal_context", "cityscapes", "tfrecord")
CHOICES = {
    "data.dataset": DATASETS,
    "data.label_mapping": ("identity", "reduce_zero"),
    "model.arch": ("encnet", "fcn"),
    "model.backbone": BACKBONES,
    "model.output_stride": (8, 16),
    "optimizer.weight_decay_mode": ("coupled", "decoupled"),
    "train.mixed_precision": ("float32", "mixed_float16", "mixed_bfloat16"),
    "train.strategy": ("auto", "default", "mirrored", "multi_worker"),
}


# Floats in exponent notation that YAML 1.1 (PyYAML) reads as strings: `1e-3`, `5E4`, `2.e-1`.
# YAML 1.2 and Python read them as numbers, and so do we for float keys.
_EXPONENT_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")


# How an optional key (`int | None`, ...) is left unset: YAML's null (`null`, `~`, empty) or
# the word none, in any case.
_UNSET = ("none", "null", "~", "")


def _optional(kind):
    """`int` for `int | None` (an optional key's type), else None."""
    args = typing.get_args(kind)
    if type(None) in args and len(args) == 2:
        return next(a for a in args if a is not type(None))
    return None


def _check_type(key, value, kind):
    inner = _optional(kind)
    if inner is not None:
        if value is None or (isinstance(value, str) and value.strip().lower() in _UNSET):
            return None
        kind = inner
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
            value = float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        if ok and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value}.")
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(
            f"{key}: expected {kind.__name__}, got {value!r} ({type(value).__name__})."
        )
    return value


def _build(cls, data, prefix):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = (
                f" Did you mean '{prefix}{close[0]}'?"
                if close
                else f" Known keys: {', '.join(names)}."
            )
            raise ConfigError(f"Unknown config key '{full}'.{hint}")
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            kwargs[key] = _build(kind, value, f"{full}.")
        else:
            kwargs[key] = _check_type(full, value, kind)
    return cls(**kwargs)


def validate(config):
    """Checks values that types cannot: choices and impossible combinations."""
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {list(allowed)}.")
    data_config, model_config, optimizer_config, train_config = (
        config.data,
        config.model,
        config.optimizer,
        config.train,
    )
    positive = {
        "data.base_size": data_config.base_size,
        "data.crop_size": data_config.crop_size,
        "train.batch_size": train_config.batch_size,
        "train.epochs": train_config.epochs,
        "train.val_every_epochs": train_config.val_every_epochs,
        "optimizer.base_lr": optimizer_config.base_lr,
        "train.image_log_every_epochs": train_config.image_log_every_epochs,
        "data.context_shapes_train": data_config.context_shapes_train,
        "data.context_shapes_val": data_config.context_shapes_val,
        "data.context_shapes_size": data_config.context_shapes_size,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}.")
    if data_config.context_shapes_size < CONTEXT_SHAPES_MIN_SIZE:
        raise ConfigError(
            f"data.context_shapes_size must be at least {CONTEXT_SHAPES_MIN_SIZE}, "
            f"got {data_config.context_shapes_size}."
        )
    non_negative = {
        "optimizer.momentum": optimizer_config.momentum,
        "optimizer.weight_decay": optimizer_config.weight_decay,
        "optimizer.power": optimizer_config.power,
        "optimizer.head_lr_multiplier": optimizer_config.head_lr_multiplier,
        "optimizer.warmup_epochs": optimizer_config.warmup_epochs,
        "loss.aux_weight": config.loss.aux_weight,
        "loss.se_weight": config.loss.se_weight,
        "data.rotate_degrees": data_config.rotate_degrees,
    }
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value}.")
    optional_positive = {
        "train.steps_per_epoch": train_config.steps_per_epoch,
        "train.time_limit_minutes": train_config.time_limit_minutes,
        "train.time_budget_minutes": train_config.time_budget_minutes,
        "model.num_codes": model_config.num_codes,
        "model.head_channels": model_config.head_channels,
    }
    for key, value in optional_positive.items():
        if value is not None and value <= 0:
            raise ConfigError(f"{key} must be positive, or null to leave it unset; got {value}.")
    if optimizer_config.momentum >= 1:
        raise ConfigError(f"optimizer.momentum must be below 1, got {optimizer_config.momentum}.")
    if not train_config.run_dir.strip():
        raise ConfigError("train.run_dir must name a directory, got an empty string.")
    if data_config.crop_size > data_config.base_size:
        raise ConfigError(
            f"data.crop_size ({data_config.crop_size}) is larger than data.base_size "
            f"({data_config.base_size})."
        )
    if not 0 < data_config.scale_min <= data_config.scale_max:
        raise ConfigError(
            "data.scale_min/scale_max must satisfy 0 < min <= max, "
            f"got {data_config.scale_min}, {data_config.scale_max}."
        )
    if model_config.lateral and (model_config.arch != "encnet" or model_config.output_stride != 8):
        raise ConfigError("model.lateral needs model.arch=encnet and model.output_stride=8.")
    if model_config.init_from and model_config.backbone_weights:
        raise ConfigError(
            f"model.init_from ({model_config.init_from}) already holds the backbone's weights; "
            "leave "
            f"model.backbone_weights ({model_config.backbone_weights}) at none."
        )
    if model_config.arch == "fcn" and model_config.se_loss:
        raise ConfigError("model.se_loss applies to EncNet only; set it false for model.arch=fcn.")
    if not 0 <= model_config.dropout < 1:
        raise ConfigError(f"model.dropout must be in [0, 1), got {model_config.dropout}.")
    if not 0 <= data_config.blur_probability <= 1:
        raise ConfigError(
            f"data.blur_probability must be in [0, 1], got {data_config.blur_probability}."
        )
    if data_config.dataset != "context_shapes" and not data_config.root:
        raise ConfigError(f"data.root is required for data.dataset={data_config.dataset}.")
    return config


def parse_override(text):
    """`key.sub=value` -> (["key", "sub"], parsed YAML value)."""
    if "=" not in text:
        raise ConfigError(f"Override {text!r} must look like key.sub=value.")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"Override {text!r}: cannot parse the value: {err}") from err
    return key.strip().split("."), value


RECIPES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def recipe_names():
    """The names of the recipes shipped with the package (`enc_tf/configs/<name>.yaml`)."""
    return sorted(n[: -len(".yaml")] for n in os.listdir(RECIPES_DIR) if n.endswith(".yaml"))


def resolve_recipe(path):
    """`path` itself when it names a file; a shipped recipe's file when `path` is its name
    (`ade20k_encnet_resnet50s`, with or without `.yaml`); otherwise a ConfigError listing
    the shipped names."""
    path = os.fspath(path)
    if os.path.exists(path):
        return path
    name = os.path.basename(path)
    name = name[: -len(".yaml")] if name.endswith(".yaml") else name
    if os.sep not in path and "/" not in path and name in recipe_names():
        return os.path.join(RECIPES_DIR, name + ".yaml")
    raise ConfigError(
        f"Config file not found: {path} (not a file, nor a shipped recipe: "
        f"{', '.join(recipe_names())})"
    )


# A recipe may name the recipe it extends (`base: ade20k_encnet_resnet50s`): it then holds
# only what differs, merged key by key over the base's sections.
BASE_KEY = "base"


def _read_yaml(path):
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError as err:
        raise ConfigError(f"Config file not found: {path}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections.")
    return data


def _merged(base, override):
    """`override`'s keys over `base`'s, section by section."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_recipe(path, _chain=()):
    """The sections of the recipe file `path` with its `base:` recipes merged under them.
    `base` names a shipped recipe or a file (relative to the recipe's directory); a cycle
    of bases is a ConfigError naming it."""
    real = os.path.realpath(path)
    if real in _chain:
        cycle = " -> ".join(os.path.basename(p) for p in (*_chain, real))
        raise ConfigError(f"{path}: its base recipes form a cycle: {cycle}")
    data = _read_yaml(path)
    if BASE_KEY not in data:
        return data
    base = data.pop(BASE_KEY)
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: {BASE_KEY} must name a recipe, got {base!r}.")
    beside = os.path.join(os.path.dirname(path), base)
    base_path = resolve_recipe(beside if os.path.isfile(beside) else base)
    return _merged(read_recipe(base_path, (*_chain, real)), data)


def load_config(path=None, overrides=()):
    """Reads a YAML recipe (a file, or a shipped recipe's name: `recipe_names()`; or the
    defaults when `path` is None) with the recipes it extends (`base:`), applies
    overrides, validates."""
    data = read_recipe(resolve_recipe(path)) if path else {}
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"Override {text!r}: {key} is not a section.")
        node[keys[-1]] = value
    return validate(_build(Config, data, ""))


def config_to_dict(config):
    return dataclasses.asdict(config)


def save_config(config, path):
    write_text_atomic(yaml.safe_dump(config_to_dict(config), sort_keys=False), path)
