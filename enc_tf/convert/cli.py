"""`python -m enc_tf.convert` (also `enc-convert`): torch checkpoints in and out.

  pytorch-encoding STATE --out MODEL.keras   the original's EncNet/FCN state_dict
  mmseg CHECKPOINT --out MODEL.keras         an MMSegmentation EncNet checkpoint
  to-torch MODEL --format F --out STATE      the way back: a .keras model or run
                                             directory as a PyTorch-Encoding or
                                             MMSegmentation state_dict (.npz, .pth)

STATE / CHECKPOINT: a `.pth` (needs torch) or a `.npz` of the state_dict's arrays
(an MMSegmentation checkpoint's `meta` may ride along as a JSON string `__meta__`).
"""

import argparse
import json

from enc_tf.artifacts import load_keras_model, read_class_file
from enc_tf.console import check_out_file, command_parser, run_cli
from enc_tf.convert import mmseg, pytorch_encoding
from enc_tf.data.classes import ADE20K, CITYSCAPES, VOC
from enc_tf.errors import ConfigError, EncTfError, ModelFileError
from enc_tf.models.saving import save_model_atomic
from enc_tf.state_dicts import read_checkpoint, write_state_dict

DATASET_CLASSES = {"ade20k": ADE20K, "cityscapes": CITYSCAPES, "voc": VOC}
WAY_BACK = {
    "pytorch-encoding": pytorch_encoding.state_dict_from_model,
    "mmseg": mmseg.state_dict_from_model,
}


def _add_out(parser, what):
    parser.add_argument("--out", required=True, help=f"the {what} to write (atomically)")


def _add_pytorch_encoding(sub):
    pe = sub.add_parser(
        "pytorch-encoding",
        help="convert a PyTorch-Encoding EncNet/FCN state_dict (.npz or .pth) into a .keras model",
    )
    pe.add_argument(
        "state", help="state_dict file: .npz of arrays keyed by torch names, or .pth (needs torch)"
    )
    _add_out(pe, ".keras file")
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
    for flag, what in (
        ("--lateral", "the lateral (JPU-style) connections"),
        ("--aux", "the auxiliary FCN head"),
        ("--se-loss", "the SE head"),
    ):
        pe.add_argument(
            flag,
            action=argparse.BooleanOptionalAction,
            help=f"whether the model has {what} (default: inferred from the weights)",
        )


def _add_mmseg(sub):
    mm = sub.add_parser(
        "mmseg",
        help="convert an MMSegmentation EncNet checkpoint (.pth or .npz) into a .keras model",
    )
    mm.add_argument("checkpoint", help=".pth (needs torch) or .npz of the state_dict")
    _add_out(mm, ".keras file")
    mm.add_argument(
        "--align-corners",
        action=argparse.BooleanOptionalAction,
        help="the config's align_corners (needed when the checkpoint has no stored config)",
    )
    mm.add_argument(
        "--output-stride",
        type=int,
        choices=(8, 16),
        help="the backbone's output stride (default: the stored config's, else 8)",
    )
    names = mm.add_mutually_exclusive_group()
    names.add_argument(
        "--dataset", choices=sorted(DATASET_CLASSES), help="class names and palette of a dataset"
    )
    names.add_argument("--classes", help="class list file (YAML/JSON)")


def _add_to_torch(sub):
    back = sub.add_parser(
        "to-torch",
        help="write a .keras model or run directory as a PyTorch-Encoding or MMSegmentation "
        "state_dict",
    )
    back.add_argument("model", help=".keras file or training run directory")
    back.add_argument(
        "--format",
        required=True,
        choices=sorted(WAY_BACK),
        help="whose state_dict layout to write",
    )
    _add_out(back, "state_dict file, .npz or .pth (needs torch),")


def make_parser():
    parser = command_parser("enc-convert", __doc__)
    sub = parser.add_subparsers(dest="source", required=True)
    _add_pytorch_encoding(sub)
    _add_mmseg(sub)
    _add_to_torch(sub)
    return parser


def _check_keras_out(path):
    check_out_file(path, (".keras",))


def _convert(path, out, kind, build):
    """Reads the checkpoint at `path`, `build(state, meta) -> (model, info)`, writes
    `out` atomically and prints what was inferred; a checkpoint that does not fit is
    one `ModelFileError` naming it and `kind`."""
    state, meta = read_checkpoint(path)
    try:
        model, info = build(state, meta)
    except (ValueError, KeyError, TypeError) as err:
        raise ModelFileError(
            f"{path} is not {kind} that fits these options: {type(err).__name__}: "
            f"{' '.join(str(err).split())}"
        ) from err
    save_model_atomic(model, out)
    print("inferred:", json.dumps(info, sort_keys=True))
    print(f"wrote {out}")


def _from_pytorch_encoding(args):
    _check_keras_out(args.out)
    if args.num_classes is not None and args.num_classes < 1:
        raise ConfigError(f"--num-classes must be a positive integer, got {args.num_classes}.")
    overrides = {
        key: getattr(args, key)
        for key in ("num_classes", "backbone", "lateral", "aux", "se_loss")
        if getattr(args, key) is not None
    }
    _convert(
        args.state,
        args.out,
        "a PyTorch-Encoding EncNet/FCN state_dict",
        lambda state, _: pytorch_encoding.build_from_state(
            state, args.output_stride, source=args.state, **overrides
        ),
    )


def _from_mmseg(args):
    _check_keras_out(args.out)
    classes = None
    if args.dataset:
        classes = DATASET_CLASSES[args.dataset]
    elif args.classes:
        classes = read_class_file(args.classes)
    _convert(
        args.checkpoint,
        args.out,
        "an MMSegmentation EncNet checkpoint",
        lambda state, meta: mmseg.build_from_state(
            state,
            meta,
            source=args.checkpoint,
            align_corners=args.align_corners,
            output_stride=args.output_stride,
            class_names=None if classes is None else list(classes.names),
            palette=None if classes is None else [list(c) for c in classes.palette],
        ),
    )


def _to_torch(args):
    check_out_file(args.out, (".npz", ".pth", ".pt"))
    model = load_keras_model(args.model, fold=False).keras_model
    try:
        state = WAY_BACK[args.format](model, batches_tracked=True)
    except ValueError as err:
        raise ConfigError(f"{args.model} cannot be written as {args.format}: {err}") from err
    meta = mmseg.meta_from_model(model) if args.format == "mmseg" else None
    try:
        write_state_dict(state, args.out, meta)
    except ImportError as err:
        raise EncTfError(str(err)) from err
    print(f"wrote {args.out} ({len(state)} {args.format} keys)")


COMMANDS = {
    "pytorch-encoding": _from_pytorch_encoding,
    "mmseg": _from_mmseg,
    "to-torch": _to_torch,
}


def run(args):
    COMMANDS[args.source](args)


def main(argv=None):
    return run_cli(make_parser(), run, argv)
