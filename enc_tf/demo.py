"""`make demo`: train EncNet on ContextShapes, evaluate it, draw predictions, export it
(SavedModel, TFLite float32 and int8, ONNX) and score every export on the validation
images next to the Keras model; the last thing printed is the model's per-class IoU.

`enc-demo [--config context_shapes] [--set key=value ...] [--skip-export]`
"""

import argparse
import os
import sys

import numpy as np

from enc_tf.config import load_config
from enc_tf.console import add_recipe_options, command_parser, run_cli
from enc_tf.contracts.images import denormalize
from enc_tf.contracts.labels import IGNORE_INDEX
from enc_tf.data import PipelineConfig, build_dataset, sources_from_config
from enc_tf.errors import ConfigError
from enc_tf.evaluation import evaluate, format_scores, write_report
from enc_tf.export.compare import (
    VARIANTS,
    Variant,
    export_variants,
    format_table,
    keras_runner,
    score_variants,
    validation_examples,
)
from enc_tf.files import atomic_write
from enc_tf.training import train
from enc_tf.visualize import add_legend, colorize, side_by_side

DEMO_EXPORTS = ("saved_model", "tflite_float32", "tflite_int8", "onnx")
DEFAULT_CONFIG = "context_shapes"  # the shipped recipe (enc_tf/configs/context_shapes.yaml)


def prediction_panel(image, label, prediction, classes):
    """input | ground truth | prediction, side by side, with a legend of the classes shown."""
    views = [denormalize(image), *(colorize(x, classes.palette) for x in (label, prediction))]
    shown = sorted(
        set(np.unique(label).tolist()) | set(np.unique(prediction).tolist()) - {IGNORE_INDEX}
    )
    shown = [c for c in shown if c < classes.num_classes]
    scale = max(1, min(3, 384 // image.shape[0]))  # up to 3x for small images; 384 px as is
    panel = side_by_side(views, ("input", "ground truth", "prediction"), scale)
    return add_legend(panel, classes, shown)


def compare_exports(model, config, val_source, export_dir, names, calibration=32):
    """Exports `model` as `names` and returns a table scoring each on the full validation
    images (which must share one square size: the TFLite input size) next to Keras."""
    from enc_tf.export.calibration import training_images

    examples, size = validation_examples(val_source)
    classes = val_source.classes
    keras_path = os.path.join(config.train.run_dir, "model.keras")
    reference = keras_runner(model)
    variants = [Variant("keras", reference, keras_path, os.path.getsize(keras_path))]
    variants += export_variants(
        model, classes, export_dir, size, training_images(config.data, size, calibration), names
    )
    scores = score_variants(
        variants, examples, classes.num_classes, val_source.ignore_index, reference
    )
    return (
        f"Exports vs Keras on {len(examples)} validation images of {size}x{size} "
        "(batch 1, this machine):\n" + format_table(scores)
    )


def main(argv=None):
    parser = command_parser("enc-demo", __doc__)
    add_recipe_options(parser, default=DEFAULT_CONFIG)
    parser.add_argument(
        "--num-images", type=int, default=6, help="validation images drawn with predictions"
    )
    parser.add_argument(
        "--skip-export",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="stop after evaluation and predictions",
    )
    parser.add_argument(
        "--export",
        default=",".join(DEMO_EXPORTS),
        help=f"comma-separated export variants (default: {','.join(DEMO_EXPORTS)})",
    )
    return run_cli(parser, _run, argv)


def _run(args):
    exports = [name for name in args.export.split(",") if name]
    unknown = sorted(set(exports) - set(VARIANTS))
    if unknown:  # checked before the training, not after it
        raise ConfigError(
            f"--export: unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}"
        )
    config = load_config(args.config, args.set)
    model, _ = train(config)
    _, val_source = sources_from_config(config.data)
    classes = val_source.classes
    data = build_dataset(val_source, "eval", PipelineConfig(batch_size=8), aux=False, se_loss=False)
    scores, matrix = evaluate(
        model, data, classes.num_classes, val_source.ignore_index, classes.names
    )
    run_dir = config.train.run_dir
    out_dir = os.path.join(run_dir, "predictions")
    os.makedirs(out_dir, exist_ok=True)
    images, targets = next(iter(data.unbatch().batch(args.num_images)))
    predictions = np.argmax(model(images, training=False)["seg"], -1)
    for i in range(len(images)):
        panel = prediction_panel(
            images[i].numpy(), targets["seg"][i].numpy(), predictions[i], classes
        )
        atomic_write(
            os.path.join(out_dir, f"val_{i:02d}.png"), lambda tmp: panel.save(tmp, format="PNG")
        )
    write_report(run_dir, scores, matrix)
    export_dir = None
    if not args.skip_export and exports:
        export_dir = os.path.join(run_dir, "export")
        print("\n" + compare_exports(model, config, val_source, export_dir, exports))
    print(f"\nmodel:        {os.path.join(run_dir, 'model.keras')}")
    print(f"checkpoints:  {os.path.join(run_dir, 'checkpoints')}")
    print(f"predictions:  {out_dir}")
    print(
        f"evaluation:   {os.path.join(run_dir, 'evaluation.json')} (+ confusion_matrix.npy, .png)"
    )
    if export_dir:
        print(f"exports:      {export_dir}")
    print(
        f"logs:         {os.path.join(run_dir, 'log.csv')}, "
        f"TensorBoard: tensorboard --logdir {os.path.join(run_dir, 'tensorboard')}"
    )
    print(
        f"\n{config.model.arch}-{config.model.backbone} on {len(val_source.samples)} "
        "validation images (single scale, whole images):\n" + format_scores(scores)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
