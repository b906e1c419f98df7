"""`enc-export-onnx MODEL --out model.onnx [--size S] [--opset 17]`: an ONNX model.

MODEL is a `.keras` file, a training run directory, a preset name or a URL. The input is normalised
float32 NHWC images of any size (or `--size`); the outputs are the `seg` and `se`
logits. Before writing, the ONNX model runs in ONNX Runtime on test images and must
match Keras to `--tolerance` (relative to the largest logit); otherwise nothing is
written and the command fails.
"""

import sys

import numpy as np

from enc_tf.artifacts import export_classes, load_keras_model
from enc_tf.console import DownloadProgress, check_out_file, command_parser, run_cli
from enc_tf.errors import ConfigError, EncTfError
from enc_tf.export.onnx import (
    DEFAULT_OPSET,
    DEFAULT_TOLERANCE,
    OnnxRunner,
    max_relative_error,
    to_onnx,
    write_onnx,
)
from enc_tf.presets import MODEL_HELP, model_path


def run(args):
    check_out_file(args.out, (".onnx",))
    if args.size is not None and args.size < 1:
        raise ConfigError(f"--size must be a positive integer, got {args.size}.")
    loaded = load_keras_model(model_path(args.model, DownloadProgress()))
    classes = export_classes(loaded, args.classes)
    proto = to_onnx(loaded.keras_model, classes, args.size, args.opset)
    if not args.no_check:
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


def main(argv=None):
    parser = command_parser("enc-export-onnx", __doc__)
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument("--out", required=True, help="output .onnx file")
    parser.add_argument(
        "--size", type=int, help="fix the input to [batch, size, size, 3] (default: any size)"
    )
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="the ONNX opset to write")
    parser.add_argument(
        "--classes", help="class list (YAML/JSON) when the model's run does not name one"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="largest accepted ONNX vs Keras difference, relative to the largest logit",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime check")
    return run_cli(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
