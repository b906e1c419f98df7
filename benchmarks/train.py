"""EncNet-ResNet50s training throughput with `model.fit`: images/s, peak memory, and the
training step against the forward pass, float32 / mixed precision, with and without XLA.

Every case runs in its own process (so peak memory is its own) and trains the real
recipe (losses, EncNetSGD with coupled L2 and 10x heads) on synthetic batches from
tf.data, so that the input pipeline is not what is measured (benchmarks/data.py
measures that). The ratio columns compare cases measured in this one run.

Run: .venv/bin/python benchmarks/train.py [--cases small|all] [--steps N] [--float32-only]
On a CPU the mixed policy is mixed_bfloat16, on a GPU mixed_float16.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NUM_CLASSES = 150
WARMUP_STEPS = 2


def worker_train(batch, size, policy, xla, steps):
    import time

    import keras
    import numpy as np
    import tensorflow as tf

    from benchmarks.common import emit, peak_rss_mb, rss_mb, step_timer
    from enc_tf import build_encnet
    from enc_tf.contracts.labels import presence_targets
    from enc_tf.losses import encnet_losses
    from enc_tf.optimizers import HEAD_PREFIXES, EncNetSGD

    batch, size, steps, xla = int(batch), int(size), int(steps), xla == "xla"
    gpu = bool(tf.config.list_physical_devices("GPU"))
    keras.config.set_dtype_policy(policy)
    baseline = rss_mb()
    model = build_encnet(NUM_CLASSES, input_shape=(size, size, 3))
    optimizer = EncNetSGD(0.001, l2=1e-4, lr_multipliers={p: 10.0 for p in HEAD_PREFIXES})
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    losses, weights = encnet_losses()
    model.compile(optimizer=optimizer, loss=losses, loss_weights=weights, jit_compile=xla)

    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch, size, size, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, (batch, size, size)).astype("int32")
    targets = {
        "seg": labels,
        "aux": labels,
        "se": np.asarray(presence_targets(labels, NUM_CLASSES)),
    }
    data = tf.data.Dataset.from_tensors((images, targets)).repeat().prefetch(2)

    timer = step_timer()
    model.fit(data, steps_per_epoch=WARMUP_STEPS + steps, epochs=1, callbacks=[timer], verbose=0)
    step = float(np.median(timer.times[WARMUP_STEPS:]))

    # The forward pass of the same step (training mode, same compilation).
    x = tf.constant(images)
    forward = tf.function(lambda: model(x, training=True)["seg"], jit_compile=xla)
    forward().numpy()
    times = []
    for _ in range(max(steps, 2)):
        start = time.perf_counter()
        forward().numpy()
        times.append(time.perf_counter() - start)
    peak = (
        tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        if gpu
        else peak_rss_mb() - baseline
    )
    emit(
        {
            "step": step,
            "forward": float(np.median(times)),
            "first_step": timer.times[0],
            "peak_mb": peak,
            "gpu": gpu,
        }
    )


def main():
    import tensorflow as tf

    from benchmarks.common import machine, run_case, table

    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--cases",
        choices=("small", "all"),
        default="all",
        help="small: batch 2 at 256 only (a CPU takes minutes per 480 step)",
    )
    parser.add_argument(
        "--steps", type=int, default=5, help="timed steps per case, after 2 warm-up steps"
    )
    parser.add_argument(
        "--float32-only",
        action="store_true",
        help="skip mixed precision (a CPU without bf16 instructions emulates it very slowly)",
    )
    args = parser.parse_args()
    gpu = bool(tf.config.list_physical_devices("GPU"))
    mixed = "mixed_float16" if gpu else "mixed_bfloat16"
    shapes = [(2, 256)] if args.cases == "small" else [(2, 256), (8, 480)]
    rows = []
    for batch, size in shapes:
        reference = None
        for policy in ("float32",) if args.float32_only else ("float32", mixed):
            for xla in ("no-xla", "xla"):
                r = run_case(__file__, "train", batch, size, policy, xla, args.steps, timeout=3600)
                reference = reference or r["step"]
                rows.append(
                    [
                        f"{batch} x {size}",
                        policy,
                        xla == "xla",
                        f"{r['step']:.3f}",
                        f"{batch / r['step']:.2f}",
                        f"{r['peak_mb']:.0f}",
                        f"{r['step'] / r['forward']:.2f}",
                        f"{reference / r['step']:.2f}x",
                        f"{r['first_step']:.0f}",
                    ]
                )
    print(
        f"EncNet-ResNet50s training with model.fit, {NUM_CLASSES} classes, output stride 8; "
        f"{machine()}"
        + (
            "; GPU: {}".format(
                tf.config.experimental.get_device_details(
                    tf.config.list_physical_devices("GPU")[0]
                ).get("device_name")
            )
            if gpu
            else ""
        )
    )
    print(
        table(
            [
                "batch x size",
                "policy",
                "XLA",
                "step s",
                "images/s",
                "peak MiB",
                "step / forward",
                "speed vs fp32 no-XLA",
                "first step s",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_train(*sys.argv[3:])
    else:
        main()
