"""What quantization-aware fine-tuning buys: int8 TFLite accuracy before and after, on a
trained run's validation images, with the control that separates its two effects.

Rows (each folded and converted to TFLite int8 with the Encoding path float, as
enc-export-tflite does, calibrated on the run's training images, and scored against its
own float Keras model and the labels):
- post-training int8 of the run's model;
- float fine-tuning: the same epochs, learning rate and data without int8 rounding,
  then int8 (what more training alone does);
- quantization-aware fine-tuning (`enc-qat`), then int8.

    .venv/bin/python benchmarks/qat.py --run runs/context_shapes_encnet [--epochs 3]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", default="runs/context_shapes_encnet")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--calibration", type=int, default=32)
    args = parser.parse_args()

    from benchmarks.common import machine, table
    from enc_tf.artifacts import load_keras_model
    from enc_tf.data import sources_from_config
    from enc_tf.export.calibration import calibration_images
    from enc_tf.export.compare import Variant, keras_runner, score_variants, validation_examples
    from enc_tf.export.tflite import TFLiteRunner, convert
    from enc_tf.models.transforms import fold_batch_norms
    from enc_tf.training.qat import finetune_run

    loaded = load_keras_model(args.run, fold=False)  # fine-tuning needs the BatchNorms
    source = sources_from_config(loaded.run_config.data)[1]
    examples, size = validation_examples(source, args.images)
    calibration = calibration_images(loaded, size, args.calibration)
    models = {"post-training int8": loaded.keras_model}
    for name, simulate in (("float fine-tuning", False), ("quantization-aware", True)):
        models[name] = finetune_run(loaded, args.epochs, 0, args.lr, simulate)[1]
    rows = []
    for name, model in models.items():
        reference = keras_runner(model)
        # Converted folded, as enc-export-tflite loads models (TFLite's converter
        # quantizes an unfolded BatchNorm's scale and shift as ops of their own).
        folded = fold_batch_norms(model)
        int8 = TFLiteRunner(model_content=convert(folded, "int8", size, calibration))
        keras_score, int8_score = score_variants(
            [Variant("keras", reference, "", 1), Variant("int8", int8, "", 1)],
            examples,
            loaded.num_classes,
            source.ignore_index,
            reference,
        )
        rows.append(
            [
                name,
                f"{100 * keras_score.mean_iou:.2f}",
                f"{100 * int8_score.mean_iou:.2f}",
                f"{100 * (int8_score.mean_iou - keras_score.mean_iou):+.2f}",
                f"{100 * int8_score.agreement:.2f}%",
                f"{int8_score.se_error:.3f}",
            ]
        )
    print(
        f"{args.run}: {len(examples)} validation images of {size}x{size}; fine-tuning "
        f"{args.epochs} epochs at lr {args.lr}; int8 calibrated on {args.calibration} "
        f"training images; {machine()}"
    )
    header = ["model", "float mIoU", "int8 mIoU", "int8 - float", "int8 argmax = float", "SE err"]
    print(table(header, rows))


if __name__ == "__main__":
    main()
