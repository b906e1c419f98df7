"""The images that calibrate int8 ranges: a folder's images or a run's training data."""

import os

import tensorflow as tf

from enc_tf.data import PipelineConfig, build_dataset, sources_from_config
from enc_tf.data.augment import val_transform
from enc_tf.data.io import list_images, read_image
from enc_tf.errors import ConfigError, DataError


def calibration_images(loaded, size, count, directory=None):
    """A callable yielding up to `count` normalised `(size, size, 3)` training images: those
    in `directory`, else the run's training data of `loaded`; both through the validation
    transform (short side to `size`, centre crop), the one resize rule of the data."""
    if directory:
        if not os.path.isdir(directory):
            raise DataError(f"--calibration-dir {directory} is not a directory.")
        files = list_images(directory, "--calibration-dir")

        def from_files():
            for path in files[:count]:
                image = read_image(path)
                no_label = tf.zeros(tf.shape(image)[:2], tf.int32)
                yield val_transform(image, no_label, size)[0].numpy()

        return from_files
    if loaded.run_config is None:
        raise ConfigError(
            "int8 export needs calibration images: give a run directory or --calibration-dir."
        )
    return training_images(loaded.run_config.data, size, count)


def training_images(data_config, size, count):
    """A callable yielding up to `count` normalised training images of the run's data
    (val-style resize and centre crop to `size x size`)."""
    source = sources_from_config(data_config)[0]
    data = build_dataset(
        source, "val", PipelineConfig(batch_size=1, base_size=size, crop_size=size), False, False
    )
    return lambda: (images[0].numpy() for images, _ in data.take(count))
