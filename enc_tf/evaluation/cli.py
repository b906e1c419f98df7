"""`enc-eval MODEL [options]`: the paper's or MMSegmentation's evaluation protocol on a dataset.

MODEL is a `.keras` file, a training run directory (its config names the
validation data), a preset name, a URL, or a SavedModel from enc-export. Prints the per-class
IoU table and writes evaluation.json, confusion_matrix.npy and confusion_matrix.png.
Under TF_CONFIG (several workers) each worker evaluates its shard and the
confusion matrices are summed across workers.

--protocol paper (default): the original's single-scale or multi-scale evaluation.
--protocol mmseg: MMSegmentation's test-time protocol, to compare with its published
mIoU (mean_iou_present), e.g. `--protocol mmseg --mmseg-preset ade20k [--multi-scale]`.
"""

import argparse
import logging
import sys

from enc_tf.artifacts import check_classes, load_model
from enc_tf.config import DATASETS
from enc_tf.console import DownloadProgress, add_precision_option, command_parser, run_cli
from enc_tf.data import PipelineConfig, build_dataset, resolve_source, sources_from_config
from enc_tf.data.pipeline import NumpyIterator
from enc_tf.data.sources import LABEL_MAPPINGS
from enc_tf.distribute import make_strategy, tf_config_workers, worker_role
from enc_tf.errors import ConfigError
from enc_tf.evaluation.protocol import evaluate_protocol
from enc_tf.evaluation.report import format_scores, write_report
from enc_tf.presets import MODEL_HELP, model_path
from enc_tf.protocols import (
    MMSEG_PRESETS,
    MMSEG_RATIOS,
    PAPER_SCALES,
    MMSegConfig,
    MMSegPredictor,
    PaperConfig,
    PaperPredictor,
    check_settings,
    model_align_corners,
    preset_summary,
)

logger = logging.getLogger(__name__)

# Options only --protocol mmseg takes (None when not given).
MMSEG_OPTIONS = (
    "mmseg_preset",
    "mmseg_scale",
    "mmseg_mode",
    "slide_stride",
    "align_corners",
    "mmseg_ratios_of",
)
# MMSegConfig fields -> the options that set them, for error messages.
MMSEG_LABELS = {
    "scale": "--mmseg-scale",
    "mode": "--mmseg-mode",
    "crop_size": "--crop-size",
    "stride": "--slide-stride",
    "ratios": "--scales",
    "ratios_of": "--mmseg-ratios-of",
    "window_batch": "--window-batch",
}


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


def _option(dest):
    return "--" + dest.replace("_", "-")


def _given(args, dests):
    """The first of `dests` given on the command line, or None."""
    return next((d for d in dests if getattr(args, d) is not None), None)


def _first(*values):
    """The first value that is not None (an explicit option, a preset, a default)."""
    return next(v for v in values if v is not None)


def paper_config(args):
    """The paper's protocol from the options: `(PaperConfig, protocol description)`."""
    other = _given(args, MMSEG_OPTIONS)
    if other:
        raise ConfigError(f"{_option(other)} applies to --protocol mmseg only.")
    base_size, crop_size = _first(args.base_size, 520), _first(args.crop_size, 480)
    scales = tuple(args.scales or PAPER_SCALES) if args.multi_scale else (1.0,)
    flip = args.multi_scale and args.flip
    config = PaperConfig(base_size, crop_size, scales, flip, window_batch=args.window_batch)
    protocol = {
        "protocol": "paper",
        "mode": "multi-scale" if args.multi_scale else "single-scale (native resolution)",
        "scales": list(scales),
        "flip": flip,
        "base_size": base_size,
        "crop_size": crop_size,
        "probabilities": "softmax, averaged over window overlaps, summed over scales and flips",
    }
    return config, protocol


