import os

import numpy as np
import pytest
import tensorflow as tf

from enc_tf.data import (
    DataError,
    PipelineConfig,
    build_dataset,
    decoded_examples,
    folder_source,
    read_tfrecord_source,
    write_tfrecords,
)
from enc_tf.data.io import read_pair
from enc_tf.data.tfrecord import parse_example
from tests.support import layouts


def test_round_trip_is_lossless_and_sharded(tmp_path):
    layouts.write_folder(str(tmp_path / "src"), np.random.default_rng(0), n=5, with_split=False)
    source = folder_source(str(tmp_path / "src"))
    converted = write_tfrecords(source, str(tmp_path / "tfr"), num_shards=2)
    assert len(converted.files) == 2 and converted.num_examples == 5
    assert converted.classes == source.classes
    assert sorted(os.listdir(tmp_path / "tfr")) == sorted(
        [os.path.basename(f) for f in converted.files] + ["dataset.json"]
    )
    expected = {os.path.basename(i): read_pair(i, m, source.lookup, 255) for i, m in source.samples}
    seen = 0
    for record in tf.data.TFRecordDataset(list(converted.files)):
        name = tf.io.parse_single_example(
            record, {"image/filename": tf.io.FixedLenFeature([], tf.string)}
        )
        image, label = parse_example(record)
        ref_image, ref_label = expected[name["image/filename"].numpy().decode()]
        np.testing.assert_array_equal(image, ref_image)
        np.testing.assert_array_equal(label, ref_label)
        seen += 1
    assert seen == 5
    batches = list(
        build_dataset(
            read_tfrecord_source(str(tmp_path / "tfr")),
            "train",
            PipelineConfig(batch_size=2, base_size=14, crop_size=8),
        )
    )
    assert len(batches) == 2 and batches[0][0].shape == (2, 8, 8, 3)
    # Shards partition the data; finite passes are padded with all-ignore blanks to equal lengths.
    tfr = read_tfrecord_source(str(tmp_path / "tfr"))
    originals = sorted(image.tobytes() for image, _ in expected.values())
    for count in (2, 3):
        parts = [
            list(decoded_examples(tfr, shard=(count, i)).as_numpy_iterator()) for i in range(count)
        ]
        assert len({len(p) for p in parts}) == 1
        real = [
            image.tobytes() for part in parts for image, label in part if not np.all(label == 255)
        ]
        assert sorted(real) == originals
    # Repeating over at least `count` files: whole files per shard, and no blanks.
    for i, path in enumerate(tfr.files):
        in_file = sorted(
            parse_example(r)[0].numpy().tobytes() for r in tf.data.TFRecordDataset(path)
        )
        seen = sorted(
            {
                image.tobytes()
                for image, _ in decoded_examples(tfr, repeat=True, shard=(2, i))
                .take(12)
                .as_numpy_iterator()
            }
        )
        assert seen == in_file


def test_refuses_to_overwrite_and_detects_interrupted_conversions(tmp_path):
    layouts.write_folder(str(tmp_path / "src"), np.random.default_rng(1), n=2, with_split=False)
    source = folder_source(str(tmp_path / "src"))
    write_tfrecords(source, str(tmp_path / "tfr"))
    with pytest.raises(FileExistsError, match="already holds"):
        write_tfrecords(source, str(tmp_path / "tfr"))
    os.makedirs(tmp_path / "half")
    with pytest.raises(DataError, match="interrupted conversion"):
        read_tfrecord_source(str(tmp_path / "half"))
    layouts.save_mask(str(tmp_path / "src" / "masks" / "img1.png"), np.full((10, 14), 9))
    with pytest.raises(DataError, match="img1.png"):
        write_tfrecords(folder_source(str(tmp_path / "src")), str(tmp_path / "bad"))
    assert not os.path.exists(tmp_path / "bad" / "dataset.json")
    assert not [f for f in os.listdir(tmp_path / "bad") if ".tmp" in f]


def _converted(tmp_path, n=6, shards=3):
    layouts.write_folder(str(tmp_path / "src"), np.random.default_rng(7), n=n, with_split=False)
    return write_tfrecords(
        folder_source(str(tmp_path / "src")), str(tmp_path / "tfr"), num_shards=shards
    )


def test_empty_or_truncated_shards_are_named_before_reading(tmp_path):
    import json

    converted = _converted(tmp_path)
    meta = json.loads((tmp_path / "tfr" / "dataset.json").read_text())
    assert meta["examples_per_file"] == [2, 2, 2]
    empty, truncated = converted.files[1], converted.files[2]
    data = open(truncated, "rb").read()
    open(truncated, "wb").write(data[: len(data) - 10])
    with pytest.raises(DataError, match=f"{os.path.basename(truncated)} is truncated"):
        read_tfrecord_source(str(tmp_path / "tfr"))
    open(truncated, "wb").write(data)
    open(empty, "wb").close()  # zero bytes: TensorFlow reads it as a shard without examples
    with pytest.raises(
        DataError, match=f"{os.path.basename(empty)} holds 0 examples but dataset.json records 2"
    ):
        read_tfrecord_source(str(tmp_path / "tfr"))
    # A dataset.json written before per-shard counts: an empty shard is still named.
    del meta["examples_per_file"]
    (tmp_path / "tfr" / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=f"{os.path.basename(empty)} is empty"):
        read_tfrecord_source(str(tmp_path / "tfr"))
    os.remove(empty)
    meta["files"].remove(os.path.basename(empty))
    (tmp_path / "tfr" / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="hold 4 examples but it records 6"):
        read_tfrecord_source(str(tmp_path / "tfr"))
    meta["num_examples"] = 4
    (tmp_path / "tfr" / "dataset.json").write_text(json.dumps(meta))
    assert read_tfrecord_source(str(tmp_path / "tfr")).num_examples == 4
    (tmp_path / "tfr" / "dataset.json").write_text("{not json")
    with pytest.raises(DataError, match="dataset.json is not a valid dataset.json"):
        read_tfrecord_source(str(tmp_path / "tfr"))


def test_a_shard_damaged_inside_a_record_is_named_while_reading(tmp_path):
    from enc_tf.data.pipeline import NumpyIterator

    converted = _converted(tmp_path)
    damaged = converted.files[1]
    data = bytearray(open(damaged, "rb").read())
    first_length = int.from_bytes(data[:8], "little")
    data[12 + first_length // 2] ^= (
        0xFF  # inside the first record's payload: only its checksum fails
    )
    open(damaged, "wb").write(bytes(data))
    source = read_tfrecord_source(str(tmp_path / "tfr"))
    with pytest.raises(
        DataError, match=f"TFRecord shard .*{os.path.basename(damaged)} is damaged"
    ) as caught:
        with NumpyIterator(decoded_examples(source), source) as examples:
            list(examples)
    assert caught.value.exit_code == 1 and "\n" not in str(caught.value)


def test_shard_counts_must_be_positive(tmp_path):
    from enc_tf.errors import ConfigError

    layouts.write_folder(str(tmp_path / "src"), np.random.default_rng(8), n=3, with_split=False)
    for bad in (-2, 0):
        with pytest.raises(ConfigError, match=f"positive integer, got {bad}"):
            write_tfrecords(
                folder_source(str(tmp_path / "src")), str(tmp_path / "tfr"), num_shards=bad
            )
    assert not os.path.exists(tmp_path / "tfr")
    assert (
        len(
            write_tfrecords(
                folder_source(str(tmp_path / "src")), str(tmp_path / "tfr"), num_shards=9
            ).files
        )
        == 3
    )
