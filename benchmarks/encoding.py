"""Encoding layer: our matmul form vs the broadcast form (original CPU path, MMSegmentation).

B=4, H=W=60, K=32, D=512 (a 480 crop at output stride 8). Forward and
forward+backward; median time and peak memory, each case in its own process.
Run: .venv/bin/python benchmarks/encoding.py
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

B, H, W, K, D = 4, 60, 60, 32, 512
REPEATS = 5


def broadcast_encoding(x, codewords, scale):
    """The straightforward form: builds the (B, N, K, D) residual tensor."""
    import tensorflow as tf

    feats = tf.reshape(x, (tf.shape(x)[0], -1, 1, x.shape[-1]))
    residual = feats - codewords  # (B, N, K, D)
    assign = tf.nn.softmax(scale * tf.reduce_sum(tf.square(residual), -1), axis=-1)
    return tf.reduce_sum(tf.expand_dims(assign, -1) * residual, axis=1)


def worker(variant, mode):
    import numpy as np
    import tensorflow as tf

    from benchmarks.common import emit, median_seconds, peak_rss_mb, rss_mb
    from enc_tf.layers import Encoding

    layer = Encoding(K)
    layer.build((B, H, W, D))
    x = tf.Variable(np.random.default_rng(0).normal(size=(B, H, W, D)).astype("float32"))

    def forward():
        if variant == "ours":
            return layer(x)
        return broadcast_encoding(x, layer.codewords, layer.scale)

    @tf.function
    def step():
        if mode == "forward":
            return tf.reduce_sum(forward())
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(forward())
        return tape.gradient(loss, [x, layer.codewords, layer.scale])

    step.get_concrete_function()  # trace outside the measured peak
    baseline = rss_mb()
    step()
    peak = peak_rss_mb() - baseline
    seconds = median_seconds(lambda: tf.nest.map_structure(lambda t: t.numpy(), step()), REPEATS)
    emit({"seconds": seconds, "peak_mb": max(peak, 0.0)})


def main():
    from benchmarks.common import machine, run_case, table

    rows = []
    for mode in ("forward", "forward+backward"):
        ours = run_case(__file__, "ours", mode)
        ref = run_case(__file__, "broadcast", mode)
        rows.append(
            [
                mode,
                f"{ours['seconds'] * 1e3:.1f}",
                f"{ref['seconds'] * 1e3:.1f}",
                f"{ref['seconds'] / ours['seconds']:.0f}x",
                f"{ours['peak_mb']:.0f}",
                f"{ref['peak_mb']:.0f}",
                f"{ref['peak_mb'] / max(ours['peak_mb'], 1.0):.0f}x",
            ]
        )
    print(f"Encoding layer, B={B} H=W={H} K={K} D={D}, float32, tf.function; {machine()}")
    print(
        table(
            [
                "pass",
                "ours ms",
                "broadcast ms",
                "speed-up",
                "ours peak MiB",
                "broadcast peak MiB",
                "memory ratio",
            ],
            rows,
        )
    )
    print(
        "peak MiB: rise of the process's peak RSS over its RSS before the first call "
        "(1 MiB floor in the ratio)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=2, metavar=("VARIANT", "MODE"))
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
    else:
        main()
