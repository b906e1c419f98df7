"""`enc-export MODEL --base-dir DIR [--name encnet] [--version N] [--overwrite]`:
a SavedModel for TensorFlow Serving in `<base-dir>/<name>/<version>/`.

MODEL is a `.keras` file, a training run directory, a preset name or a URL. Class
names and palette come from the model, the run's dataset or `--classes`, and travel
with the model as `assets/classes.json`.
"""

import os
import sys

from enc_tf.artifacts import export_classes, load_keras_model
from enc_tf.console import DownloadProgress, command_parser, run_cli
from enc_tf.errors import ConfigError
from enc_tf.export.saved_model import DEFAULT_MAX_PIXELS, export_saved_model
from enc_tf.files import remove_stale_temporaries
from enc_tf.models.precision import add_precision_option
from enc_tf.presets import MODEL_HELP, model_path


def run(args):
    if args.max_size < 0:
        raise ConfigError(f"--max-size must be >= 0 (0: never downscale), got {args.max_size}.")
    if args.max_pixels < 1:
        raise ConfigError(f"--max-pixels must be a positive integer, got {args.max_pixels}.")
    if args.model_version is not None and args.model_version < 1:
        raise ConfigError(f"--model-version must be a positive integer, got {args.model_version}.")
    remove_stale_temporaries(os.path.join(args.base_dir, args.name))
    loaded = load_keras_model(model_path(args.model, DownloadProgress())).with_precision(
        args.precision
    )
    classes = export_classes(loaded, args.classes)
    try:
        path = export_saved_model(
            loaded.keras_model,
            classes,
            args.base_dir,
            args.name,
            args.model_version,
            args.overwrite,
            max_size=args.max_size or None,
            max_pixels=args.max_pixels,
        )
    except FileExistsError as err:
        raise ConfigError(str(err)) from err
    print(path)


def main(argv=None):
    parser = command_parser("enc-export", __doc__)
    add_precision_option(parser)
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument("--base-dir", required=True, help="TF Serving model base directory")
    parser.add_argument(
        "--name", default="encnet", help="the model's name: the directory under --base-dir"
    )
    parser.add_argument(
        "--model-version",
        type=int,
        help="the model version directory to write (TF Serving's <name>/<version>/); "
        "default: one more than the highest existing version",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument(
        "--classes", help="class list (YAML/JSON) when the model's run does not name one"
    )
    parser.add_argument(
        "--max-size", type=int, default=0, help="downscale inputs whose long side exceeds this"
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse requests with images of more pixels (height x width; encoded images by "
        f"their header, before decoding) (default {DEFAULT_MAX_PIXELS}, 4096 x 4096)",
    )
    return run_cli(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
