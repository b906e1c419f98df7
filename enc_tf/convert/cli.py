"""`python -m enc_tf.convert pytorch-encoding STATE --out MODEL.keras` (also `enc-convert`)."""

import argparse
import json
import os
import pickle
import zipfile

from enc_tf.console import command_parser, run_cli
from enc_tf.convert.pytorch_encoding import build_from_state, read_state_dict
from enc_tf.errors import ConfigError, EncTfError, ModelFileError
from enc_tf.files import remove_stale_temporaries
from enc_tf.models.saving import save_model_atomic


def _bool(text):
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value in ("true", "1", "yes")


def make_parser():
    parser = command_parser("python -m enc_tf.convert", __doc__)
    sub = parser.add_subparsers(dest="source", required=True)
    pe = sub.add_parser(
        "pytorch-encoding",
        help="convert a PyTorch-Encoding EncNet/FCN state_dict (.npz or .pth) into a .keras model",
    )
    pe.add_argument(
        "state", help="state_dict file: .npz of arrays keyed by torch names, or .pth (needs torch)"
    )
    pe.add_argument("--out", required=True, help="output .keras path (written atomically)")
    pe.add_argument(
        "--output-stride",
        type=int,
        default=8,
        choices=(8, 16),
        help="not stored in weights (default 8)",
    )
    pe.add_argument("--num-classes", type=int, help="override the inferred class count")
    pe.add_argument(
        "--backbone", choices=("resnet50s", "resnet101s"), help="override the inferred backbone"
    )
    pe.add_argument("--lateral", type=_bool, help="override: true/false")
    pe.add_argument("--aux", type=_bool, help="override: true/false")
    pe.add_argument("--se-loss", type=_bool, help="override: true/false")
    return parser


def read_checkpoint(path):
    """`read_state_dict`, with every way a checkpoint file can be unusable as a
    `ModelFileError` naming it."""
    if not os.path.isfile(path):
        raise ModelFileError(f"Checkpoint not found: {path}")
    if os.path.getsize(path) == 0:
        raise ModelFileError(f"Checkpoint {path} is empty (0 bytes): the file is truncated.")
    try:
        return read_state_dict(path)
    except ImportError as err:
        raise EncTfError(str(err)) from err
    # np.load of a damaged .npz raises BadZipFile or EOFError, torch.load of a damaged .pth
    # RuntimeError or UnpicklingError; none of them names the file.
    except (
        ValueError,
        OSError,
        EOFError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
        RuntimeError,
    ) as err:
        raise ModelFileError(
            f"Cannot read the checkpoint {path}: the file is corrupt or truncated "
            f"({type(err).__name__}: {' '.join(str(err).split())})"
        ) from err


def run(args):
    if not args.out.endswith(".keras"):
        raise ConfigError(f"--out must end in .keras, got {args.out!r}.")
    if args.num_classes is not None and args.num_classes < 1:
        raise ConfigError(f"--num-classes must be a positive integer, got {args.num_classes}.")
    overrides = {
        key: getattr(args, key)
        for key in ("num_classes", "backbone", "lateral", "aux", "se_loss")
        if getattr(args, key) is not None
    }
    remove_stale_temporaries(os.path.dirname(os.path.abspath(args.out)))
    state = read_checkpoint(args.state)
    try:
        model, config = build_from_state(state, args.output_stride, source=args.state, **overrides)
    except (ValueError, KeyError, TypeError) as err:
        raise ModelFileError(
            f"{args.state} is not a PyTorch-Encoding EncNet/FCN state_dict that fits "
            f"these options: {type(err).__name__}: {err}"
        ) from err
    save_model_atomic(model, args.out)
    print("inferred:", json.dumps(config, sort_keys=True))
    print(f"wrote {args.out}")


def main(argv=None):
    return run_cli(make_parser(), run, argv)
