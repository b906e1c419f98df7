"""Folding BatchNorm into the convolutions before it: the same function, fewer passes."""

import keras
import numpy as np
import pytest

from enc_tf.layers import BatchNorm, batch_norm
from enc_tf.models.transforms import conv_batch_norm_pairs, copy_model, fold_batch_norms
from tests.support.tiny_models import randomise_batch_norms


def _graph_model():
    """conv -> BN (folded); conv with bias -> BN (folded); depthwise conv with two
    outputs per channel -> BN (folded); a conv read twice -> BN (kept); a BN after an
    addition (kept)."""
    images = keras.Input((None, None, 3))
    x = keras.layers.ReLU()(
        batch_norm(name="bn_a")(
            keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv_a")(images)
        )
    )
    x = batch_norm(name="bn_b")(keras.layers.Conv2D(8, 1, name="conv_b")(x))
    x = batch_norm(name="bn_dw")(
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="conv_dw")(x)
    )
    shared = keras.layers.Conv2D(8, 3, padding="same", name="conv_shared")(x)
    y = batch_norm(name="bn_shared")(shared)
    z = batch_norm(name="bn_sum")(keras.layers.Add()([y, shared]))
    return keras.Model(images, {"seg": z})


def test_folds_exactly_the_batch_norms_that_follow_a_convolution():
    model = _graph_model()
    randomise_batch_norms(model)
    pairs = {(conv.name, bn.name) for conv, bn in conv_batch_norm_pairs(model)}
    assert pairs == {("conv_a", "bn_a"), ("conv_b", "bn_b"), ("conv_dw", "bn_dw")}
    folded = fold_batch_norms(model)
    assert [layer.name for layer in folded.layers if getattr(layer, "folded", False)] == [
        "bn_a",
        "bn_b",
        "bn_dw",
    ]
    assert not any(getattr(layer, "folded", False) for layer in model.layers)  # a copy
    x = np.random.default_rng(1).normal(size=(2, 9, 11, 3)).astype("float32")
    expected, ours = model(x, training=False)["seg"], folded(x, training=False)["seg"]
    np.testing.assert_allclose(ours, expected, atol=1e-5 * float(np.abs(expected).max()))
    with pytest.raises(ValueError, match="folded into its convolution"):
        folded(x, training=True)


def test_a_folded_model_round_trips_through_a_keras_file(tmp_path):
    model = _graph_model()
    randomise_batch_norms(model, seed=3)
    folded = fold_batch_norms(model)
    path = str(tmp_path / "folded.keras")
    folded.save(path)
    again = keras.saving.load_model(path)
    assert again.get_layer("bn_a").folded and not again.get_layer("bn_shared").folded
    x = np.random.default_rng(2).normal(size=(1, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(again(x)["seg"], folded(x)["seg"])
    assert isinstance(copy_model(folded).get_layer("bn_b"), BatchNorm)


@pytest.mark.parametrize(
    "backbone", [pytest.param("resnet50v1c", marks=pytest.mark.slow), "mobilenetv3_large"]
)
def test_folded_encnet_equals_encnet(backbone):
    from enc_tf import build_encnet
    from enc_tf.models.logits import model_logits

    model = build_encnet(5, backbone=backbone, output_stride=16, lateral=False)
    randomise_batch_norms(model, seed=4)
    folded = fold_batch_norms(model)
    norms = [
        layer
        for layer in folded._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, BatchNorm)
    ]
    # Every BatchNorm but the one over the codewords follows a convolution.
    assert [n.name for n in norms if not n.folded] == ["bn_codes"]
    x = np.random.default_rng(5).normal(size=(1, 80, 72, 3)).astype("float32")
    expected, ours = model_logits(model, x), model_logits(folded, x)
    for key in ("seg", "se"):
        scale = float(np.abs(expected[key]).max())
        np.testing.assert_allclose(ours[key], expected[key], atol=2e-4 * scale, err_msg=key)
