"""Exported variants of a trained model side by side: latency (batch 1), file size,
per-pixel agreement with Keras, SE logit error and mIoU on the validation images.

Variants: Keras, SavedModel (`probabilities` signature), TFLite float32 / float16 /
dynamic int8 / int8 (Encoding path float) / int8 (everything quantized). The input size
is the validation images' size (ContextShapes: 128), so every variant sees the same full
images. Run after `make demo`:

    .venv/bin/python benchmarks/export.py [--run runs/context_shapes_encnet] [--images 100]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default="runs/context_shapes_encnet")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--calibration", type=int, default=32)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from benchmarks.common import machine, table
    from enc_tf.data import PipelineConfig, build_dataset
    from enc_tf.export import export_saved_model
    from enc_tf.export.tflite import TFLiteRunner, convert
    from enc_tf.export.tflite_cli import calibration_images
    from enc_tf.inference.loading import load_keras_model
    from enc_tf.metrics import segmentation_scores
    from enc_tf.evaluation import label_confusion
    from enc_tf.training.trainer import make_sources

    loaded = load_keras_model(args.run)
    model = loaded.keras_model
    source = make_sources(loaded.run_config.data)[1]
    data = build_dataset(source, "eval", PipelineConfig(batch_size=1), aux=False, se_loss=False)
    examples = [(x[0].numpy(), t["seg"][0].numpy()) for x, t in data.take(args.images)]
    size = examples[0][0].shape[0]
    if any(x.shape[:2] != (size, size) for x, _ in examples):
        raise SystemExit("benchmarks/export.py expects square validation images of one size.")
    c = loaded.num_classes

    keras_fn = tf.function(lambda x: model(x, training=False))
    reference = [{k: v.numpy()[0] for k, v in keras_fn(x[None]).items() if k in ("seg", "se")} for x, _ in examples]

    def measure(name, run, file_size):
        run(examples[0][0])
        times, matrix, agree, se_err = [], np.zeros((c, c), np.int64), [], 0.0
        for (x, label), ref in zip(examples, reference):
            start = time.perf_counter()
            out = run(x)
            times.append(time.perf_counter() - start)
            prediction = np.argmax(out["seg"], -1)
            matrix += label_confusion(label, prediction, c, source.ignore_index)
            agree.append(np.mean(prediction == np.argmax(ref["seg"], -1)))
            if "se" in out:
                se_err = max(se_err, float(np.abs(out["se"] - ref["se"]).max()))
        scores = segmentation_scores(matrix)
        return [name, f"{1e3 * np.median(times):.0f}", f"{file_size / 2**20:.1f}", f"{100 * np.mean(agree):.2f}%",
                f"{se_err:.3f}", f"{100 * scores['mean_iou']:.2f}", f"{100 * scores['pixel_accuracy']:.2f}"]

    rows = [measure("Keras (tf.function)", lambda x: {k: v.numpy()[0] for k, v in keras_fn(x[None]).items()},
                    os.path.getsize(os.path.join(args.run, "model.keras")))]
    with tempfile.TemporaryDirectory() as tmp:
        path = export_saved_model(model, loaded.classes, tmp, "encnet")
        signature = tf.saved_model.load(path).signatures["logits"]
        saved_size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
        rows.append(measure("SavedModel (logits)", lambda x: {k: v.numpy()[0] for k, v in signature(images=x[None]).items()},
                            saved_size))
    representative = calibration_images(loaded, size, args.calibration)
    se_range = float(np.ptp(np.stack([r["se"] for r in reference])))
    for name, mode, kwargs in [
        ("TFLite float32", "float32", {}), ("TFLite float16", "float16", {}),
        ("TFLite dynamic int8", "dynamic_int8", {}), ("TFLite int8, Encoding float", "int8", {}),
        ("TFLite int8, all quantized", "int8", {"float_scopes": ()}),
    ]:
        flatbuffer = convert(model, mode, size, representative if mode == "int8" else None, **kwargs)
        rows.append(measure(name, TFLiteRunner(model_content=flatbuffer), len(flatbuffer)))
    print(f"{args.run}: {len(examples)} validation images of {size}x{size}, {c} classes; SE logits span {se_range:.2f}; "
          f"{machine()}")
    print(table(["variant", "latency ms", "size MiB", "argmax = Keras", "max SE logit error", "mIoU", "pixAcc"], rows))


if __name__ == "__main__":
    main()
