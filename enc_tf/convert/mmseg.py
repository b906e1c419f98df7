"""MMSegmentation EncNet checkpoints in and out of enc_tf models.

MMSegmentation's EncNet (`EncoderDecoder` with a `ResNetV1c` backbone, `EncHead`
and an `FCNHead` auxiliary head) is the original's function with other module
paths, a stem width that is a parameter (64 in the `-d8` configs: 3x3 convs of
32, 32, 64; 128 in `r50s`), and `align_corners` set per config. Its state_dict
keys (`backbone.*`, `decode_head.*`, `auxiliary_head.*`) map one to one onto our
layers; the file reading and module maps live in `enc_tf.state_dicts`, the
layout check in `enc_tf.convert.formats`.

The checkpoint's `meta` (MMSegmentation 0.x: `config` text, `CLASSES`,
`PALETTE`; 1.x: `cfg` text, `dataset_meta`) gives `align_corners`, the output
stride, the test mode and the class names where present.
"""

import re

import numpy as np

from enc_tf.backbones.imagenet import MMCV_STEM, deep_stem_backbone
from enc_tf.convert.formats import check_format
from enc_tf.models.encnet import AUX_HEAD, BACKBONE_NAME, ENC_HEAD, EncNet
from enc_tf.state_dicts import (
    conv_bn_map,
    deep_stem_module_map,
    load_state_dict,
    stage_depth,
    state_dict_from_mapping,
)

FORMAT = "mmseg"
HEAD_CHANNELS = 512  # EncHead `channels` in every MMSegmentation EncNet config
AUX_CHANNELS = 256  # FCNHead `channels` of the auxiliary head
# `ResNetV1c(strides=..., dilations=...)` -> output stride (contract_dilation=True).
OUTPUT_STRIDES = {((1, 2, 1, 1), (1, 1, 2, 4)): 8, ((1, 2, 2, 1), (1, 1, 1, 2)): 16}

_ENC = "decode_head.enc_module."


def module_map(model):
    """`{MMSegmentation module path: Keras layer}` for an EncNet from `build_encnet`."""
    names = {layer.name for layer in model.layers}
    if ENC_HEAD not in names:
        raise ValueError(
            f"Model {model.name!r} has no 'enc_head': only EncNet maps onto MMSegmentation's "
            "EncNet (its FCN has another head: two convs and concat_input)."
        )
    mapping = deep_stem_module_map(model.get_layer(BACKBONE_NAME), "backbone.", MMCV_STEM)
    head = model.get_layer(ENC_HEAD)
    enc = head.enc_module
    mapping.update(
        conv_bn_map("decode_head.bottleneck.conv", "decode_head.bottleneck.bn", head.conv5)
    )
    if head.lateral:
        for i, block in enumerate((head.lateral_c2, head.lateral_c3)):
            path = f"decode_head.lateral_convs.{i}"
            mapping.update(conv_bn_map(f"{path}.conv", f"{path}.bn", block))
        mapping.update(conv_bn_map("decode_head.fusion.conv", "decode_head.fusion.bn", head.fusion))
    mapping.update(
        conv_bn_map(_ENC + "encoding_project.conv", _ENC + "encoding_project.bn", enc.project)
    )
    mapping[_ENC + "encoding.0"] = enc.encoding
    mapping[_ENC + "encoding.1"] = enc.bn_codes
    mapping[_ENC + "fc.0"] = enc.fc
    if enc.se_head is not None:
        mapping["decode_head.se_layer"] = enc.se_head
    mapping["decode_head.conv_seg"] = head.classifier
    if AUX_HEAD in names:
        aux = model.get_layer(AUX_HEAD)
        mapping.update(
            conv_bn_map("auxiliary_head.convs.0.conv", "auxiliary_head.convs.0.bn", aux.block)
        )
        mapping["auxiliary_head.conv_seg"] = aux.classifier
    return mapping


def state_dict_from_model(model, batches_tracked=True):
    """MMSegmentation's EncNet state_dict `{key: array}` of one of our EncNets.

    The way back: `EncoderDecoder.load_state_dict` takes it (with
    `num_batches_tracked`, int64 0, unless `batches_tracked=False`).
    """
    return state_dict_from_mapping(module_map(model), batches_tracked)


