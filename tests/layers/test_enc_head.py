import keras
import numpy as np
import pytest

from enc_tf.layers import EncHead
from tests.support.layer_test import run_layer_test


def _features(seed=0, size=(4, 5)):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(2, *size, c)).astype("float32") for c in (32, 64, 128)]


@pytest.mark.parametrize("lateral", [False, True])
def test_shapes_and_intermediates(lateral):
    head = EncHead(7, lateral=lateral, channels=16, num_codes=4)
    feats = _features()
    seg, _ = head(feats, training=False)
    inter = head.compute_intermediates(feats, training=False)
    assert ("lateral_c2" in inter) == lateral
    assert inter["enc_E"].shape == (2, 4, 16) and inter["enc_en"].shape == (2, 16)
    if not lateral:
        np.testing.assert_array_equal(inter["head_feat"], inter["head_conv5"])
    np.testing.assert_array_equal(seg, inter["seg_lowres"])


def test_lateral_reads_stage_2_and_3_in_the_originals_concat_order():
    head = EncHead(3, lateral=True, channels=8, num_codes=4)
    feats = _features(1)
    inter = head.compute_intermediates(feats, training=False)
    fused = head.fusion(
        np.concatenate([inter["head_conv5"], inter["lateral_c2"], inter["lateral_c3"]], axis=-1),
        training=False,
    )
    np.testing.assert_allclose(fused, inter["head_feat"], rtol=1e-6)
    changed = [feats[0] + 1.0, feats[1], feats[2]]
    assert not np.allclose(head(changed, training=False)[0], head(feats, training=False)[0])
    plain = EncHead(3, lateral=False, channels=8, num_codes=4)
    np.testing.assert_array_equal(
        plain(changed, training=False)[0], plain(feats, training=False)[0]
    )


def test_batch_norm_defaults_and_sync_flag():
    for sync in (False, True):
        head = EncHead(3, lateral=True, channels=8, num_codes=4, sync_batch_norm=sync)
        head(_features())
        norms = [
            layer
            for layer in head._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        assert len(norms) == 6
        assert all(
            n.synchronized == sync and n.epsilon == 1e-5 and n.momentum == 0.9 for n in norms
        )


def test_wrong_number_of_features_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[c2, c3, c4\]"):
        EncHead(3).build([(1, 4, 4, 2048)])


@pytest.mark.parametrize(
    "lateral,se_loss,output_shape,num_trainable,num_non_trainable",
    # conv5 3 + 2; EncModule 11 (9 without the SE head) + 4; classifier 2; each lateral block 3 + 2.
    [
        (False, True, ((2, 3, 4, 3), (2, 3)), 16, 6),
        (True, True, ((2, 3, 4, 3), (2, 3)), 25, 12),
        (False, False, (2, 3, 4, 3), 14, 6),
    ],
)
def test_layer_contract(lateral, se_loss, output_shape, num_trainable, num_non_trainable, tmp_path):
    run_layer_test(
        EncHead,
        {
            "num_classes": 3,
            "lateral": lateral,
            "se_loss": se_loss,
            "num_codes": 4,
            "channels": 6,
            "dropout": 0.2,
        },
        [(2, 3, 4, 5), (2, 3, 4, 6), (2, 3, 4, 7)],
        output_shape,
        num_trainable,
        num_non_trainable,
        tmp_path,
    )
