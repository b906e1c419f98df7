"""EncNet for phones: MobileNetV3 TFLite models against EncNet-ResNet50s in Keras, one run.

For each model (random weights, BatchNorm statistics randomised and folded as every
export does; speed and size do not depend on training): parameters, GFLOP at 512x512
split into backbone / EncHead / aux head, and
- EncNet-ResNet50s (output stride 8, the paper's): float32 Keras latency (`tf.function`);
- EncNet-MobileNetV3-Large / -Small (output stride 16): TFLite float32, float16,
  dynamic-range int8, int8 (Encoding path float) and int8 with everything quantized,
  each at 512x512 and 1024x512 (H x W) on ai-edge-litert's interpreter with the
  XNNPACK delegate and 2 threads: latency, file size, builtin ops only (conversion
  refuses anything else), and how many ops XNNPACK runs (the rest stay on TFLite's
  own kernels).
Prints the ratio of the MobileNet int8 latency to ResNet50s' Keras latency, and the
CPU's flags. Accuracy per variant on trained models: benchmarks/export.py --run DIR.

    .venv/bin/python benchmarks/mobile.py [--repeats 5]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NUM_CLASSES = 12  # ContextShapes
SQUARE, WIDE = (512, 512), (512, 1024)  # (H, W): 1024x512 is a landscape phone frame
THREADS = 2
MOBILE = ("mobilenetv3_large", "mobilenetv3_small")
VARIANTS = (  # (name, TFLite mode, keep the Encoding path float)
    ("float32", "float32", True),
    ("float16", "float16", True),
    ("dynamic_int8", "dynamic_int8", True),
    ("int8", "int8", True),
    ("int8_all", "int8", False),
)


def _model(backbone):
    from enc_tf import build_encnet
    from enc_tf.models.transforms import fold_batch_norms
    from tests.support.tiny_models import randomise_batch_norms

    output_stride = 8 if backbone.startswith("resnet") else 16
    model = build_encnet(NUM_CLASSES, backbone=backbone, output_stride=output_stride)
    randomise_batch_norms(model)
    return fold_batch_norms(model, copy=False), output_stride


def _flops(model, backbone, output_stride):
    """GFLOP at 512x512: total (seg and SE outputs), backbone, EncHead, aux head."""
    from benchmarks.common import graph_gflop
    from enc_tf.backbones import build_backbone
    from enc_tf.models.logits import select_logits

    shape = (1, *SQUARE, 3)
    total = graph_gflop(lambda x: select_logits(model(x, training=False)), shape)
    with_aux = graph_gflop(lambda x: model(x, training=False), shape)
    features = build_backbone(backbone, output_stride)
    body = graph_gflop(lambda x: features(x, training=False), shape)
    return {"total": total, "backbone": body, "head": total - body, "aux": with_aux - total}


def worker_keras(backbone, repeats):
    import numpy as np
    import tensorflow as tf

    from benchmarks.common import emit, median_seconds
    from enc_tf.models.logits import logits_function

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    model, output_stride = _model(backbone)
    run = logits_function(model)
    x = tf.constant(np.random.default_rng(0).normal(size=(1, *SQUARE, 3)).astype("float32"))
    run(x)
    seconds = median_seconds(lambda: run(x)["seg"].numpy(), int(repeats))
    emit(
        {
            "seconds": seconds,
            "params": model.count_params(),
            "gflop": _flops(model, backbone, output_stride),
        }
    )


def worker_tflite(backbone, repeats):
    import numpy as np

    from benchmarks.common import emit, median_seconds
    from enc_tf.export.tflite import TFLiteRunner, convert, delegate_coverage

    model, output_stride = _model(backbone)
    rng = np.random.default_rng(0)
    results = {"params": model.count_params(), "gflop": _flops(model, backbone, output_stride)}
    for size in (SQUARE, WIDE):
        images = rng.normal(size=(4, *size, 3)).astype("float32")
        for name, mode, float_encoding in VARIANTS:
            flatbuffer = convert(
                model,
                mode,
                size,
                lambda: iter(images),
                **({} if float_encoding else {"float_scopes": ()}),
            )
            runner = TFLiteRunner(model_content=flatbuffer, num_threads=THREADS)
            runner(images[0])
            delegated, total, left = delegate_coverage(runner.interpreter)
            results[f"{name} {size[1]}x{size[0]}"] = {
                "seconds": median_seconds(lambda: runner(images[0]), int(repeats)),
                "bytes": len(flatbuffer),
                "xnnpack": f"{delegated}/{total}",
                "left": left,
            }
    emit(results)


def main():
    from benchmarks.common import machine, run_case, table

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", nargs="*")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per case")
    args = parser.parse_args()
    if args.worker is not None:
        kind, *rest = args.worker
        return {"keras": worker_keras, "tflite": worker_tflite}[kind](*rest)
    print(machine())
    resnet = run_case(__file__, "keras", "resnet50s", args.repeats)
    mobile = {name: run_case(__file__, "tflite", name, args.repeats) for name in MOBILE}

    def flops(r):
        g = r["gflop"]
        return [f"{r['params'] / 1e6:.2f}", f"{g['total']:.1f}"] + [
            f"{g[k]:.2f} ({100 * g[k] / g['total']:.0f}%)" for k in ("backbone", "head", "aux")
        ]

    rows = [["encnet-resnet50s (os 8)", *flops(resnet)]]
    rows += [[f"encnet-{name} (os 16)", *flops(r)] for name, r in mobile.items()]
    header = ["model", "params M", "GFLOP 512x512", "backbone", "EncHead", "aux head (training)"]
    print(table(header, rows))
    base = resnet["seconds"]
    print(f"\nencnet-resnet50s float32 Keras (tf.function), 512x512: {1000 * base:.0f} ms")
    rows = []
    for name, r in mobile.items():
        for key, v in r.items():
            if isinstance(v, dict) and "seconds" in v:
                variant, size = key.split(" ")
                left = ", ".join(f"{k} {n}" for k, n in sorted(v["left"].items())) or "-"
                rows.append(
                    [
                        name,
                        variant,
                        size,
                        f"{1000 * v['seconds']:.1f}",
                        f"1/{base / v['seconds']:.0f}" if size == "512x512" else "-",
                        f"{v['bytes'] / 2**20:.2f}",
                        v["xnnpack"],
                        left,
                    ]
                )
    header = ["backbone", "TFLite", "W x H", "ms", "vs R50s Keras", "MiB", "XNNPACK ops", "left"]
    print(table(header, rows))


if __name__ == "__main__":
    main()