def meta_from_model(model):
    """An MMSegmentation-style `meta` for the way back: `CLASSES`, `PALETTE` and a
    `config` text holding the settings the weights do not carry (`align_corners`,
    the backbone's strides and dilations), so the checkpoint converts back unaided."""
    arguments = getattr(model, "arguments", {})
    meta = {}
    if "align_corners" in arguments and "output_stride" in arguments:
        strides, dilations = next(
            key for key, value in OUTPUT_STRIDES.items() if value == arguments["output_stride"]
        )
        corners = bool(arguments["align_corners"])
        meta["config"] = (
            "# The settings of an enc_tf EncNet written as an MMSegmentation state_dict.\n"
            f"model = dict(backbone=dict(strides={strides}, dilations={dilations}), "
            f"decode_head=dict(align_corners={corners}), "
            f"auxiliary_head=dict(align_corners={corners}))\n"
        )
    if getattr(model, "class_names", None):
        meta["CLASSES"] = list(model.class_names)
        meta["PALETTE"] = [list(c) for c in model.palette]
    return meta


def _shape(state, key):
    if key not in state:
        raise ValueError(f"'{key}' is missing.")
    return tuple(np.shape(state[key]))


def infer_config(state):
    """The `build_encnet` arguments an MMSegmentation EncNet state_dict describes.

    Returns:
        Dict with `model` ("encnet"), `backbone`, `num_classes`, `aux`, `se_loss`,
        `lateral` and `num_codes`.

    Raises:
        ValueError: naming the key that does not fit.
    """
    check_format(state, FORMAT, "the state_dict")
    if "decode_head.conv_seg.weight" not in state or _ENC + "encoding.0.codewords" not in state:
        raise ValueError(
            "Not an MMSegmentation EncNet: 'decode_head.conv_seg.weight' and "
            f"'{_ENC}encoding.0.codewords' are needed (an FCN, PSPNet, ... head has no "
            "enc_module)."
        )
    stem = _shape(state, "backbone.stem.6.weight")
    first = _shape(state, "backbone.stem.0.weight")
    depth = stage_depth(state, "backbone.")
    width = stem[0]
    backbone = deep_stem_backbone(depth, width)
    if backbone is None or first != (width // 2, 3, 3, 3):
        raise ValueError(
            f"'backbone.stem.6.weight' {stem} / 'backbone.stem.0.weight' {first}: a ResNetV1c "
            "deep stem of width 64 or 128 is expected."
        )
    channels = _shape(state, "decode_head.bottleneck.conv.weight")[0]
    if channels != HEAD_CHANNELS:
        raise ValueError(
            f"'decode_head.bottleneck.conv.weight' has {channels} output channels; "
            f"EncHead here has {HEAD_CHANNELS}."
        )
    aux = "auxiliary_head.conv_seg.weight" in state
    if aux:
        aux_channels = _shape(state, "auxiliary_head.convs.0.conv.weight")
        if aux_channels[:2] != (AUX_CHANNELS, 1024) or any(
            key.startswith("auxiliary_head.convs.1.") for key in state
        ):
            raise ValueError(
                f"'auxiliary_head.convs.0.conv.weight' {aux_channels}: the auxiliary FCNHead "
                f"must be one 3x3 conv of 1024 -> {AUX_CHANNELS} channels on stage 3."
            )
    return {
        "model": "encnet",
        "backbone": backbone,
        "num_classes": _shape(state, "decode_head.conv_seg.weight")[0],
        "aux": aux,
        "se_loss": "decode_head.se_layer.weight" in state,
        "lateral": "decode_head.lateral_convs.0.conv.weight" in state,
        "num_codes": _shape(state, _ENC + "encoding.0.codewords")[0],
    }


def _config_text(meta):
    text = meta.get("config", meta.get("cfg")) if isinstance(meta, dict) else None
    return text if isinstance(text, str) else None


def _setting(text, name, value_pattern):
    """Every value of `name=...` or `'name': ...` in an MMEngine/mmcv config text."""
    return re.findall(rf"\b{name}['\"]?\s*[=:]\s*({value_pattern})", text)


def _ints(text):
    return tuple(int(v) for v in re.findall(r"\d+", text))


def settings_from_meta(meta):
    """What the checkpoint's `meta` says beyond the weights.

    Returns:
        Dict with any of `align_corners`, `output_stride`, `test_cfg`
        (`{"mode": "whole"}` or `{"mode": "slide", "crop_size": ..., "stride": ...}`),
        `class_names` and `palette`.

    Raises:
        ValueError: when the stored config contradicts itself (two `align_corners`).
    """
    found = {}
    text = _config_text(meta)
    if text is not None:
        corners = set(_setting(text, "align_corners", "True|False"))
        if len(corners) > 1:
            raise ValueError(
                "the checkpoint's config sets align_corners both True and False; "
                "give --align-corners."
            )
        if corners:
            found["align_corners"] = corners.pop() == "True"
        strides = _setting(text, "strides", r"[\(\[][\d,\s]*[\)\]]")
        dilations = _setting(text, "dilations", r"[\(\[][\d,\s]*[\)\]]")
        if strides and dilations:
            key = (_ints(strides[0]), _ints(dilations[0]))
            if key not in OUTPUT_STRIDES:
                raise ValueError(
                    f"the checkpoint's backbone has strides {key[0]} and dilations {key[1]}; "
                    "only output stride 8 (1, 2, 1, 1)/(1, 1, 2, 4) and 16 are supported."
                )
            found["output_stride"] = OUTPUT_STRIDES[key]
        modes = _setting(text, "mode", "'whole'|'slide'|\"whole\"|\"slide\"")
        if modes:
            test_cfg = {"mode": modes[-1].strip("'\"")}
            if test_cfg["mode"] == "slide":
                for name in ("crop_size", "stride"):
                    values = _setting(text, name, r"[\(\[][\d,\s]*[\)\]]")
                    if values:
                        test_cfg[name] = list(_ints(values[-1]))
            found["test_cfg"] = test_cfg
    if isinstance(meta, dict):
        dataset_meta = meta.get("dataset_meta") or {}
        names = meta.get("CLASSES", dataset_meta.get("classes"))
        palette = meta.get("PALETTE", dataset_meta.get("palette"))
        if names:
            found["class_names"] = [str(n) for n in names]
            if palette and len(palette) == len(names):
                found["palette"] = [[int(v) for v in c] for c in palette]
    return found


def resolve_settings(meta, **given):
    """Merges the settings the user gave with the checkpoint's meta.

    Args:
        meta: the checkpoint's `meta` dict, or None.
        **given: `align_corners`, `output_stride`, `class_names`, `palette`; None
            where not given.

    Returns:
        `(settings, origins)`: the merged dict and where each value came from
        (`meta` or `given`).

    Raises:
        ValueError: when a given value contradicts the meta, or `align_corners`
            is known from neither (it is not guessed).
    """
    stored = settings_from_meta(meta)
    settings, origins = {}, {}
    for name, value in given.items():
        if value is None:
            continue
        if name in ("align_corners", "output_stride") and name in stored:
            if stored[name] != value:
                raise ValueError(
                    f"{name}={value} contradicts the checkpoint's config ({name}="
                    f"{stored[name]}); leave the option out to use the checkpoint's."
                )
        settings[name], origins[name] = value, "given"
    names_given = origins.get("class_names") == "given"
    for name, value in stored.items():
        # A palette stored for the checkpoint's own class names does not go with given names.
        if name not in settings and not (name == "palette" and names_given):
            settings[name], origins[name] = value, "meta"
    if "align_corners" not in settings:
        raise ValueError(
            "align_corners is not in the checkpoint's meta (no stored config): give "
            "--align-corners (False for most MMSegmentation configs, True for the "
            "Cityscapes 769x769 ones)."
        )
    settings.setdefault("output_stride", 8)
    origins.setdefault("output_stride", "default")
    return settings, origins


def build_from_state(state, meta=None, source="state_dict", **given):
    """Builds the EncNet an MMSegmentation checkpoint describes and loads its weights.

    Args:
        state: `{MMSegmentation key: array}`.
        meta: the checkpoint's `meta` dict, or None.
        source: description for messages (e.g. the file's path).
        **given: `align_corners`, `output_stride`, `class_names`, `palette`
            (None: from the meta; see `resolve_settings`).

    Returns:
        `(model, info)`: the loaded `EncNet`, and what was inferred (builder
        arguments, the meta's test mode, and where each setting came from).
    """
    config = infer_config(state)
    settings, origins = resolve_settings(meta, **given)
    test_cfg = settings.pop("test_cfg", None)
    kwargs = {k: v for k, v in config.items() if k != "model"}
    model = EncNet(**kwargs, **settings)
    load_state_dict(module_map(model), state, source)
    info = {**config, **{k: v for k, v in settings.items() if k != "palette"}, "from": origins}
    if test_cfg is not None:
        info["test_cfg"] = test_cfg
    if "class_names" in info:
        info["class_names"] = f"{len(info['class_names'])} names"
    return model, info
