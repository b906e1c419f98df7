"""`enc-eval MODEL [options]`: the paper's evaluation protocol on a dataset.

MODEL is a `.keras` file, a training run directory (its config names the
validation data) or a SavedModel from export/to_saved_model.py. Prints the per-class
IoU table and writes evaluation.json, confusion_matrix.npy and confusion_matrix.png.
Under TF_CONFIG (several workers) each worker evaluates its shard and the
confusion matrices are summed across workers.
"""

import sys

from enc_tf.artifacts import check_classes, load_model
from enc_tf.console import command_parser, run_cli
from enc_tf.data import PipelineConfig, build_dataset, resolve_source, sources_from_config
from enc_tf.data.pipeline import NumpyIterator
from enc_tf.data.sources import LABEL_MAPPINGS
from enc_tf.distribute import make_strategy, tf_config_workers, worker_role
from enc_tf.errors import ConfigError
from enc_tf.evaluation.multi_scale import evaluate_multi_scale
from enc_tf.evaluation.report import write_report
from enc_tf.evaluation.single_scale import format_scores
from enc_tf.prediction import PAPER_SCALES, MultiScaleConfig, MultiScalePredictor


def _source(args, loaded):
    if args.dataset is None:
        if loaded.run_config is None:
            raise ConfigError(
                "--dataset and --root are needed unless MODEL is a training run directory."
            )
        return sources_from_config(loaded.run_config.data)[1]
    if args.root is None:
        raise ConfigError("--root is required with --dataset.")
    return resolve_source(args.dataset, args.root, args.split, args.classes, args.label_mapping)


def _strategy():
    """Under a TF_CONFIG cluster: the multi-worker strategy and this worker's
    `(count, index)` shard."""
    workers = tf_config_workers()
    if workers <= 1:
        return None, None
    strategy = make_strategy("multi_worker")
    chief, task = worker_role(strategy)
    has_chief = "chief" in strategy.cluster_resolver.cluster_spec().as_dict()
    return strategy, (workers, 0 if chief else task + has_chief)


def run(args):
    strategy, shard = _strategy()  # collectives must be set up before any other TF op
    loaded = load_model(args.model)
    source = _source(args, loaded)
    classes = check_classes(loaded, source.classes, f"the {args.dataset or 'run'} dataset")
    scales = tuple(args.scales) if args.multi_scale else (1.0,)
    flip = args.multi_scale and not args.no_flip
    config = MultiScaleConfig(
        args.base_size, args.crop_size, scales, flip, window_batch=args.window_batch
    )
    predictor = MultiScalePredictor(loaded.logits_fn, loaded.num_classes, config)
    data = build_dataset(
        source, "eval", PipelineConfig(batch_size=1), aux=False, se_loss=False, shard=shard
    )
    examples = data.map(lambda image, targets: (image[0], targets["seg"][0]))
    if args.limit:
        examples = examples.take(args.limit)
    # Single scale runs at each image's own resolution (sliding window above the crop).
    total = source.num_examples
    if shard is not None:
        total = -(-total // shard[0])
    if args.limit:
        total = min(total, args.limit)
    # A bad sample ends the run as one DataError, with tf.data's threads stopped before exit.
    with NumpyIterator(examples, source) as arrays:
        scores, matrix = evaluate_multi_scale(
            predictor,
            arrays,
            source.ignore_index,
            classes.names,
            strategy,
            native_resolution=not args.multi_scale,
            total=total,
        )
    protocol = {
        "model": args.model,
        "dataset": args.dataset or loaded.run_config.data.dataset,
        "split": args.split,
        "mode": "multi-scale" if args.multi_scale else "single-scale (native resolution)",
        "scales": list(scales),
        "flip": flip,
        "base_size": args.base_size,
        "crop_size": args.crop_size,
        "probabilities": "softmax, averaged over window overlaps, summed over scales and flips",
    }
    print(format_scores(scores))
    if strategy is None or shard[1] == 0:
        paths = write_report(args.out, scores, matrix, {"protocol": protocol})
        print("\n" + "\n".join(f"{name}: {path}" for name, path in paths.items()))
    return scores


def _command(args):
    run(args)  # the scores are printed and written; the exit status is 0


def main(argv=None):
    parser = command_parser("enc-eval", __doc__)
    parser.add_argument("model", help=".keras file, run directory or SavedModel directory")
    parser.add_argument(
        "--dataset", choices=("folder", "ade20k", "voc", "pascal_context", "cityscapes", "tfrecord")
    )
    parser.add_argument("--root", help="dataset root")
    parser.add_argument(
        "--split", default="val", help='split name ("" for every image of a folder dataset)'
    )
    parser.add_argument("--classes", help="class list (folder datasets)")
    parser.add_argument(
        "--label-mapping",
        default="identity",
        choices=LABEL_MAPPINGS,
        help="folder datasets: identity (value v is class v) or reduce_zero "
        "(value 0 is ignored, value v is class v - 1)",
    )
    parser.add_argument(
        "--multi-scale", action="store_true", help="the paper's multi-scale + flip protocol"
    )
    parser.add_argument("--scales", type=float, nargs="+", default=list(PAPER_SCALES))
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--base-size", type=int, default=520)
    parser.add_argument("--crop-size", type=int, default=480)
    parser.add_argument("--window-batch", type=int, default=4)
    parser.add_argument("--limit", type=int, default=0, help="evaluate the first N images only")
    parser.add_argument("--out", default="evaluation", help="output directory")
    return run_cli(parser, _command, argv)


if __name__ == "__main__":
    sys.exit(main())