def mmseg_settings(args):
    """`MMSegConfig` arguments (all but `align_corners`) from the options, checked.

    An explicit option wins over `--mmseg-preset`, which wins over the defaults.
    """
    if args.base_size is not None:
        raise ConfigError(
            "--base-size applies to --protocol paper only; --protocol mmseg resizes into "
            "--mmseg-scale LONG SHORT."
        )
    preset = MMSEG_PRESETS.get(args.mmseg_preset, {})
    default = MMSegConfig()
    mode = _first(args.mmseg_mode, preset.get("mode"), default.mode)
    slide_only = _given(args, ("crop_size", "slide_stride"))
    if mode == "whole" and slide_only:
        raise ConfigError(f"{_option(slide_only)} applies to --mmseg-mode slide only.")
    multi_only = _given(args, ("scales", "mmseg_ratios_of"))
    if not args.multi_scale and multi_only:
        raise ConfigError(f"{_option(multi_only)} needs --multi-scale.")
    settings = {
        "scale": tuple(_first(args.mmseg_scale, preset.get("scale"), default.scale)),
        "mode": mode,
        "crop_size": _first(args.crop_size, preset.get("crop_size"), default.crop_size),
        "stride": _first(args.slide_stride, preset.get("stride"), default.stride),
        "ratios": tuple(args.scales or MMSEG_RATIOS) if args.multi_scale else (1.0,),
        "flip": args.multi_scale and args.flip,
        "ratios_of": _first(args.mmseg_ratios_of, default.ratios_of),
        "window_batch": args.window_batch,
    }
    check_settings(settings, MMSEG_LABELS)
    return settings


def mmseg_align_corners(args, loaded):
    """`(align_corners, where it came from)`: `--align-corners`, else the model's, else the
    preset's; a `ConfigError` when none says."""
    from_model = model_align_corners(loaded.keras_model)
    preset = MMSEG_PRESETS.get(args.mmseg_preset, {})
    if args.align_corners is not None:
        value = args.align_corners
        if from_model is not None and from_model != value:
            logger.warning(
                "--align-corners %s overrides the model's align_corners=%s.",
                args.align_corners,
                from_model,
            )
        return value, "--align-corners"
    if from_model is not None:
        if preset.get("align_corners", from_model) != from_model:
            logger.warning(
                "The model upsamples with align_corners=%s; MMSegmentation's %s configs use %s.",
                from_model,
                args.mmseg_preset,
                preset["align_corners"],
            )
        return from_model, "model"
    if preset:
        return preset["align_corners"], "--mmseg-preset"
    raise ConfigError(
        f"--align-corners or --no-align-corners is needed: {loaded.path} does not record how "
        "it upsamples its logits (MMSegmentation's decode_head.align_corners: false for "
        "EncNet on ADE20K and Cityscapes 512x1024, true for Cityscapes 769x769)."
    )


def mmseg_predictor(args, loaded, settings):
    """MMSegmentation's protocol: `(MMSegPredictor, protocol description)`."""
    align_corners, source = mmseg_align_corners(args, loaded)
    config = MMSegConfig(**settings, align_corners=align_corners)
    protocol = {
        **config.description(),
        "preset": args.mmseg_preset,
        "align_corners_from": source,
        "compare_with_mmsegmentation": "mean_iou_present",
    }
    return MMSegPredictor(loaded.logits_fn, loaded.num_classes, config), protocol


