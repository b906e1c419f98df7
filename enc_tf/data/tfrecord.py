"""Sharded TFRecords of checked, decoded examples, and reading them back.

Each record holds the image (PNG by default: lossless; JPEG optional) and the
label map already mapped to train ids (PNG). A `dataset.json` beside the shards
records the classes, the ignore value and the example count of every shard; it
is written last, so a directory without it is an interrupted conversion.
Reading checks each shard's count against its record headers (a cheap walk
that reads no payload), so an empty or truncated shard is named before any
work starts; a shard damaged inside a record is named when reading hits it
(`find_damaged_shard`).
"""

import dataclasses
import io as _io
import json
import logging
import math
import os
import re
import struct

import tensorflow as tf
from PIL import Image

from enc_tf.data.classes import ClassInfo, make_class_info
from enc_tf.data.io import DataError, read_pair
from enc_tf.errors import ConfigError
from enc_tf.files import atomic_write, remove_stale_temporaries, write_text_atomic

logger = logging.getLogger(__name__)
METADATA = "dataset.json"
FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "label/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/filename": tf.io.FixedLenFeature([], tf.string),
}


@dataclasses.dataclass(frozen=True, eq=False)
class TFRecordSource:
    """A converted split: shard files plus what the pipeline needs to know."""

    name: str
    split: str
    files: tuple
    classes: ClassInfo
    ignore_index: int
    num_examples: int

    @property
    def num_classes(self):
        return self.classes.num_classes


def _encode(array, image_format):
    buffer = _io.BytesIO()
    if image_format == "jpeg":
        Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    else:
        Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _example(image, label, filename, image_format):
    feature = {
        "image/encoded": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[_encode(image, image_format)])
        ),
        "label/encoded": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[_encode(label, "png")])
        ),
        "image/filename": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[filename.encode()])
        ),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_tfrecords(source, out_dir, num_shards=None, image_format="png", progress=None):
    """Converts a `SegmentationSource` into `out_dir/<split>-00000-of-00008.tfrecord` shards.

    Every sample is read and checked first (errors name the file); shards are
    written to temporary names and renamed when complete.

    Args:
        source: a `SegmentationSource`.
        out_dir: output directory (created); must not already hold a conversion.
        num_shards: number of shards (a positive integer, at most one per
            example); default one per 256 examples.
        image_format: `png` (lossless) or `jpeg` (quality 95, smaller).
        progress: called as `progress(done, total)` after each example written.

    Returns:
        The `TFRecordSource` of the written files.
    """
    if image_format not in ("png", "jpeg"):
        raise ConfigError(f"image_format must be 'png' or 'jpeg', got {image_format!r}.")
    if num_shards is not None and (
        isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1
    ):
        raise ConfigError(f"The number of shards must be a positive integer, got {num_shards!r}.")
    if os.path.exists(os.path.join(out_dir, METADATA)):
        raise FileExistsError(
            f"{out_dir} already holds a converted dataset ({METADATA}); choose another directory."
        )
    os.makedirs(out_dir, exist_ok=True)
    remove_stale_temporaries(out_dir)
    n = len(source.samples)
    num_shards = min(num_shards or max(1, math.ceil(n / 256)), n)
    files, counts, done = [], [], [0]
    for shard in range(num_shards):
        samples = source.samples[shard::num_shards]

        def write(tmp, samples=samples):
            with tf.io.TFRecordWriter(tmp) as writer:
                for image_path, label_path in samples:
                    image, label = read_pair(
                        image_path, label_path, source.lookup, source.ignore_index
                    )
                    writer.write(_example(image, label, os.path.basename(image_path), image_format))
                    done[0] += 1
                    if progress is not None:
                        progress(done[0], n)

        name = f"{source.split}-{shard:05d}-of-{num_shards:05d}.tfrecord"
        files.append(atomic_write(os.path.join(out_dir, name), write))
        counts.append(len(samples))
    metadata = {
        "name": source.name,
        "split": source.split,
        "files": [os.path.basename(f) for f in files],
        "examples_per_file": counts,
        "classes": source.classes.to_dict(),
        "ignore_index": source.ignore_index,
        "num_examples": n,
        "image_format": image_format,
    }
    write_text_atomic(json.dumps(metadata, indent=1), os.path.join(out_dir, METADATA))
    logger.info("Wrote %d examples in %d shards to %s", n, num_shards, out_dir)
    return read_tfrecord_source(out_dir)


