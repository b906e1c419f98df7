"""`python -m enc_tf.data` (also `enc-data`): check a dataset, convert it to TFRecords,
or generate ContextShapes."""

import argparse

from enc_tf.console import ProgressBar, command_parser, run_cli
from enc_tf.data import context_shapes
from enc_tf.data.context_shapes import ensure_context_shapes
from enc_tf.data.resolve import DATASETS, resolve_source
from enc_tf.data.sources import LABEL_MAPPINGS
from enc_tf.data.tfrecord import write_tfrecords
from enc_tf.data.validate import check_source, summarize


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _source_args(parser):
    parser.add_argument(
        "--dataset",
        required=True,
        choices=[d for d in DATASETS if d != "tfrecord"],
        help="the dataset's layout",
    )
    parser.add_argument("--root", required=True, help="dataset directory")
    parser.add_argument("--split", default=None, help="split name (train, val, train_aug, ...)")
    parser.add_argument("--classes", default=None, help="folder datasets: class list (YAML/JSON)")
    parser.add_argument(
        "--label-mapping", default=None, choices=LABEL_MAPPINGS, help="folder datasets"
    )


def _source(args, strict=True):
    split = (
        args.split if args.split is not None else (None if args.dataset == "folder" else "train")
    )
    return resolve_source(args.dataset, args.root, split, args.classes, args.label_mapping, strict)


def _run(args):
    if args.command == "context-shapes":
        print(
            ensure_context_shapes(
                args.cache_dir, args.num_train, args.num_val, args.size, args.seed
            )
        )
        return 0
    if args.command == "check":
        source = _source(args, strict=False)  # images without masks are reported with the rest
        problems, counts = check_source(source, ProgressBar("samples", "checking"))
        print(
            f"{source.name} {source.split}: {len(source.samples)} samples, "
            f"{len(problems)} problem(s)"
        )
        for problem in problems:
            print(f"  - {problem}")
        print(summarize(source, counts))
        return 1 if problems else 0
    converted = write_tfrecords(
        _source(args), args.out, args.shards, args.image_format, ProgressBar("examples", "writing")
    )
    print(f"wrote {converted.num_examples} examples in {len(converted.files)} shards to {args.out}")
    return 0


def main(argv=None):
    parser = command_parser("enc-data", __doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="read every sample and report all problems")
    _source_args(check)
    convert = sub.add_parser("to-tfrecord", help="write sharded TFRecords of a checked split")
    _source_args(convert)
    convert.add_argument(
        "--out", required=True, help="the directory to write the shards and their metadata into"
    )
    convert.add_argument(
        "--shards",
        type=_positive_int,
        default=None,
        help="number of shards (default: one per 256 examples)",
    )
    convert.add_argument(
        "--image-format",
        default="png",
        choices=("png", "jpeg"),
        help="how images are stored in the records (masks are always PNG)",
    )
    shapes = sub.add_parser("context-shapes", help="generate (or find) the ContextShapes dataset")
    shapes.add_argument(
        "--cache-dir",
        default=None,
        help="where to write it (default: $ENC_TF_HOME or ~/.cache/enc_tf)",
    )
    shapes.add_argument(
        "--num-train", type=int, default=context_shapes.DEFAULT_TRAIN, help="training images"
    )
    shapes.add_argument(
        "--num-val", type=int, default=context_shapes.DEFAULT_VAL, help="validation images"
    )
    shapes.add_argument(
        "--size",
        type=int,
        default=context_shapes.DEFAULT_SIZE,
        help="side of the square images, in pixels",
    )
    shapes.add_argument("--seed", type=int, default=0, help="the generator's seed")
    return run_cli(parser, _run, argv)
