"""Exported variants of a trained model side by side: latency (batch 1), file size,
per-pixel agreement with Keras, SE logit error and mIoU on the validation images.

Variants: Keras, SavedModel in float32 and bfloat16 (`logits` signature; bfloat16 is
`enc-export --precision bfloat16`), TFLite float32 / float16 / dynamic
int8 / int8 (Encoding path float) / int8 (everything quantized), and ONNX Runtime. The
input size is the validation images' size (ContextShapes: 128), so every variant sees
the same full images. Run after `make demo`:

    .venv/bin/python benchmarks/export.py [--run runs/context_shapes_encnet] [--images 100]
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default="runs/context_shapes_encnet")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--calibration", type=int, default=32)
    parser.add_argument(
        "--threads", type=int, default=0, help="TFLite / ONNX Runtime threads (0: their default)"
    )
    parser.add_argument("--variants", help="comma-separated subset of the variants (default: all)")
    args = parser.parse_args()

    import numpy as np

    from benchmarks.common import machine
    from enc_tf.artifacts import load_keras_model
    from enc_tf.data import sources_from_config
    from enc_tf.export.calibration import calibration_images
    from enc_tf.export.compare import (
        VARIANTS,
        Variant,
        export_variants,
        format_table,
        keras_runner,
        score_variants,
        validation_examples,
    )

    loaded = load_keras_model(args.run)
    model = loaded.keras_model
    source = sources_from_config(loaded.run_config.data)[1]
    examples, size = validation_examples(source, args.images)
    reference = keras_runner(model)
    keras_file = os.path.join(args.run, "model.keras")
    variants = [Variant("keras (tf.function)", reference, keras_file, os.path.getsize(keras_file))]
    with tempfile.TemporaryDirectory() as tmp:
        variants += export_variants(
            model,
            loaded.classes,
            tmp,
            size,
            calibration_images(loaded, size, args.calibration),
            args.variants.split(",") if args.variants else VARIANTS,
            num_threads=args.threads or None,
        )
        scores = score_variants(
            variants, examples, loaded.num_classes, source.ignore_index, reference
        )
    se_range = float(np.ptp(np.stack([reference(x)["se"] for x, _ in examples])))
    print(
        f"{args.run}: {len(examples)} validation images of {size}x{size}, "
        f"{loaded.num_classes} classes; "
        f"SE logits span {se_range:.2f}; int8 calibrated on {args.calibration} training images; "
        f"{machine()}"
    )
    print(format_table(scores))


if __name__ == "__main__":
    main()