def count_records(path):
    """The number of records in a TFRecord file, from its length headers (no payload is read).

    Raises:
        DataError: naming the file, when its last record runs past the end (truncated).
    """
    size = os.path.getsize(path)
    count = position = 0
    with open(path, "rb") as f:
        while position < size:
            f.seek(position)
            header = f.read(8)
            end = (
                position + 8 + 4 + struct.unpack("<Q", header)[0] + 4
                if len(header) == 8
                else size + 1
            )
            if end > size:
                raise DataError(
                    f"TFRecord shard {path} is truncated: record {count + 1} runs past its end "
                    f"({size} bytes); "
                    "convert the dataset again."
                )
            count, position = count + 1, end
    return count


def find_damaged_shard(files):
    """Reads each shard alone and returns a `DataError` naming the first damaged one, or None.

    TensorFlow's `DataLossError` ("corrupted record at 1028") names no file.
    """
    for path in files:
        try:
            tf.data.TFRecordDataset(path).reduce(0, lambda n, _: n + 1)
        except tf.errors.DataLossError as err:
            # Drop TensorFlow's "{{function_node ...}}" prefix and "[Op:...]" suffix.
            reason = re.sub(r"\{\{[^}]*\}\}|\[Op:.*", "", err.message.splitlines()[0]).strip()
            return DataError(
                f"TFRecord shard {path} is damaged ({reason}); convert the dataset again.",
                exit_code=1,
            )
    return None


def _check_counts(path, files, meta):
    """Checks every shard's record count against `dataset.json` (names the shard that differs).

    `dataset.json` files written before per-shard counts were recorded give only the
    total: then an empty shard, or a total that differs, is reported.
    """
    actual = [count_records(f) for f in files]
    expected = meta.get("examples_per_file")
    if expected is None:
        empty = [f for f, count in zip(files, actual) if count == 0]
        if empty:
            raise DataError(f"TFRecord shard {empty[0]} is empty; convert the dataset again.")
        expected = [None] * len(files)
        if sum(actual) != int(meta["num_examples"]):
            raise DataError(
                f"The shards listed in {path} hold {sum(actual)} examples but it records "
                f"{meta['num_examples']}; "
                "convert the dataset again."
            )
    if len(expected) != len(files):
        raise DataError(f"{path} lists {len(files)} shards but {len(expected)} example counts.")
    for shard, want, got in zip(files, expected, actual):
        if want is not None and got != int(want):
            raise DataError(
                f"TFRecord shard {shard} holds {got} examples but {METADATA} records {want}; "
                "the shard is empty or damaged: convert the dataset again."
            )


def read_tfrecord_source(directory):
    """The `TFRecordSource` of a directory written by `write_tfrecords`.

    Raises:
        DataError: no `dataset.json`, or a shard missing, empty or truncated (named).
    """
    path = os.path.join(directory, METADATA)
    if not os.path.isfile(path):
        raise DataError(
            f"No {METADATA} in {directory}: not a converted dataset, or an interrupted conversion."
        )
    try:
        with open(path) as f:
            meta = json.load(f)
        files = tuple(os.path.join(directory, name) for name in meta["files"])
        classes = make_class_info(meta["classes"]["names"], meta["classes"]["palette"])
        ignore_index, num_examples = int(meta["ignore_index"]), int(meta["num_examples"])
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(
            f"{path} is not a valid {METADATA} ({type(err).__name__}: {err}); "
            "convert the dataset again."
        ) from err
    if not files:
        raise DataError(f"{path} lists no shards; convert the dataset again.")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise DataError(f"Shards listed in {path} are missing: {missing[:5]}")
    _check_counts(path, files, meta)
    return TFRecordSource(meta["name"], meta["split"], files, classes, ignore_index, num_examples)


def parse_example(serialized):
    """A serialized record -> `(image (H, W, 3) uint8, label (H, W) uint8)`."""
    features = tf.io.parse_single_example(serialized, FEATURES)
    image = tf.io.decode_image(features["image/encoded"], channels=3, expand_animations=False)
    label = tf.io.decode_png(features["label/encoded"], channels=1)[..., 0]
    return tf.ensure_shape(image, (None, None, 3)), tf.ensure_shape(label, (None, None))
