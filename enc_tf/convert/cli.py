"""`python -m enc_tf.convert pytorch-encoding STATE --out MODEL.keras` (also `enc-convert`)."""

import argparse
import json
import sys

from enc_tf.convert.pytorch_encoding import convert_checkpoint


def _bool(text):
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value in ("true", "1", "yes")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m enc_tf.convert", description=__doc__)
    sub = parser.add_subparsers(dest="source", required=True)
    pe = sub.add_parser(
        "pytorch-encoding",
        help="convert a PyTorch-Encoding EncNet/FCN state_dict (.npz or .pth) into a .keras model",
    )
    pe.add_argument("state", help="state_dict file: .npz of arrays keyed by torch names, or .pth (needs torch)")
    pe.add_argument("--out", required=True, help="output .keras path (written atomically)")
    pe.add_argument("--output-stride", type=int, default=8, choices=(8, 16), help="not stored in weights (default 8)")
    pe.add_argument("--num-classes", type=int, help="override the inferred class count")
    pe.add_argument("--backbone", choices=("resnet50s", "resnet101s"), help="override the inferred backbone")
    pe.add_argument("--lateral", type=_bool, help="override: true/false")
    pe.add_argument("--aux", type=_bool, help="override: true/false")
    pe.add_argument("--se-loss", type=_bool, help="override: true/false")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    overrides = {
        key: getattr(args, key)
        for key in ("num_classes", "backbone", "lateral", "aux", "se_loss")
        if getattr(args, key) is not None
    }
    try:
        config = convert_checkpoint(args.state, args.out, args.output_stride, **overrides)
    except (OSError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("inferred:", json.dumps(config, sort_keys=True))
    print(f"wrote {args.out}")
    return 0
