"""Parity with the original PyTorch-Encoding EncNet-ResNet50s (ADE20K, 150 classes).

Weights are regenerated from the oracle's NumPy recipe, converted through
`enc_tf.convert`, and our outputs compared with the original's stored ones
(tolerances from tests/fixtures/oracle/README.md §6.4).
"""

import keras
import numpy as np
import pytest

from enc_tf.contracts.labels import presence_targets
from enc_tf.convert import build_from_state
from enc_tf.layers import BilinearResize
from enc_tf.losses import SegmentationCrossEntropy, encnet_loss_terms
from tests.support import oracle

VARIANT = "ade_r50"
STAGE_TOL = 1e-4
UPSAMPLE_TOL = 1e-5
END_TO_END_TOL = 2e-3
# The last block of each stage of ResNet50 (3, 4, 6, 3 blocks).
STAGE_END = {"c1": "layer1_2_out", "c2": "layer2_3_out", "c3": "layer3_5_out", "c4": "layer4_2_out"}
HEAD_KEYS = (
    "head_conv5",
    "head_feat",
    "enc_X",
    "enc_E",
    "enc_E_bn_relu",
    "enc_en",
    "enc_gamma",
    "encmodule_out",
    "seg_lowres",
    "se",
)


@pytest.fixture(scope="module")
def converted():
    model, config = build_from_state(oracle.state_dict(VARIANT), source=VARIANT)
    return model, config


@pytest.fixture(scope="module")
def ref():
    return oracle.load_npz(VARIANT, "outputs")


@pytest.fixture(scope="module")
def x():
    return oracle.to_keras_layout(oracle.load_npz(VARIANT, "input")["x"])


def _crop(full, box):
    r0, r1, c0, c1 = box
    return full[:, :, r0:r1, c0:c1]


def test_inferred_config_matches_the_original(converted):
    _, config = converted
    expected = oracle.meta(VARIANT)["model"]
    assert config == {
        "model": "encnet",
        "backbone": expected["backbone"],
        "num_classes": expected["nclass"],
        "aux": expected["aux"],
        "se_loss": expected["se_loss"],
        "lateral": expected["lateral"],
        "num_codes": expected["ncodes"],
        "output_stride": 8,
    }


@pytest.mark.parametrize("stage,source", [("c1", None), ("c2", "c1"), ("c3", "c2"), ("c4", "c3")])
def test_backbone_stage_from_stored_input(converted, ref, x, stage, source):
    backbone = converted[0].get_layer("backbone")
    start = backbone.input if source is None else backbone.get_layer(STAGE_END[source]).output
    stage_model = keras.Model(start, backbone.get_layer(STAGE_END[stage]).output)
    feed = x if source is None else oracle.to_keras_layout(ref[source])
    ours = oracle.to_torch_layout(stage_model(feed, training=False))
    assert ours.shape == ref[stage].shape
    assert oracle.rel_to_absmax(ours, ref[stage]) <= STAGE_TOL


def test_head_from_stored_features(converted, ref):
    model = converted[0]
    feats = [oracle.to_keras_layout(ref[k]) for k in ("c2", "c3", "c4")]
    ours = model.get_layer("enc_head").compute_intermediates(feats, training=False)
    errors = {k: oracle.rel_to_absmax(oracle.to_torch_layout(ours[k]), ref[k]) for k in HEAD_KEYS}
    assert max(errors.values()) <= STAGE_TOL, errors
    aux = model.get_layer("aux_head")(feats[1], training=False)
    assert oracle.rel_to_absmax(oracle.to_torch_layout(aux), ref["aux_lowres"]) <= STAGE_TOL


def test_upsampling_of_stored_logits_matches_align_corners(ref, x):
    resize = BilinearResize(align_corners=True)
    for key in ("seg", "aux"):
        full = oracle.to_torch_layout(resize([oracle.to_keras_layout(ref[f"{key}_lowres"]), x]))
        assert (
            oracle.rel_to_absmax(_crop(full, ref["crop_box"]), ref[f"{key}_crop"]) <= UPSAMPLE_TOL
        )
    # Half-pixel centres (TF's default) are a different function: the test can fail.
    half = oracle.to_torch_layout(
        BilinearResize(align_corners=False)([oracle.to_keras_layout(ref["seg_lowres"]), x])
    )
    assert oracle.rel_to_absmax(_crop(half, ref["crop_box"]), ref["seg_crop"]) > 1e-2


def test_end_to_end_from_input(converted, ref, x):
    model = converted[0]
    outputs = model(x, training=False)
    feats = model.get_layer("backbone")(x, training=False)
    ours = {k: oracle.to_torch_layout(v) for k, v in feats.items()}
    head = model.get_layer("enc_head").compute_intermediates(
        [feats["c2"], feats["c3"], feats["c4"]], training=False
    )
    ours.update({k: oracle.to_torch_layout(v) for k, v in head.items()})
    ours["aux_lowres"] = oracle.to_torch_layout(
        model.get_layer("aux_head")(feats["c3"], training=False)
    )
    ours["seg_crop"] = _crop(oracle.to_torch_layout(outputs["seg"]), ref["crop_box"])
    ours["aux_crop"] = _crop(oracle.to_torch_layout(outputs["aux"]), ref["crop_box"])
    np.testing.assert_array_equal(np.asarray(outputs["se"]), np.asarray(head["se"]))
    keys = [k for k in ref if k != "crop_box"]
    errors = {k: oracle.rel_to_absmax(ours[k], ref[k]) for k in keys}
    assert max(errors.values()) <= END_TO_END_TOL, errors
    # The Encoding path on its own, not only through seg.
    for key in ("se", "enc_E", "enc_E_bn_relu", "enc_en", "enc_gamma"):
        assert errors[key] <= END_TO_END_TOL, (key, errors[key])


def test_loss_on_the_originals_outputs(ref, x):
    stored = oracle.load_npz(VARIANT, "loss")
    target = stored["target"]  # -1 = ignore
    np.testing.assert_array_equal(
        presence_targets(target, 150, ignore_index=-1), stored["se_target"]
    )
    resize = BilinearResize(align_corners=True)
    outputs = {
        "seg": resize([oracle.to_keras_layout(ref["seg_lowres"]), x]),
        "aux": resize([oracle.to_keras_layout(ref["aux_lowres"]), x]),
        "se": ref["se"],
    }
    terms = encnet_loss_terms(outputs, target, ignore_index=-1)
    for key in ("total", "ce_seg", "ce_aux", "bce_se"):
        assert abs(float(terms[key]) - float(stored[key])) <= 1e-5 * abs(float(stored[key])), key


def test_loss_end_to_end(converted, x):
    stored = oracle.load_npz(VARIANT, "loss")
    terms = encnet_loss_terms(converted[0](x, training=False), stored["target"], ignore_index=-1)
    for key in ("total", "ce_seg", "ce_aux", "bce_se"):
        assert abs(float(terms[key]) - float(stored[key])) <= 2e-4, key


def test_ignored_pixels_do_not_count(ref, x):
    stored = oracle.load_npz(VARIANT, "loss")
    seg = BilinearResize()([oracle.to_keras_layout(ref["seg_lowres"]), x])
    # Treating -1 as a class index would be wrong: counting it changes the value.
    as_zero = np.where(stored["target"] < 0, 0, stored["target"])
    wrong = SegmentationCrossEntropy(ignore_index=255)(as_zero, seg)
    assert abs(float(wrong) - float(stored["ce_seg"])) > 1e-3
