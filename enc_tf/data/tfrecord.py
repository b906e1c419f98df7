"""Sharded TFRecords of checked, decoded examples, and reading them back.

Each record holds the image (PNG by default: lossless; JPEG optional) and the
label map already mapped to train ids (PNG). A `dataset.json` beside the shards
records the classes, the ignore value and the example count; it is written
last, so a directory without it is an interrupted conversion.
"""

import dataclasses
import io as _io
import json
import logging
import math
import os
import tempfile

import tensorflow as tf
from PIL import Image

from enc_tf.data.classes import ClassInfo, make_class_info
from enc_tf.data.io import DataError, read_pair

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
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[_encode(image, image_format)])),
        "label/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[_encode(label, "png")])),
        "image/filename": tf.train.Feature(bytes_list=tf.train.BytesList(value=[filename.encode()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_tfrecords(source, out_dir, num_shards=None, image_format="png"):
    """Converts a `SegmentationSource` into `out_dir/<split>-00000-of-00008.tfrecord` shards.

    Every sample is read and checked first (errors name the file); shards are
    written to temporary names and renamed when complete.

    Args:
        source: a `SegmentationSource`.
        out_dir: output directory (created); must not already hold a conversion.
        num_shards: number of shards; default one per 256 examples (at least 1).
        image_format: `png` (lossless) or `jpeg` (quality 95, smaller).

    Returns:
        The `TFRecordSource` of the written files.
    """
    if image_format not in ("png", "jpeg"):
        raise ValueError(f"image_format must be 'png' or 'jpeg', got {image_format!r}.")
    os.makedirs(out_dir, exist_ok=True)
    if os.path.exists(os.path.join(out_dir, METADATA)):
        raise FileExistsError(f"{out_dir} already holds a converted dataset ({METADATA}); choose another directory.")
    n = len(source.samples)
    num_shards = num_shards or max(1, math.ceil(n / 256))
    num_shards = min(num_shards, n)
    files = []
    for shard in range(num_shards):
        final = os.path.join(out_dir, f"{source.split}-{shard:05d}-of-{num_shards:05d}.tfrecord")
        fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=out_dir)
        os.close(fd)
        try:
            with tf.io.TFRecordWriter(tmp) as writer:
                for image_path, label_path in source.samples[shard::num_shards]:
                    image, label = read_pair(image_path, label_path, source.lookup, source.ignore_index)
                    writer.write(_example(image, label, os.path.basename(image_path), image_format))
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        files.append(final)
    metadata = {
        "name": source.name, "split": source.split, "files": [os.path.basename(f) for f in files],
        "classes": source.classes.to_dict(), "ignore_index": source.ignore_index, "num_examples": n,
        "image_format": image_format,
    }
    with open(os.path.join(out_dir, METADATA + ".tmp"), "w") as f:
        json.dump(metadata, f, indent=1)
    os.replace(os.path.join(out_dir, METADATA + ".tmp"), os.path.join(out_dir, METADATA))
    logger.info("Wrote %d examples in %d shards to %s", n, num_shards, out_dir)
    return read_tfrecord_source(out_dir)


def read_tfrecord_source(directory):
    """The `TFRecordSource` of a directory written by `write_tfrecords`."""
    path = os.path.join(directory, METADATA)
    if not os.path.isfile(path):
        raise DataError(f"No {METADATA} in {directory}: not a converted dataset, or an interrupted conversion.")
    with open(path) as f:
        meta = json.load(f)
    files = tuple(os.path.join(directory, name) for name in meta["files"])
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise DataError(f"Shards listed in {path} are missing: {missing[:5]}")
    classes = make_class_info(meta["classes"]["names"], meta["classes"]["palette"])
    return TFRecordSource(meta["name"], meta["split"], files, classes, int(meta["ignore_index"]), int(meta["num_examples"]))


def parse_example(serialized):
    """A serialized record -> `(image (H, W, 3) uint8, label (H, W) uint8)`."""
    features = tf.io.parse_single_example(serialized, FEATURES)
    image = tf.io.decode_image(features["image/encoded"], channels=3, expand_animations=False)
    label = tf.io.decode_png(features["label/encoded"], channels=1)[..., 0]
    return tf.ensure_shape(image, (None, None, 3)), tf.ensure_shape(label, (None, None))
