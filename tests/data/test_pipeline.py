import numpy as np
import pytest

from enc_tf.data import (
    PipelineConfig,
    build_dataset,
    decoded_examples,
    folder_source,
)
from tests.support import layouts


@pytest.fixture()
def source(tmp_path):
    layouts.write_folder(str(tmp_path), np.random.default_rng(0), n=6, with_split=False)
    return folder_source(str(tmp_path))


def _batches(dataset):
    return [(x.numpy(), {k: v.numpy() for k, v in t.items()}) for x, t in dataset]


def test_train_batches_and_presence_targets(source):
    config = PipelineConfig(batch_size=2, base_size=14, crop_size=8, seed=3)
    batches = _batches(build_dataset(source, "train", config))
    assert len(batches) == 3
    for images, targets in batches:
        assert images.shape == (2, 8, 8, 3) and images.dtype == np.float32
        assert targets["seg"].dtype == np.int32 and np.array_equal(targets["seg"], targets["aux"])
        for label, presence in zip(targets["seg"], targets["se"]):
            expected = np.zeros(3, np.float32)
            expected[np.unique(label[label != 255])] = 1  # of the crop the model sees
            np.testing.assert_array_equal(presence, expected)


def test_same_seed_same_batches_other_seed_differs(source):
    config = PipelineConfig(batch_size=2, base_size=14, crop_size=8, seed=5)
    a = _batches(build_dataset(source, "train", config))
    b = _batches(build_dataset(source, "train", config))
    for (xa, ta), (xb, tb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ta["seg"], tb["seg"])
    c = _batches(
        build_dataset(
            source, "train", PipelineConfig(batch_size=2, base_size=14, crop_size=8, seed=6)
        )
    )
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c))


def test_repeat_gives_new_augmentations_each_epoch(source):
    config = PipelineConfig(batch_size=6, base_size=14, crop_size=8, seed=1)
    first, second = _batches(build_dataset(source, "train", config, repeat=True).take(2))
    assert not np.array_equal(first[0], second[0])


def test_val_and_eval_modes(source):
    val = _batches(
        build_dataset(source, "val", PipelineConfig(batch_size=4, crop_size=8), aux=False)
    )
    assert val[0][0].shape == (4, 8, 8, 3) and set(val[0][1]) == {"seg", "se"}
    evaluation = _batches(
        build_dataset(source, "eval", PipelineConfig(batch_size=4), se_loss=False)
    )
    assert evaluation[0][0].shape == (4, 10, 14, 3) and set(evaluation[0][1]) == {"seg", "aux"}
    assert sum(len(x) for x, _ in evaluation) == 6


def test_bad_arguments(source):
    with pytest.raises(ValueError, match="mode"):
        build_dataset(source, "test")
    with pytest.raises(ValueError, match="crop_size"):
        build_dataset(source, "train", PipelineConfig(base_size=10, crop_size=100))
    with pytest.raises(ValueError, match="batch_size"):
        PipelineConfig(batch_size=0)


def test_bad_mask_value_fails_with_the_file_name(tmp_path):
    layouts.write_folder(str(tmp_path), np.random.default_rng(1), n=2, with_split=False)
    layouts.save_mask(str(tmp_path / "masks" / "img1.png"), np.full((10, 14), 7))
    dataset = build_dataset(folder_source(str(tmp_path)), "eval", PipelineConfig(batch_size=1))
    with pytest.raises(Exception, match=r"img1.png has values \[7\]"):
        _batches(dataset)


def _image_set(dataset):
    return {image.tobytes() for image, _ in dataset.as_numpy_iterator()}


def test_shards_partition_the_examples(source):
    config = PipelineConfig(batch_size=1)
    whole = _image_set(decoded_examples(source))
    parts = [_image_set(decoded_examples(source, shard=(2, i))) for i in range(2)]
    assert len(parts[0]) == 3 and len(parts[1]) == 3
    assert parts[0] | parts[1] == whole and not parts[0] & parts[1]
    assert (
        len(
            list(
                build_dataset(
                    source, "val", PipelineConfig(batch_size=1, crop_size=8), shard=(3, 2)
                )
            )
        )
        == 2
    )
    # 6 examples over 4 shards: 2, 2, 1, 1, padded to 2 each with all-ignore blanks.
    quarters = [list(decoded_examples(source, shard=(4, i)).as_numpy_iterator()) for i in range(4)]
    assert [len(q) for q in quarters] == [2, 2, 2, 2]
    assert [sum(np.all(label == 255) for _, label in q) for q in quarters] == [0, 0, 1, 1]
    repeated = list(decoded_examples(source, repeat=True, shard=(4, 3)).take(4).as_numpy_iterator())
    assert not any(np.all(label == 255) for _, label in repeated)  # no blanks when repeating
    with pytest.raises(ValueError, match="shard"):
        build_dataset(source, "train", config, shard=(2, 2))
