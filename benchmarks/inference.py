"""EncNet-ResNet50s forward at 480x480: eager vs tf.function vs XLA, float32 and bfloat16.

Prints median latency, images/s, peak memory, achieved GFLOP/s against this
machine's float32 matmul rate (measured in the same run), and the head's share.
Each case runs in its own process. Run: .venv/bin/python benchmarks/inference.py
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZE = 480
NUM_CLASSES = 150
REPEATS = 3


def _model(policy="float32"):
    import keras

    from enc_tf import build_encnet

    keras.mixed_precision.set_dtype_policy(policy)
    return build_encnet(NUM_CLASSES, input_shape=(SIZE, SIZE, 3))


def worker_matmul():
    """The machine's float32 matrix-multiply rate: the best, over n = 1024, 2048, 4096, of
    tf.matmul (Eigen) and the same n^3 product as a 1x1 convolution (oneDNN)."""
    import tensorflow as tf

    from benchmarks.common import emit, median_seconds

    rates = {}
    for n in (1024, 2048, 4096):
        a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
        image, kernel = tf.reshape(a, (1, 32, n // 32, n)), tf.reshape(b, (1, 1, n, n))
        for name, fn in (
            ("matmul", tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))),
            (
                "conv1x1",
                tf.function(lambda: tf.reduce_sum(tf.nn.conv2d(image, kernel, 1, "VALID"))),
            ),
        ):
            fn()
            rates[f"{name} {n}"] = 2 * n**3 / median_seconds(lambda: fn().numpy(), 5) / 1e9
    best = max(rates, key=rates.get)
    emit({"gflops": rates[best], "best": best})


def worker_flops():
    from benchmarks.common import emit, graph_gflop

    model = _model()
    emit({"gflop": graph_gflop(lambda x: model(x, training=False), (1, SIZE, SIZE, 3))})


def worker_forward(mode, batch, policy):
    import numpy as np
    import tensorflow as tf

    from benchmarks.common import emit, median_seconds, peak_rss_mb, rss_mb

    model = _model(policy)
    x = tf.constant(
        np.random.default_rng(0).normal(size=(int(batch), SIZE, SIZE, 3)).astype("float32")
    )
    if mode == "eager":

        def run():
            return model(x, training=False)
    else:
        run = tf.function(lambda: model(x, training=False), jit_compile=mode == "xla")
    baseline = rss_mb()
    warm = median_seconds(lambda: tf.nest.map_structure(lambda t: t.numpy(), run()), 1)
    seconds = median_seconds(lambda: tf.nest.map_structure(lambda t: t.numpy(), run()), REPEATS)
    result = {"seconds": seconds, "first_call": warm, "peak_mb": peak_rss_mb() - baseline}
    if mode == "function" and policy == "float32":
        # The head's share: EncHead + aux head on the backbone's features.
        feats = model.get_layer("backbone")(x, training=False)
        head, aux = model.get_layer("enc_head"), model.get_layer("aux_head")
        heads = tf.function(
            lambda: (
                head([feats["c2"], feats["c3"], feats["c4"]], training=False),
                aux(feats["c3"], training=False),
            )
        )
        heads()
        result["head_seconds"] = median_seconds(
            lambda: tf.nest.map_structure(lambda t: t.numpy(), heads()), REPEATS
        )
    emit(result)


def main():
    from benchmarks.common import machine, run_case, table

    rates = run_case(__file__, "matmul")
    rate = rates["gflops"]
    gflop = run_case(__file__, "flops")["gflop"]
    rows, head_share = [], None
    cases = [(m, b, "float32") for b in (1, 4) for m in ("eager", "function", "xla")]
    cases += [(m, 1, "mixed_bfloat16") for m in ("function", "xla")]
    for mode, batch, policy in cases:
        r = run_case(__file__, "forward", mode, batch, policy)
        achieved = gflop * batch / r["seconds"]
        rows.append(
            [
                policy,
                mode,
                batch,
                f"{r['seconds'] * 1e3:.0f}",
                f"{batch / r['seconds']:.2f}",
                f"{r['peak_mb']:.0f}",
                f"{achieved:.0f}",
                f"{100 * achieved / rate:.0f}%",
                f"{r['first_call']:.1f}",
            ]
        )
        if "head_seconds" in r and batch == 1:
            head_share = r["head_seconds"] / r["seconds"]
    print(f"EncNet-ResNet50s, {NUM_CLASSES} classes, {SIZE}x{SIZE}, output stride 8; {machine()}")
    print(
        f"FLOPs (TF profiler, batch 1): {gflop:.1f} GFLOP; "
        f"float32 matmul rate, same run: {rate:.0f} GFLOP/s "
        f"(best of tf.matmul and 1x1 conv over n = 1024..4096: {rates['best']})"
    )
    print(
        table(
            [
                "policy",
                "mode",
                "batch",
                "median ms",
                "images/s",
                "peak MiB",
                "GFLOP/s",
                "of fp32 matmul",
                "first call s",
            ],
            rows,
        )
    )
    if head_share is not None:
        print(
            "head share (EncHead + aux head, tf.function, batch 1): "
            f"{100 * head_share:.1f}% of the forward time"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs="+")
    args = parser.parse_args()
    if not args.worker:
        main()
    elif args.worker[0] == "matmul":
        worker_matmul()
    elif args.worker[0] == "flops":
        worker_flops()
    else:
        worker_forward(*args.worker[1:])
