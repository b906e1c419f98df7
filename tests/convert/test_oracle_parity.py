"""Parity with the original PyTorch-Encoding EncNet-ResNet50s (ADE20K, 150 classes).

Weights are regenerated from the oracle's NumPy recipe, converted through
`enc_tf.convert`, and our outputs compared with the original's stored ones
(tolerances from tests/fixtures/oracle/README.md §6.4).
"""

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
    assert oracle.stage_error(converted[0], ref, x, stage, source) <= STAGE_TOL


def test_head_from_stored_features(converted, ref):
    errors = oracle.head_errors(converted[0], ref)
    assert max(errors.values()) <= STAGE_TOL, errors


def test_upsampling_of_stored_logits_matches_align_corners(ref, x):
    resize = BilinearResize(align_corners=True)
    for key in ("seg", "aux"):
        full = oracle.to_torch_layout(resize([oracle.to_keras_layout(ref[f"{key}_lowres"]), x]))
        assert (
            oracle.rel_to_absmax(oracle.crop(full, ref["crop_box"]), ref[f"{key}_crop"])
            <= UPSAMPLE_TOL
        )
    # Half-pixel centres (TF's default) are a different function: the test can fail.
    half = oracle.to_torch_layout(
        BilinearResize(align_corners=False)([oracle.to_keras_layout(ref["seg_lowres"]), x])
    )
    assert oracle.rel_to_absmax(oracle.crop(half, ref["crop_box"]), ref["seg_crop"]) > 1e-2


def test_end_to_end_from_input(converted, ref, x):
    errors = oracle.end_to_end_errors(converted[0], ref, x)
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
