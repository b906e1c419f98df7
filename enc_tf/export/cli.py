"""`enc-export MODEL --format saved_model|tflite|onnx ...`: a trained model for serving, phones
or other runtimes.

MODEL is a `.keras` file, a training run directory, a preset name or a URL.

- `--format saved_model` (default) `--base-dir DIR [--name encnet] [--model-version N]`: a
  SavedModel for TensorFlow Serving in `<base-dir>/<name>/<version>/`, taking images of any
  size (raw or encoded); class names and palette travel with it as `assets/classes.json`.
- `--format tflite --out model.tflite [--mode float32|float16|dynamic_int8|int8] [--size 480]`:
  a TFLite file with a fixed input size. `int8` calibrates on training images: the run's
  training data (val-style resize and centre crop to the input size), or the images in
  `--calibration-dir`. `--deploy [mediapipe|uint8]` writes the file an app runs as it is
  (pixels in, class probabilities or a category mask out, metadata with the class names;
  `enc_tf.export.deploy`); without it, the research signature (normalised images in,
  logits out).
- `--format onnx --out model.onnx [--size S] [--opset 17]`: normalised float32 NHWC images of
  any size (or `--size`) in, the `seg` and `se` logits out. Before writing, the ONNX model runs
  in ONNX Runtime on test images and must match Keras to `--tolerance` (relative to the largest
  logit); otherwise nothing is written and the command fails.

An option of another format is refused. `enc-export-tflite` and `enc-export-onnx` are the same
command with `--format tflite` / `--format onnx` as their default.
"""

import argparse
import os
import sys

import numpy as np

from enc_tf.artifacts import export_classes, load_keras_model
from enc_tf.console import (
    DownloadProgress,
    add_precision_option,
    check_out_file,
    command_parser,
    run_cli,
)
from enc_tf.errors import ConfigError, EncTfError
from enc_tf.export.calibration import calibration_images
from enc_tf.export.deploy import (
    DEFAULT_TARGET,
    TARGETS,
    DeploymentRunner,
    convert_deployment,
)
from enc_tf.export.metadata import DEFAULT_AUTHOR, DEFAULT_LICENSE, add_metadata
from enc_tf.export.onnx import (
    DEFAULT_OPSET,
    DEFAULT_TOLERANCE,
    OnnxRunner,
    max_relative_error,
    to_onnx,
    write_onnx,
)
from enc_tf.export.saved_model import DEFAULT_MAX_PIXELS, export_saved_model
from enc_tf.export.tflite import MODES, convert, write_tflite
from enc_tf.files import remove_stale_temporaries
from enc_tf.presets import MODEL_HELP, model_path
from enc_tf.version import __version__

FORMATS = ("saved_model", "tflite", "onnx")
TFLITE_DEFAULT_SIZE = 480
OUT_SUFFIX = {"tflite": ".tflite", "onnx": ".onnx"}


def _load(args):
    return load_keras_model(model_path(args.model, DownloadProgress()))


def export_saved_model_format(args):
    if args.base_dir is None:
        raise ConfigError("--format saved_model needs --base-dir (TF Serving's model base).")
    if args.max_size < 0:
        raise ConfigError(f"--max-size must be >= 0 (0: never downscale), got {args.max_size}.")
    if args.max_pixels < 1:
        raise ConfigError(f"--max-pixels must be a positive integer, got {args.max_pixels}.")
    if args.model_version is not None and args.model_version < 1:
        raise ConfigError(f"--model-version must be a positive integer, got {args.model_version}.")
    remove_stale_temporaries(os.path.join(args.base_dir, args.name))
    loaded = _load(args).with_precision(args.precision)
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


