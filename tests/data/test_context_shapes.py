import os

import numpy as np
import pytest

from enc_tf.data import context_shapes, folder_source
from enc_tf.data.context_shapes import (
    BACKGROUNDS,
    CLASSES,
    CUE_BAND,
    SCENES,
    SIDES,
    cue_band,
    ensure_context_shapes,
    render_scene,
)
from enc_tf.data.io import read_pair


def test_deterministic_for_a_seed_and_cached(tmp_path):
    root = ensure_context_shapes(str(tmp_path), num_train=8, num_val=4, image_size=64, seed=3)
    again = ensure_context_shapes(str(tmp_path), num_train=8, num_val=4, image_size=64, seed=3)
    assert again == root
    first = os.path.join(root, "images", sorted(os.listdir(os.path.join(root, "images")))[0])
    mtime = os.path.getmtime(first)
    ensure_context_shapes(str(tmp_path), num_train=8, num_val=4, image_size=64, seed=3)
    assert os.path.getmtime(first) == mtime  # reused, not regenerated
    other = ensure_context_shapes(
        str(tmp_path / "b"), num_train=8, num_val=4, image_size=64, seed=3
    )
    for name in os.listdir(os.path.join(root, "images")):
        a = read_pair(
            os.path.join(root, "images", name),
            os.path.join(root, "masks", name),
            np.arange(256),
            255,
        )
        b = read_pair(
            os.path.join(other, "images", name),
            os.path.join(other, "masks", name),
            np.arange(256),
            255,
        )
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    a, _ = render_scene("beach", 64, np.random.default_rng(1))
    b, _ = render_scene("beach", 64, np.random.default_rng(2))
    assert not np.array_equal(a, b)


def test_is_a_folder_dataset_with_every_class(tmp_path):
    root = ensure_context_shapes(str(tmp_path), num_train=16, num_val=4, image_size=64)
    train, val = folder_source(root, "train"), folder_source(root, "val")
    assert len(train.samples) == 16 and len(val.samples) == 4
    assert train.classes == CLASSES and 8 <= train.num_classes <= 16
    seen = set()
    for image_path, mask_path in train.samples:
        seen |= set(np.unique(read_pair(image_path, mask_path, train.lookup, 255)[1]).tolist())
    assert seen == set(range(CLASSES.num_classes))


def _patch_features(class_id, n_images, rng, size=64, patch=8):
    """Local statistics of patches lying wholly inside `class_id` regions."""
    scene = {0: "beach", 1: "farm", 2: "coast", 3: "pond"}[class_id]
    feats = []
    for _ in range(n_images):
        image, label = render_scene(scene, size, rng)
        image = image.astype(np.float64)
        for y in range(0, size - patch, patch):
            for x in range(0, size - patch, patch):
                if np.all(label[y : y + patch, x : x + patch] == class_id):
                    p = image[y : y + patch, x : x + patch]
                    grad = np.abs(np.diff(p, axis=0)).mean() + np.abs(np.diff(p, axis=1)).mean()
                    feats.append(np.concatenate([p.mean((0, 1)), p.std((0, 1)), [grad]]))
    return np.array(feats)


def _nearest_mean_accuracy(a, b):
    """Train a nearest-class-mean classifier on half the patches, test on the rest."""
    ha, hb = len(a) // 2, len(b) // 2
    mean_a, mean_b = a[:ha].mean(0), b[:hb].mean(0)
    scale = np.concatenate([a[:ha], b[:hb]]).std(0) + 1e-9
    test = np.concatenate([a[ha:], b[hb:]])
    truth = np.concatenate([np.zeros(len(a) - ha), np.ones(len(b) - hb)])
    pred = np.linalg.norm((test - mean_a) / scale, axis=1) > np.linalg.norm(
        (test - mean_b) / scale, axis=1
    )
    return float(np.mean(pred == truth))