def run(args):
    # The options are checked before anything loads.
    if args.protocol == "paper":
        config, protocol = paper_config(args)
    else:
        settings = mmseg_settings(args)
    strategy, shard = _strategy()  # collectives must be set up before any other TF op
    loaded = load_model(model_path(args.model, DownloadProgress())).with_precision(args.precision)
    source = _source(args, loaded)
    classes = check_classes(loaded, source.classes, f"the {args.dataset or 'run'} dataset")
    if args.protocol == "paper":
        predictor = PaperPredictor(loaded.logits_fn, loaded.num_classes, config)
    else:
        predictor, protocol = mmseg_predictor(args, loaded, settings)
    data = build_dataset(
        source, "eval", PipelineConfig(batch_size=1), aux=False, se_loss=False, shard=shard
    )
    examples = data.map(lambda image, targets: (image[0], targets["seg"][0]))
    if args.limit:
        examples = examples.take(args.limit)
    total = source.num_examples
    if shard is not None:
        total = -(-total // shard[0])
    if args.limit:
        total = min(total, args.limit)
    # A bad sample ends the run as one DataError, with tf.data's threads stopped before exit.
    with NumpyIterator(examples, source) as arrays:
        scores, matrix = evaluate_protocol(
            predictor,
            arrays,
            source.ignore_index,
            classes.names,
            strategy,
            # The paper's single scale runs at each image's own resolution (sliding
            # window above the crop).
            native_resolution=args.protocol == "paper" and not args.multi_scale,
            total=total,
        )
    protocol = {
        "model": args.model,
        "dataset": args.dataset or loaded.run_config.data.dataset,
        "split": args.split,
        "precision": loaded.precision if loaded.keras_model is not None else "as exported",
        **protocol,
    }
    print(format_scores(scores))
    if args.protocol == "mmseg":
        print(f"MMSegmentation's mIoU (mean_iou_present): {100 * scores['mean_iou_present']:.2f}")
    if strategy is None or shard[1] == 0:
        paths = write_report(args.out, scores, matrix, {"protocol": protocol})
        print("\n" + "\n".join(f"{name}: {path}" for name, path in paths.items()))
    return scores


def _command(args):
    run(args)  # the scores are printed and written; the exit status is 0


def main(argv=None):
    parser = command_parser("enc-eval", __doc__)
    parser.add_argument("model", help=MODEL_HELP + ", or SavedModel directory")
    parser.add_argument(
        "--dataset",
        choices=[d for d in DATASETS if d != "context_shapes"],
        help="the dataset's layout; when omitted, the validation split of MODEL's training run",
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
        "--protocol",
        default="paper",
        choices=("paper", "mmseg"),
        help="paper: the original's evaluation (default); mmseg: MMSegmentation's test-time "
        "protocol, to compare with its published mIoU",
    )
    parser.add_argument(
        "--multi-scale",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="multi-scale + flip: the paper's scales of --base-size, or MMSegmentation's "
        "ratios of --mmseg-scale",
    )
    parser.add_argument(
        "--scales",
        type=float,
        nargs="+",
        help="with --multi-scale: the paper's scales or MMSegmentation's ratios "
        f"(default {' '.join(map(str, MMSEG_RATIOS))})",
    )
    parser.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --multi-scale: add the horizontal flips of the protocol",
    )
    parser.add_argument("--base-size", type=int, help="paper: the long side at scale 1 (520)")
    parser.add_argument(
        "--crop-size", type=int, help="paper: window size (480); mmseg slide: window size (769)"
    )
    parser.add_argument("--window-batch", type=int, default=4, help="windows per network call")
    add_precision_option(parser)
    mmseg = parser.add_argument_group("--protocol mmseg")
    mmseg.add_argument(
        "--mmseg-preset",
        choices=sorted(MMSEG_PRESETS),
        help=f"MMSegmentation's EncNet test settings: {preset_summary()}; options given "
        "explicitly win",
    )
    mmseg.add_argument(
        "--mmseg-scale",
        type=int,
        nargs=2,
        metavar=("LONG", "SHORT"),
        help="resize each image with kept aspect ratio into this box (default 2048 512)",
    )
    mmseg.add_argument("--mmseg-mode", choices=("whole", "slide"), help="default whole")
    mmseg.add_argument("--slide-stride", type=int, help="slide window stride (default 513)")
    mmseg.add_argument(
        "--align-corners",
        action=argparse.BooleanOptionalAction,
        help="how logits are resized to the original size; default: the model's "
        "(required for a SavedModel without --mmseg-preset)",
    )
    mmseg.add_argument(
        "--mmseg-ratios-of",
        choices=("scale", "image"),
        help="--multi-scale ratios multiply --mmseg-scale (scale: MMSegmentation 0.x, its "
        "published figures; default) or the image's own size (image: 1.x's tta_pipeline)",
    )
    parser.add_argument("--limit", type=int, default=0, help="evaluate the first N images only")
    parser.add_argument(
        "--out",
        default="evaluation",
        help="the directory to write evaluation.json and the confusion matrix into",
    )
    return run_cli(parser, _command, argv)


if __name__ == "__main__":
    sys.exit(main())