def export_tflite_format(args):
    size = TFLITE_DEFAULT_SIZE if args.size is None else args.size
    if args.num_calibration < 1:
        raise ConfigError(
            f"--num-calibration must be a positive integer, got {args.num_calibration}."
        )
    if not args.deploy:
        for option, default in (("author", DEFAULT_AUTHOR), ("license", DEFAULT_LICENSE)):
            if getattr(args, option) != default:
                raise ConfigError(f"--{option} is an option of --deploy (the metadata).")
    if args.confidences and args.deploy != "uint8":
        raise ConfigError(
            "--confidences is an option of --deploy uint8 (--deploy mediapipe always has them)."
        )
    loaded = _load(args)
    classes = export_classes(loaded, args.classes) if args.deploy else None
    representative = None
    if args.mode == "int8":
        representative = calibration_images(
            loaded, size, args.num_calibration, args.calibration_dir
        )
    kwargs = {"float_scopes": ()} if args.quantize_encoding else {}
    if not args.deploy:
        flatbuffer = convert(loaded.keras_model, args.mode, size, representative, **kwargs)
        write_tflite(flatbuffer, args.out)
        print(
            f"{args.out} ({len(flatbuffer) / 2**20:.1f} MiB, {args.mode}, "
            f"input [1, {size}, {size}, 3])"
        )
        return
    flatbuffer = convert_deployment(
        loaded.keras_model,
        args.mode,
        size,
        representative,
        args.deploy,
        args.confidences,
        **kwargs,
    )
    info = _deployment_info(loaded, classes, args)
    flatbuffer = add_metadata(flatbuffer, classes.names, info)
    report = DeploymentRunner(model_content=flatbuffer).report()
    write_tflite(flatbuffer, args.out)
    shapes = ", ".join(f"{k} {d} {list(s)}" for k, (d, s) in report["outputs"].items())
    line = (
        f"{args.out} ({len(flatbuffer) / 2**20:.1f} MiB, {args.mode}, for {args.deploy}): "
        f"input image {report['input']} [1, {size}, {size}, 3], outputs {shapes}"
    )
    if args.mode == "int8":
        floats = ", ".join(f"{op} x{n}" for op, n in sorted(report["float_ops"].items()))
        line += f"; ops computing in float: {floats or 'none'}"
    print(line)
    if args.deploy != "mediapipe":
        print(
            "MediaPipe's ImageSegmenter feeds float32 tensors and cannot run a uint8-input "
            "file; --deploy mediapipe writes the file it runs."
        )


def _deployment_info(loaded, classes, args):
    """The general metadata of a deployment file."""
    model = loaded.keras_model
    arguments = getattr(model, "arguments", {})
    kind = type(model).__name__
    name = f"{kind}-{arguments['backbone']}" if "backbone" in arguments else kind
    dataset = loaded.run_config.data.dataset if loaded.run_config is not None else None
    trained = f", trained on {dataset}" if dataset else ""
    return {
        "name": name,
        "description": (
            f"{kind} semantic segmentation (Context Encoding for Semantic Segmentation, Zhang "
            f"et al., CVPR 2018) of {len(classes.names)} classes{trained}; {args.mode} TFLite "
            "from enc_tf."
        ),
        "version": f"enc_tf {__version__}",
        "author": args.author,
        "license": args.license,
    }


def export_onnx_format(args):
    loaded = _load(args)
    classes = export_classes(loaded, args.classes)
    proto = to_onnx(loaded.keras_model, classes, args.size, args.opset)
    if args.check:
        height, width = (args.size, args.size) if args.size else (72, 96)
        images = np.random.default_rng(0).normal(size=(2, height, width, 3)).astype(np.float32)
        errors = max_relative_error(loaded.keras_model, OnnxRunner(proto), images)
        report = ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
        if not max(errors.values()) <= args.tolerance:
            raise EncTfError(
                f"ONNX Runtime differs from Keras by {report} "
                f"(relative; --tolerance {args.tolerance:g}); "
                f"{args.out} not written",
                exit_code=1,
            )
        print(
            f"ONNX Runtime vs Keras on {images.shape[0]} images of {height}x{width}: "
            f"max relative error {report}"
        )
    write_onnx(proto, args.out)
    shape = f"[batch, {args.size}, {args.size}, 3]" if args.size else "[batch, height, width, 3]"
    print(f"{args.out} ({proto.ByteSize() / 2**20:.1f} MiB, opset {args.opset}, input {shape})")


EXPORTERS = {
    "saved_model": export_saved_model_format,
    "tflite": export_tflite_format,
    "onnx": export_onnx_format,
}


def _option(group, formats, *names, **kwargs):
    """An option of `formats` only, added to `group`; its owners are noted for `run`."""
    action = group.add_argument(*names, **kwargs)
    action.formats = formats
    return action


