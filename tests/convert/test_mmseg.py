"""MMSegmentation EncNet checkpoints: parity with MMSegmentation 1.2.2's own outputs,
round trips, and the errors of a checkpoint that does not fit.

The parity oracle (tests/fixtures/oracle_mmseg/README.md) is EncNet R-50-D8 ADE20K
(`encnet_r50-d8_4xb4-80k_ade20k-512x512.py`) on weights regenerated from a NumPy
recipe keyed by MMSegmentation's state_dict names. Tolerances from the issue: stage
by stage 1e-4 of the largest value, end to end 2e-3 (R-50).
"""

import numpy as np
import pytest

from enc_tf import build_encnet, build_fcn
from enc_tf.convert import mmseg, pytorch_encoding
from enc_tf.convert.formats import checkpoint_format
from enc_tf.layers import BilinearResize
from tests.support import oracle

VARIANT = "mmseg_ade_r50"
STAGE_TOL = 1e-4
UPSAMPLE_TOL = 1e-5
END_TO_END_TOL = 2e-3


def _meta():
    """A checkpoint `meta` as MMSegmentation writes it: the config as text."""
    cfg = oracle.meta(VARIANT, oracle.MMSEG_DIR)["model"]["resolved_model_cfg"]
    return {"config": f"model = {cfg!r}\n"}


@pytest.fixture(scope="module")
def state():
    return oracle.state_dict(VARIANT, oracle.MMSEG_DIR)


@pytest.fixture(scope="module")
def converted(state):
    return mmseg.build_from_state(state, _meta(), source=VARIANT)


@pytest.fixture(scope="module")
def ref():
    return oracle.load_npz(VARIANT, "outputs", oracle.MMSEG_DIR)


@pytest.fixture(scope="module")
def x():
    return oracle.to_keras_layout(oracle.load_npz(VARIANT, "input", oracle.MMSEG_DIR)["x"])


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_inferred_config_and_settings_from_the_checkpoint(converted):
    model, info = converted
    options = oracle.meta(VARIANT, oracle.MMSEG_DIR)["model"]["options"]
    assert info == {
        "model": "encnet",
        "backbone": "resnet50v1c",
        "num_classes": options["num_classes"],
        "aux": True,
        "se_loss": True,
        "lateral": options["lateral"],
        "num_codes": options["num_codes"],
        "align_corners": options["align_corners"],
        "output_stride": options["backbone"]["output_stride"],
        "test_cfg": {"mode": "whole"},
        "from": {"align_corners": "meta", "output_stride": "meta", "test_cfg": "meta"},
    }
    assert model.arguments["align_corners"] is False
    # MMSegmentation's own counts for R-50-D8 ADE20K: 363 keys, 36,060,034 parameters.
    assert _trainable(model) == oracle.meta(VARIANT, oracle.MMSEG_DIR)["n_params"] == 36_060_034


@pytest.mark.parametrize("stage,source", [("c1", None), ("c2", "c1"), ("c3", "c2"), ("c4", "c3")])
def test_backbone_stage_from_stored_input(converted, ref, x, stage, source):
    assert oracle.stage_error(converted[0], ref, x, stage, source) <= STAGE_TOL


def test_head_from_stored_features(converted, ref):
    errors = oracle.head_errors(converted[0], ref)
    assert max(errors.values()) <= STAGE_TOL, errors


def test_upsampling_is_half_pixel_as_mmsegmentation(ref, x):
    for key in ("seg", "aux"):
        full = BilinearResize(align_corners=False)(
            [oracle.to_keras_layout(ref[f"{key}_lowres"]), x]
        )
        ours = oracle.crop(oracle.to_torch_layout(full), ref["crop_box"])
        assert oracle.rel_to_absmax(ours, ref[f"{key}_crop"]) <= UPSAMPLE_TOL
    # The original's aligned corners are another function: the test can fail.
    aligned = BilinearResize(align_corners=True)([oracle.to_keras_layout(ref["seg_lowres"]), x])
    wrong = oracle.crop(oracle.to_torch_layout(aligned), ref["crop_box"])
    assert oracle.rel_to_absmax(wrong, ref["seg_crop"]) > 1e-2


def test_end_to_end_from_input(converted, ref, x):
    errors = oracle.end_to_end_errors(converted[0], ref, x)
    assert max(errors.values()) <= END_TO_END_TOL, errors


def test_the_way_back_gives_the_same_state_dict(converted, state):
    back = mmseg.state_dict_from_model(converted[0])
    with open(oracle.MMSEG_DIR / VARIANT / "state_dict_keys.tsv") as f:
        keys = [line.split("\t")[1] for line in f.read().splitlines()[1:]]
    assert len(keys) == 363 and sorted(back) == sorted(keys)
    for key, value in state.items():
        assert back[key].dtype == np.float32 and back[key].shape == value.shape, key
        np.testing.assert_array_equal(back[key], value, err_msg=key)
    assert all(back[k].dtype == np.int64 for k in keys if k.endswith("num_batches_tracked"))


