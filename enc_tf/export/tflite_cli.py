"""`enc-export-tflite MODEL --out model.tflite
[--mode float32|float16|dynamic_int8|int8] [--size 480]`.

MODEL is a `.keras` file, a training run directory, a preset name or a URL. `int8`
calibrates on training images: the run's training data (val-style resize + centre crop
to the input size), or the images in `--calibration-dir`.
"""

import os
import sys

import tensorflow as tf

from enc_tf.artifacts import load_keras_model
from enc_tf.console import DownloadProgress, check_out_file, command_parser, run_cli
from enc_tf.contracts.images import normalize
from enc_tf.data import PipelineConfig, build_dataset, sources_from_config
from enc_tf.data.io import IMAGE_EXTENSIONS, read_image
from enc_tf.errors import ConfigError, DataError
from enc_tf.export.tflite import MODES, convert, write_tflite
from enc_tf.presets import MODEL_HELP, model_path


def calibration_images(loaded, size, count, directory=None):
    """A callable yielding up to `count` normalised `(size, size, 3)` training images."""
    if directory:
        if not os.path.isdir(directory):
            raise DataError(f"--calibration-dir {directory} is not a directory.")
        files = sorted(
            os.path.join(directory, f)
            for f in os.listdir(directory)
            if f.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not files:
            raise DataError(
                f"No images ({', '.join(IMAGE_EXTENSIONS)}) in --calibration-dir {directory}."
            )

        def from_files():
            for path in files[:count]:
                image = tf.image.resize(read_image(path)[None], (size, size), antialias=True)[0]
                yield normalize(image).numpy()

        return from_files
    if loaded.run_config is None:
        raise ConfigError(
            "--mode int8 needs calibration images: give a run directory or --calibration-dir."
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


def run(args):
    if args.size < 1:
        raise ConfigError(
            f"--size must be a positive integer (the input's height and width), got {args.size}."
        )
    if args.num_calibration < 1:
        raise ConfigError(
            f"--num-calibration must be a positive integer, got {args.num_calibration}."
        )
    check_out_file(args.out, (".tflite",))
    loaded = load_keras_model(model_path(args.model, DownloadProgress()))
    representative = None
    if args.mode == "int8":
        representative = calibration_images(
            loaded, args.size, args.num_calibration, args.calibration_dir
        )
    kwargs = {"float_scopes": ()} if args.quantize_encoding else {}
    flatbuffer = convert(loaded.keras_model, args.mode, args.size, representative, **kwargs)
    write_tflite(flatbuffer, args.out)
    print(
        f"{args.out} ({len(flatbuffer) / 2**20:.1f} MiB, {args.mode}, "
        f"input [1, {args.size}, {args.size}, 3])"
    )


def main(argv=None):
    parser = command_parser("enc-export-tflite", __doc__)
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument("--out", required=True, help="output .tflite file")
    parser.add_argument(
        "--mode", choices=MODES, default="float32", help="the precision of the weights and ops"
    )
    parser.add_argument("--size", type=int, default=480, help="fixed input size")
    parser.add_argument(
        "--calibration-dir", help="images for int8 calibration (default: the run's training data)"
    )
    parser.add_argument(
        "--num-calibration",
        type=int,
        default=64,
        help="training images that calibrate the int8 ranges (int8 mode)",
    )
    parser.add_argument(
        "--quantize-encoding",
        action="store_true",
        help="int8: quantize the Encoding/SE path too (smaller, less accurate; see docs/export.md)",
    )
    return run_cli(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