def test_look_alike_backgrounds_are_indistinguishable_locally():
    """Patch statistics (colour mean and spread, gradient energy) tell the pair apart at
    chance, while the same statistics separate the two textures perfectly. 200 images a
    class: patches of one image share its colour, so fewer images leave the test noisy."""
    rng = np.random.default_rng(0)
    sand, earth, sea, lake = (_patch_features(c, 200, rng, size=48) for c in range(4))
    assert min(len(sand), len(earth), len(sea), len(lake)) > 2000
    assert abs(_nearest_mean_accuracy(sand, earth) - 0.5) < 0.08  # chance is 0.5
    assert abs(_nearest_mean_accuracy(sea, lake) - 0.5) < 0.08
    # The same statistics separate backgrounds of different textures: the test can fail.
    assert _nearest_mean_accuracy(sand, sea) > 0.95


def _render(scene, size, seed):
    """A scene and the side its cue band lies on (found from where the objects are)."""
    image, label = render_scene(scene, size, np.random.default_rng(seed))
    objects = label >= len(BACKGROUNDS)
    sides = [side for side in SIDES if not np.any(objects & ~_band_mask(side, size, margin=1))]
    return image, label, sides


def _band_mask(side, size, margin=0):
    rows, cols = cue_band(side, size)
    mask = np.zeros((size, size), bool)
    mask[
        max(rows.start - margin, 0) : rows.stop + margin,
        max(cols.start - margin, 0) : cols.stop + margin,
    ] = True
    return mask


def test_every_scene_has_one_background_and_its_own_objects_inside_one_band():
    size = 96
    seen_sides = set()
    for seed in range(24):
        for scene, (background, _, objects) in SCENES.items():
            image, label, sides = _render(scene, size, seed)
            assert image.shape == (size, size, 3) and image.dtype == np.uint8
            assert label.shape == (size, size) and label.dtype == np.uint8
            values = set(np.unique(label).tolist())
            assert values == {background, *objects}, (scene, seed, values)  # nothing else
            assert sides, (scene, seed)  # every object lies inside one band along a side
            seen_sides.update(sides)
            # Most of the background lies outside the band, far from every cue.
            far = ~_band_mask(sides[0], size)
            assert far.mean() >= 1 - CUE_BAND - 0.02
            assert np.all(label[far] == background)
    assert seen_sides == set(SIDES)  # no side is a cue by itself


def test_far_background_is_far_from_every_object():
    """In every scene, 40% of the background is more than a third of the image from the
    nearest object pixel, and half of it more than a quarter."""
    size = 64
    rows, cols = np.mgrid[:size, :size]
    for seed in range(8):
        for scene in SCENES:
            _, label, _ = _render(scene, size, seed)
            objects = np.argwhere(label >= len(BACKGROUNDS))
            background = np.argwhere(label < len(BACKGROUNDS))
            distance = np.sqrt(((background[:, None, :] - objects[None, :, :]) ** 2).sum(-1)).min(1)
            assert np.mean(distance > size / 3) >= 0.4, (scene, seed)
            assert np.mean(distance > size / 4) >= 0.5, (scene, seed)


def test_a_new_version_is_a_new_cache(tmp_path):
    root = ensure_context_shapes(str(tmp_path), num_train=4, num_val=4, image_size=32)
    assert f"context_shapes-v{context_shapes.VERSION}-" in os.path.basename(root)
    assert context_shapes.VERSION >= 2  # the cue-band design; version 1 scattered the objects


def test_a_probe_scene_holds_the_objects_asked_for_and_the_default_stream_is_unchanged():
    image, label = render_scene("beach", 96, np.random.default_rng(5), objects=(4, 5))
    assert {0, 4, 5} <= set(np.unique(label).tolist()) <= {0, 4, 5}
    own = render_scene("beach", 96, np.random.default_rng(5))
    again = render_scene("beach", 96, np.random.default_rng(5), objects=SCENES["beach"][2])
    assert all(np.array_equal(a, b) for a, b in zip(own, again))
    for bad in [(), (0,), (4, 5, 6, 7)]:
        with pytest.raises(ValueError, match="objects"):
            render_scene("beach", 96, np.random.default_rng(5), objects=bad)