def _randomise(model, seed=0):
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs,keys,params",
    [
        # MMSegmentation's counts (oracle README §1): Cityscapes R-101-D8, 19 classes, and
        # R-50s-D8 ADE20K with the lateral head; the R-50-D16 layout maps the same keys.
        (dict(num_classes=19, backbone="resnet101v1c"), 669, 54_884_089),
        (dict(num_classes=150, backbone="resnet50s", lateral=True), 381, 44_031_970),
        (dict(num_classes=7, backbone="resnet50v1c", output_stride=16, aux=False), None, None),
    ],
)
def test_round_trip_of_every_variant(kwargs, keys, params):
    model = build_encnet(align_corners=False, **kwargs)
    _randomise(model)
    state = mmseg.state_dict_from_model(model)
    if keys is not None:
        assert len(state) == keys and _trainable(model) == params
    meta = mmseg.meta_from_model(model)
    rebuilt, info = mmseg.build_from_state(state, meta)
    for key, value in kwargs.items():
        assert info[key] == value, key
    assert info["align_corners"] is False
    again = mmseg.state_dict_from_model(rebuilt)
    assert sorted(again) == sorted(state)
    for key in state:
        np.testing.assert_array_equal(again[key], state[key], err_msg=key)
    images = np.random.default_rng(1).normal(size=(1, 40, 56, 3)).astype("float32")
    np.testing.assert_array_equal(model(images)["seg"], rebuilt(images)["seg"])


def test_align_corners_is_never_guessed(state):
    with pytest.raises(ValueError, match="give --align-corners"):
        mmseg.build_from_state(state, None)
    with pytest.raises(ValueError, match=r"align_corners=True contradicts the checkpoint's config"):
        mmseg.build_from_state(state, _meta(), align_corners=True)
    both = {"config": "decode_head=dict(align_corners=False), aux=dict(align_corners=True)"}
    with pytest.raises(ValueError, match="both True and False"):
        mmseg.settings_from_meta(both)


def test_settings_from_the_meta_of_each_mmsegmentation_version():
    # 0.x: `config` text, CLASSES, PALETTE; the Cityscapes 769x769 configs slide.
    old = {
        "config": (
            "model = dict(backbone=dict(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)), "
            "decode_head=dict(align_corners=True), test_cfg=dict(mode='slide', "
            "crop_size=(769, 769), stride=(513, 513)))"
        ),
        "CLASSES": ("road", "sidewalk"),
        "PALETTE": [[128, 64, 128], [244, 35, 232]],
    }
    assert mmseg.settings_from_meta(old) == {
        "align_corners": True,
        "output_stride": 16,
        "test_cfg": {"mode": "slide", "crop_size": [769, 769], "stride": [513, 513]},
        "class_names": ["road", "sidewalk"],
        "palette": [[128, 64, 128], [244, 35, 232]],
    }
    # 1.x (MMEngine): `cfg` text and dataset_meta.
    new = {"cfg": "{'align_corners': False}", "dataset_meta": {"classes": ["a", "b", "c"]}}
    assert mmseg.settings_from_meta(new) == {"align_corners": False, "class_names": ["a", "b", "c"]}
    assert mmseg.settings_from_meta(None) == {}
    with pytest.raises(ValueError, match=r"strides \(1, 2, 2, 2\)"):
        mmseg.settings_from_meta({"config": "strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1)"})


def test_a_checkpoint_of_the_other_format_says_which_it_is():
    pe_state = pytorch_encoding.state_dict_from_model(build_fcn(3, backbone="resnet50s"))
    assert checkpoint_format(pe_state) == "pytorch-encoding"
    with pytest.raises(ValueError, match="looks like a pytorch-encoding checkpoint"):
        mmseg.infer_config(pe_state)


def test_the_other_way_round(state):
    assert checkpoint_format(state) == "mmseg"
    with pytest.raises(ValueError, match=r"looks like a mmseg checkpoint.*enc_tf.convert mmseg"):
        pytorch_encoding.infer_config(state)
    with pytest.raises(ValueError, match="neither a PyTorch-Encoding nor an MMSegmentation"):
        mmseg.infer_config({"encoder.weight": np.zeros(3), "decoder.weight": np.zeros(3)})


def test_a_missing_or_mis_shaped_key_is_named(state):
    meta = _meta()
    missing = {k: v for k, v in state.items() if k != "decode_head.enc_module.fc.0.bias"}
    with pytest.raises(ValueError, match=r"(?s)1 missing.*'decode_head\.enc_module\.fc\.0\.bias'"):
        mmseg.build_from_state(missing, meta)
    wrong = dict(state)
    wrong["backbone.layer2.1.conv2.weight"] = np.zeros((128, 128, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"backbone\.layer2\.1\.conv2\.weight: \(128, 128, 1, 1\)"):
        mmseg.build_from_state(wrong, meta)
    extra = {**state, "decode_head.extra.weight": np.zeros(3, np.float32)}
    with pytest.raises(ValueError, match=r"(?s)1 unexpected.*decode_head\.extra\.weight"):
        mmseg.build_from_state(extra, meta)
    narrow = {**state, "decode_head.bottleneck.conv.weight": np.zeros((256, 2048, 3, 3))}
    with pytest.raises(ValueError, match="'decode_head.bottleneck.conv.weight' has 256 output"):
        mmseg.infer_config(narrow)
    fcn = {k: v for k, v in state.items() if "enc_module" not in k}
    with pytest.raises(ValueError, match="Not an MMSegmentation EncNet"):
        mmseg.infer_config(fcn)