def build_parser(prog="enc-export", default_format="saved_model"):
    """The parser of `enc-export` (and of its aliases, which change `--format`'s default)."""
    parser = command_parser(prog, __doc__)
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument("--format", choices=FORMATS, default=default_format, help="what to write")
    parser.add_argument(
        "--out", help="tflite, onnx: the file to write (.tflite or .onnx), written atomically"
    )
    shared = parser.add_argument_group("options of several formats")
    _option(
        shared,
        ("saved_model", "onnx", "tflite"),
        "--classes",
        help="saved_model, onnx, tflite --deploy: class list (YAML/JSON) when the model's run "
        "does not name one",
    )
    _option(
        shared,
        ("tflite", "onnx"),
        "--size",
        type=int,
        help=f"tflite: the fixed input size (default {TFLITE_DEFAULT_SIZE}); onnx: fix the "
        "input to [batch, size, size, 3] (default: any size)",
    )
    serving = parser.add_argument_group("--format saved_model")
    add_precision_option(serving).formats = ("saved_model",)
    _option(serving, ("saved_model",), "--base-dir", help="TF Serving model base directory")
    _option(
        serving,
        ("saved_model",),
        "--name",
        default="encnet",
        help="the model's name: the directory under --base-dir",
    )
    _option(
        serving,
        ("saved_model",),
        "--model-version",
        type=int,
        help="the model version directory to write (TF Serving's <name>/<version>/); "
        "default: one more than the highest existing version",
    )
    _option(
        serving,
        ("saved_model",),
        "--overwrite",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="replace an existing version",
    )
    _option(
        serving,
        ("saved_model",),
        "--max-size",
        type=int,
        default=0,
        help="downscale inputs whose long side exceeds this many pixels (0: never)",
    )
    _option(
        serving,
        ("saved_model",),
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse requests with images of more pixels (height x width; encoded images by "
        "their header, before decoding; 4096 x 4096 by default)",
    )
    tflite = parser.add_argument_group("--format tflite")
    _option(
        tflite,
        ("tflite",),
        "--mode",
        choices=MODES,
        default="float32",
        help="the precision of the weights and ops",
    )
    _option(
        tflite,
        ("tflite",),
        "--calibration-dir",
        help="images for int8 calibration (default: the run's training data)",
    )
    _option(
        tflite,
        ("tflite",),
        "--num-calibration",
        type=int,
        default=64,
        help="training images that calibrate the int8 ranges (int8 mode)",
    )
    _option(
        tflite,
        ("tflite",),
        "--quantize-encoding",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="int8: quantize the Encoding/SE path too (smaller, less accurate; see docs/export.md)",
    )
    _option(
        tflite,
        ("tflite",),
        "--deploy",
        nargs="?",
        const=DEFAULT_TARGET,
        choices=TARGETS,
        help="write the file apps run as it is, with metadata: 'mediapipe' (the default; "
        "MediaPipe's ImageSegmenter and LiteRT) takes float pixel values and returns class "
        "probabilities; 'uint8' takes uint8 pixels and returns a uint8 category mask "
        "(LiteRT apps, integer accelerators)",
    )
    _option(
        tflite,
        ("tflite",),
        "--confidences",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="--deploy uint8: add the class probabilities as a second output",
    )
    _option(
        tflite,
        ("tflite",),
        "--author",
        default=DEFAULT_AUTHOR,
        help="--deploy: the author written into the metadata",
    )
    _option(
        tflite,
        ("tflite",),
        "--license",
        default=DEFAULT_LICENSE,
        help="--deploy: the licence written into the metadata (that of the weights)",
    )
    onnx = parser.add_argument_group("--format onnx")
    _option(onnx, ("onnx",), "--opset", type=int, default=DEFAULT_OPSET, help="the ONNX opset")
    _option(
        onnx,
        ("onnx",),
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="largest accepted ONNX vs Keras difference, relative to the largest logit",
    )
    _option(
        onnx,
        ("onnx",),
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the export in ONNX Runtime and compare it with Keras before writing",
    )
    return parser


def check_arguments(parser, args):
    """Refuses, before any work, an option given for another format, a missing or misnamed
    `--out`, and a size that is not positive."""
    for action in parser._actions:
        formats = getattr(action, "formats", None)
        if formats and args.format not in formats:
            if getattr(args, action.dest) != action.default:
                raise ConfigError(
                    f"{action.option_strings[0]} is an option of --format "
                    f"{' / '.join(formats)}, not of --format {args.format}."
                )
    if args.format == "saved_model":
        if args.out is not None:
            raise ConfigError(
                "--format saved_model writes into --base-dir (TF Serving's layout), not --out."
            )
    elif args.out is None:
        raise ConfigError(f"--format {args.format} needs --out, the file to write.")
    else:
        check_out_file(args.out, (OUT_SUFFIX[args.format],))
    if args.size is not None and args.size < 1:
        raise ConfigError(
            f"--size must be a positive integer (the input's height and width), got {args.size}."
        )


def run(args):
    check_arguments(build_parser(), args)  # the options' owners, whichever name ran
    return EXPORTERS[args.format](args)


def main(argv=None):
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
