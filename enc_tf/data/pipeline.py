"""tf.data pipelines from a dataset source to `(image, targets)` batches for `model.fit`."""

import dataclasses
import re

import tensorflow as tf

from enc_tf.contracts.labels import presence_targets
from enc_tf.data.augment import AugmentConfig, eval_transform, train_transform, val_transform
from enc_tf.data.io import DataError, read_pair
from enc_tf.data.sources import SegmentationSource
from enc_tf.data.tfrecord import TFRecordSource, find_damaged_shard, parse_example

MODES = ("train", "val", "eval")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """How examples are transformed and batched.

    Attributes:
        batch_size: global batch size.
        base_size: training scale reference (the long side is scaled to
            `scale_range * base_size`).
        crop_size: training and monitoring crop.
        augment: `AugmentConfig` of the training mode.
        seed: seed of shuffling and augmentation.
    """

    batch_size: int = 16
    base_size: int = 520
    crop_size: int = 480
    augment: AugmentConfig = AugmentConfig()
    seed: int = 0

    def __post_init__(self):
        for key in ("batch_size", "base_size", "crop_size"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be a positive integer, got {getattr(self, key)!r}.")


def _check_shard(shard):
    if shard is None:
        return None
    count, index = (int(v) for v in shard)
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be (count, index) with 0 <= index < count, got {shard!r}.")
    return count, index


def decoded_examples(source, shuffle=False, seed=0, repeat=False, shard=None, start=0):
    """`(image, label)` pairs: `(H, W, 3)` uint8 RGB and `(H, W)` uint8 train ids.

    Folder-style sources are decoded with Pillow (EXIF, palette and 16-bit
    handling, checked label values); TFRecord shards are decoded in the graph.
    `shard=(count, index)` keeps this input pipeline's part only, before any
    decoding: whole TFRecord files when repeating over at least `count` files,
    else every `count`-th example. A finite sharded pass is padded with blank
    examples (label all ignore, so they change no metric) to the same length
    in every shard: workers that ran out of data first would otherwise wait
    forever for the others' collective operations. `start` skips that many
    examples of the (shuffled, repeated) stream before any decoding.
    """
    shard = _check_shard(shard)
    if start < 0 or (start and not repeat):
        raise ValueError(
            f"start must be >= 0 and needs repeat=True, got start={start}, repeat={repeat}."
        )
    examples = _decoded(source, shuffle, seed, repeat, shard, start)
    if shard is None or repeat:
        return examples
    count, index = shard
    total = source.num_examples
    missing = -(-total // count) - len(range(index, total, count))
    blank = (
        tf.zeros((8, 8, 3), tf.uint8),
        tf.fill((8, 8), tf.constant(source.ignore_index, tf.uint8)),
    )
    return (
        examples.concatenate(tf.data.Dataset.from_tensors(blank).repeat(missing))
        if missing
        else examples
    )


def _decoded(source, shuffle, seed, repeat, shard, start):
    if isinstance(source, TFRecordSource):
        files = tf.data.Dataset.from_tensor_slices(list(source.files))
        by_file = shard is not None and repeat and len(source.files) >= shard[0]
        if by_file:
            files = files.shard(*shard)
        if shuffle:
            files = files.shuffle(len(source.files), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            files = files.repeat()
        records = files.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(4, len(source.files)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        if shard is not None and not by_file:
            records = records.shard(*shard)
        if shuffle:
            records = records.shuffle(256, seed=seed, reshuffle_each_iteration=True)
        if start:
            records = records.skip(start)  # raw records: read, not decoded
        return records.map(parse_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if not isinstance(source, SegmentationSource):
        raise TypeError(
            f"Expected a SegmentationSource or TFRecordSource, got {type(source).__name__}."
        )
    images, labels = zip(*source.samples)
    pairs = tf.data.Dataset.from_tensor_slices((list(images), list(labels)))
    if shard is not None:
        pairs = pairs.shard(*shard)
    if shuffle:
        pairs = pairs.shuffle(len(source.samples), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        pairs = pairs.repeat()
    if start:
        pairs = pairs.skip(start)  # file names: nothing is read

    def load(image_path, label_path):
        return read_pair(
            image_path.decode(), label_path.decode(), source.lookup, source.ignore_index
        )

    def decode(image_path, label_path):
        image, label = tf.numpy_function(
            load, [image_path, label_path], [tf.uint8, tf.uint8], stateful=False
        )
        return tf.ensure_shape(image, (None, None, 3)), tf.ensure_shape(label, (None, None))

    return pairs.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _targets(label, num_classes, ignore_index, aux, se_loss):
    targets = {"seg": label}
    if aux:
        targets["aux"] = label
    if se_loss:
        targets["se"] = presence_targets(label[None], num_classes, ignore_index)[0]
    return targets


def build_dataset(
    source,
    mode="train",
    config=PipelineConfig(),
    aux=True,
    se_loss=True,
    repeat=False,
    shard=None,
    start=0,
):
    """Batches of `(images, targets)` for `model.fit` / `model.evaluate`.

    Args:
        source: a `SegmentationSource` or `TFRecordSource`.
        mode: `train` (shuffle + the paper's augmentation, fixed crops),
            `val` (the original's resize + centre crop, for monitoring) or
            `eval` (full images, padded per batch: image 0, label ignore).
        config: `PipelineConfig`.
        aux, se_loss: which targets the model has; `targets` holds `seg`
            (int32 labels), `aux` (the same labels) and `se` (float32 class
            presence of the crop the model sees, computed after augmentation).
        repeat: repeat forever (set `steps_per_epoch` in `fit`).
        shard: `(count, index)`: this input pipeline's share of the data
            (multi-worker training; see `decoded_examples`). The pipeline is then
            not auto-sharded again by tf.distribute.
        start: with `repeat`, the number of examples (of this pipeline) already
            consumed: the stream continues exactly where an uninterrupted one
            would be (same order, same augmentation), skipping them undecoded.

    Returns:
        A `tf.data.Dataset`; images are float32 normalised `(B, H, W, 3)`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    if config.crop_size > config.base_size * config.augment.scale_range[1] and mode == "train":
        raise ValueError(f"crop_size {config.crop_size} is larger than any scaled image can be.")
    num_classes, ignore = source.classes.num_classes, source.ignore_index
    training = mode == "train"
    examples = decoded_examples(
        source, shuffle=training, seed=config.seed, repeat=repeat, shard=shard, start=start
    )
    if training:
        seeds = tf.data.Dataset.random(seed=config.seed).batch(2).skip(start)
        examples = tf.data.Dataset.zip((examples, seeds)).map(
            lambda pair, seed: train_transform(
                pair[0], pair[1], seed, config.base_size, config.crop_size, config.augment, ignore
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    elif mode == "val":
        examples = examples.map(
            lambda image, label: val_transform(image, label, config.crop_size),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    else:
        examples = examples.map(
            eval_transform, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    examples = examples.map(
        lambda image, label: (image, _targets(label, num_classes, ignore, aux, se_loss)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if mode == "eval":
        padding = (
            tf.constant(0.0),
            {
                k: tf.constant(ignore if k != "se" else 0, v.dtype)
                for k, v in examples.element_spec[1].items()
            },
        )
        batches = examples.padded_batch(config.batch_size, padding_values=padding)
    else:
        batches = examples.batch(config.batch_size, drop_remainder=training)
    options = tf.data.Options()
    options.deterministic = True
    if shard is not None:
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    elif not isinstance(source, TFRecordSource):
        # A list of file names has no files to shard by: shard the examples.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
    return batches.prefetch(tf.data.AUTOTUNE).with_options(options)


# How TensorFlow reports a Python exception raised inside `tf.numpy_function`:
# "DataError: <message>".
_RAISED_DATA_ERROR = re.compile(r"\bDataError: ([^\n]+)")


def pipeline_data_error(err, source=None):
    """The `DataError` behind a TensorFlow error raised while iterating a pipeline, or None.

    A `DataError` raised while decoding a sample in tf.data's threads reaches the
    caller as a `tf.errors.OpError` that quotes it with a traceback; a damaged
    TFRecord shard raises a `DataLossError` that names no file (the shards of
    `source` are then re-read one by one to find it).

    Args:
        err: a `tf.errors.OpError`.
        source: the `SegmentationSource` or `TFRecordSource` being read.

    Returns:
        A one-line `DataError` (exit status 1: the work had started), or None
        when `err` is not a data error.
    """
    found = _RAISED_DATA_ERROR.search(err.message or "")
    if found:
        return DataError(found.group(1).strip(), exit_code=1)
    if isinstance(err, tf.errors.DataLossError):
        files = source.files if isinstance(source, TFRecordSource) else ()
        damaged = find_damaged_shard(files)
        if damaged is not None:
            return damaged
        return DataError(
            f"A TFRecord shard is damaged: {err.message.splitlines()[0].strip()}", exit_code=1
        )
    return None


class NumpyIterator:
    """Iterates a `tf.data.Dataset` as NumPy structures, and closes cleanly on errors.

    Use it as a context manager (`with NumpyIterator(dataset, source) as examples:`).
    A data error (see `pipeline_data_error`) is raised as a one-line `DataError`.
    On any error, and on leaving the `with` block, the TensorFlow iterator is
    released first, which cancels and joins tf.data's worker threads: an
    interpreter that exits while they still run Python decoders can hang or
    abort ("terminate called without an active exception").
    """

    def __init__(self, dataset, source=None):
        self._iterator = iter(dataset)
        self._source = source

    def __iter__(self):
        return self

    def __next__(self):
        if self._iterator is None:
            raise StopIteration
        try:
            element = next(self._iterator)
        except StopIteration:
            self.close()
            raise
        except tf.errors.OpError as err:
            # The traceback's frames hold the TF iterator: drop it, or the iterator
            # outlives close().
            failure = pipeline_data_error(err, self._source) or err.with_traceback(None)
        else:
            return tf.nest.map_structure(lambda tensor: tensor.numpy(), element)
        self.close()
        raise failure

    def close(self):
        """Releases the TensorFlow iterator (stopping its threads); idempotent."""
        self._iterator = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False
