"""Deployment TFLite files (`enc-export-tflite --deploy`): latency and size as apps run them.

For EncNet-MobileNetV3-Large and -Small (output stride 16, as in benchmarks/mobile.py;
random weights with BatchNorm statistics randomised and folded, as every export does: speed
and size do not depend on training), the `mediapipe` deployment file in float32 and int8
(Encoding path float) at 512x512, with metadata:
- LiteRT's interpreter (ai-edge-litert, XNNPACK delegate) with 1 and 2 threads: the model
  alone, median of `--repeats` calls;
- MediaPipe's `ImageSegmenter` (its CPU path, category mask): what an app's call costs,
  with MediaPipe's resizing of the image in and of the scores out (a 512x512 image).
Each case runs in its own process. Prints the CPU's flags.

    .venv/bin/python benchmarks/deploy.py [--repeats 10]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZE = 512
BACKBONES = ("mobilenetv3_large", "mobilenetv3_small")
MODES = ("float32", "int8")


def worker(backbone, mode, repeats):
    import tempfile

    import numpy as np

    from benchmarks.common import emit, median_seconds
    from benchmarks.mobile import NUM_CLASSES, _model
    from enc_tf.export.deploy import DeploymentRunner, convert_deployment
    from enc_tf.export.metadata import add_metadata

    model, _ = _model(backbone)
    rng = np.random.default_rng(0)
    normalised = rng.normal(size=(4, SIZE, SIZE, 3)).astype("float32")
    flatbuffer = convert_deployment(model, mode, SIZE, lambda: iter(normalised))
    names = [f"class_{i}" for i in range(NUM_CLASSES)]
    info = {"name": backbone, "description": "", "version": "", "author": "", "license": ""}
    flatbuffer = add_metadata(flatbuffer, names, info)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    results = {"bytes": len(flatbuffer)}
    for threads in (1, 2):
        runner = DeploymentRunner(model_content=flatbuffer, num_threads=threads)
        runner(image)
        results[f"litert_{threads}"] = median_seconds(lambda: runner(image), int(repeats))
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions
    from mediapipe.tasks.python.vision import ImageSegmenter, ImageSegmenterOptions

    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(flatbuffer)
        f.flush()
        options = ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_path=f.name),
            output_category_mask=True,
            output_confidence_masks=False,
        )
        with ImageSegmenter.create_from_options(options) as segmenter:
            frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=image)
            segmenter.segment(frame)
            results["mediapipe"] = median_seconds(lambda: segmenter.segment(frame), int(repeats))
    emit(results)


def main():
    from benchmarks.common import machine, run_case, table

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", nargs="*")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per case")
    args = parser.parse_args()
    if args.worker is not None:
        return worker(*args.worker)
    print(machine())
    rows = []
    for backbone in BACKBONES:
        for mode in MODES:
            r = run_case(__file__, backbone, mode, args.repeats)
            rows.append(
                [
                    backbone,
                    mode,
                    f"{r['bytes'] / 2**20:.2f}",
                    f"{1000 * r['litert_1']:.1f}",
                    f"{1000 * r['litert_2']:.1f}",
                    f"{1000 * r['mediapipe']:.1f}",
                ]
            )
    header = [
        "backbone",
        "mode",
        "MiB",
        "LiteRT 1 thread ms",
        "LiteRT 2 threads ms",
        "MediaPipe ImageSegmenter ms",
    ]
    print(f"deployment files (--deploy mediapipe), {SIZE}x{SIZE}, XNNPACK:")
    print(table(header, rows))


if __name__ == "__main__":
    main()
