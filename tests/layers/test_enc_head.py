import keras
import numpy as np
import pytest

from enc_tf.layers import EncHead


def _features(seed=0, size=(4, 5)):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(2, *size, c)).astype("float32") for c in (32, 64, 128)]


@pytest.mark.parametrize("lateral", [False, True])
def test_shapes_and_intermediates(lateral):
    head = EncHead(7, lateral=lateral, channels=16, num_codes=4)
    feats = _features()
    seg, se = head(feats, training=False)
    assert seg.shape == (2, 4, 5, 7) and se.shape == (2, 7)
    assert head.compute_output_shape([f.shape for f in feats]) == ((2, 4, 5, 7), (2, 7))
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


def test_no_se_head_returns_logits_only():
    head = EncHead(3, se_loss=False, channels=8, num_codes=4)
    out = head(_features(), training=False)
    assert out.shape == (2, 4, 5, 3)


def test_batch_norm_defaults_and_sync_flag():
    for sync in (False, True):
        head = EncHead(3, lateral=True, channels=8, num_codes=4, sync_batch_norm=sync)
        head(_features())
        norms = [
            l
            for l in head._flatten_layers(include_self=False)
            if isinstance(l, keras.layers.BatchNormalization)
        ]
        assert len(norms) == 6
        assert all(
            n.synchronized == sync and n.epsilon == 1e-5 and n.momentum == 0.9 for n in norms
        )


def test_wrong_number_of_features_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[c2, c3, c4\]"):
        EncHead(3).build([(1, 4, 4, 2048)])


def test_serialization_round_trip(tmp_path):
    inputs = [keras.Input((None, None, c)) for c in (32, 64, 128)]
    seg, se = EncHead(5, lateral=True, channels=16, num_codes=4, name="head")(inputs)
    model = keras.Model(inputs, {"seg": seg, "se": se})
    path = str(tmp_path / "head.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    feats = _features(2, size=(3, 6))
    for key in ("seg", "se"):
        np.testing.assert_array_equal(model(feats)[key], restored(feats)[key])
    assert restored.get_layer("head").get_config()["lateral"] is True
