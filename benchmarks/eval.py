"""Seconds per image of EncNet-ResNet50s evaluation at an ADE20K-like size (512x683):
single-scale (native resolution, sliding window) against the paper's multi-scale + flip
protocol, and how the multi-scale cost splits between scales.

Run: .venv/bin/python benchmarks/eval.py [--height 512 --width 683 --repeats 1]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NUM_CLASSES = 150


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=683)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--window-batch", type=int, default=4)
    args = parser.parse_args()

    import numpy as np

    from benchmarks.common import machine, table
    from enc_tf import build_encnet
    from enc_tf.contracts.images import long_side_size
    from enc_tf.protocols import PAPER_SCALES, PaperConfig, PaperPredictor, window_starts

    model = build_encnet(NUM_CLASSES)
    image = np.random.default_rng(0).normal(size=(args.height, args.width, 3)).astype("float32")
    multi = PaperPredictor(
        model,
        NUM_CLASSES,
        PaperConfig(520, 480, PAPER_SCALES, True, window_batch=args.window_batch),
    )
    single = PaperPredictor(
        model,
        NUM_CLASSES,
        PaperConfig(520, 480, (1.0,), False, window_batch=args.window_batch),
    )
    single.predict(image, max(image.shape[:2]))  # traces the window function
    multi.predict(image[:64, :64])

    def timed(fn):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    single_s = timed(lambda: single.predict(image, max(image.shape[:2])))
    rows = []
    total = 0.0
    for scale in PAPER_SCALES:
        seconds = timed(lambda: multi.scale_probabilities(image, scale))
        total += seconds
        long = int(np.ceil(520 * scale))
        h, w = long_side_size(args.height, args.width, long)
        windows = (
            1
            if long <= 480
            else len(window_starts(max(h, 480), 480, 320))
            * len(window_starts(max(w, 480), 480, 320))
        )
        rows.append([scale, f"{h}x{w}", windows, windows * 2, f"{seconds:.2f}", ""])
    for row in rows:
        row[5] = f"{100 * float(row[4]) / total:.0f}%"
    windows_single = len(window_starts(args.height, 480, 320)) * len(
        window_starts(args.width, 480, 320)
    )
    print(
        f"EncNet-ResNet50s, {NUM_CLASSES} classes, {args.height}x{args.width} image, "
        "crop 480, base 520, "
        f"window batch {args.window_batch}; {machine()}"
    )
    print(table(["scale", "resized", "windows", "passes (x flip)", "seconds", "share"], rows))
    print(
        f"single-scale (native resolution, {windows_single} windows): {single_s:.2f} s/image; "
        f"multi-scale + flip: {total:.2f} s/image = {total / single_s:.1f}x single-scale"
    )


if __name__ == "__main__":
    main()
