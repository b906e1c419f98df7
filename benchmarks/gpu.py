"""EncNet on accelerators: training throughput over 1..N replicas (MirroredStrategy with
synchronised BatchNorm), per precision policy and with XLA on or off, its scaling
efficiency, and inference latency.

Training runs `model.fit` on the real recipe (three losses, EncNetSGD with 10x heads) from a
synthetic tf.data batch, so the input pipeline is not what is measured. Each case runs in
its own process. Scaling efficiency is the images/s of N replicas over N times one
replica's, within the same policy and XLA setting (the global batch grows with N: the
per-replica batch is fixed, as in data-parallel training).

On a GPU machine (run there as it is):
  .venv/bin/python benchmarks/gpu.py
The same script on CPU logical devices, which checks the distributed path without a GPU
(the figures then say nothing of a GPU):
  .venv/bin/python benchmarks/gpu.py --cpu-devices 2 --backbone mobilenetv3_small_minimalistic \\
      --size 64 --batch-per-replica 2 --policies float32 --xla off --steps 2
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NUM_CLASSES = 150
WARMUP_STEPS = 2
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def _devices(cpu_devices):
    """The devices a case replicates over: every GPU, or `cpu_devices` logical CPUs."""
    import tensorflow as tf

    if cpu_devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices
        )
        return [d.name for d in tf.config.list_logical_devices("CPU")], "CPU"
    return [d.name for d in tf.config.list_logical_devices("GPU")], "GPU"


def worker_train(backbone, size, batch_per_replica, replicas, policy, xla, steps, cpu_devices):

    import keras
    import numpy as np
    import tensorflow as tf

    from benchmarks.common import emit, step_timer
    from enc_tf import build_encnet
    from enc_tf.contracts.labels import presence_targets
    from enc_tf.losses import encnet_losses
    from enc_tf.optimizers import HEAD_PREFIXES, EncNetSGD

    size, per_replica, replicas = int(size), int(batch_per_replica), int(replicas)
    steps = int(steps)
    devices, kind = _devices(int(cpu_devices))
    strategy = tf.distribute.MirroredStrategy(devices[:replicas])
    keras.config.set_dtype_policy(policy)
    batch = per_replica * replicas
    with strategy.scope():
        model = build_encnet(
            NUM_CLASSES, backbone=backbone, input_shape=(size, size, 3), sync_batch_norm=True
        )
        optimizer = EncNetSGD(0.001, l2=1e-4, lr_multipliers={p: 10.0 for p in HEAD_PREFIXES})
        if policy == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        losses, weights = encnet_losses()
        model.compile(
            optimizer=optimizer, loss=losses, loss_weights=weights, jit_compile=xla == "on"
        )
    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch, size, size, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, (batch, size, size)).astype("int32")
    presence = np.asarray(presence_targets(labels, NUM_CLASSES))
    targets = {"seg": labels, "aux": labels, "se": presence}
    data = tf.data.Dataset.from_tensors((images, targets)).repeat().prefetch(2)

    timer = step_timer()
    history = model.fit(
        data, steps_per_epoch=WARMUP_STEPS + steps, epochs=1, callbacks=[timer], verbose=0
    )
    step = float(np.median(timer.times[WARMUP_STEPS:]))
    emit(
        {
            "step": step,
            "images_per_s": batch / step,
            "loss": float(history.history["loss"][-1]),
            "replicas": strategy.num_replicas_in_sync,
            "kind": kind,
        }
    )


def worker_infer(backbone, size, batch, policy, xla, repeats, cpu_devices):
    """Latency of the folded model (as `enc-eval` loads one) computing under `policy`."""
    import numpy as np
    import tensorflow as tf

    from benchmarks.common import emit, median_seconds
    from enc_tf import build_encnet
    from enc_tf.models.transforms import copy_model, fold_batch_norms

    size, batch = int(size), int(batch)
    devices, kind = _devices(int(cpu_devices))
    with tf.device(devices[0]):
        model = build_encnet(NUM_CLASSES, backbone=backbone, input_shape=(size, size, 3))
        model = fold_batch_norms(model)
        if policy != "float32":
            model = copy_model(model, policy)
        x = tf.constant(np.random.default_rng(0).normal(size=(batch, size, size, 3)), tf.float32)
        fn = tf.function(
            lambda images: model(images, training=False)["seg"], jit_compile=xla == "on"
        )
        for _ in range(2):
            fn(x).numpy()
        seconds = median_seconds(lambda: fn(x).numpy(), int(repeats))
    emit({"seconds": seconds, "kind": kind})


def replica_counts(available, asked=None):
    """`1, 2, 4, ...` up to `available` (and `available` itself), or the counts asked for."""
    if asked:
        counts = sorted({int(n) for n in asked.split(",")})
        if counts[0] < 1 or counts[-1] > available:
            raise SystemExit(f"--replicas {asked}: this machine has {available} device(s).")
        return counts
    counts, n = [], 1
    while n < available:
        counts.append(n)
        n *= 2
    return counts + [available]


def scaling_rows(results):
    """Table rows from `{(policy, xla, replicas): result}`: images/s and the efficiency
    against one replica of the same policy and XLA setting."""
    rows = []
    for (policy, xla, replicas), r in results.items():
        one = results.get((policy, xla, 1))
        efficiency = r["images_per_s"] / (replicas * one["images_per_s"]) if one else None
        rows.append(
            [
                policy,
                xla,
                replicas,
                f"{r['step']:.3f}",
                f"{r['images_per_s']:.2f}",
                f"{100 * efficiency:.0f}%" if efficiency is not None else "-",
            ]
        )
    return rows


def main():
    from benchmarks.common import machine, run_case, table

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", nargs="*")
    parser.add_argument("--backbone", default="resnet50s")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch-per-replica", type=int, default=8)
    parser.add_argument("--replicas", help="comma-separated replica counts (default 1, 2, 4.. N)")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--xla", choices=("on", "off", "both"), default="both")
    parser.add_argument("--steps", type=int, default=10, help="timed steps after 2 warm-up steps")
    parser.add_argument("--inference-batches", default="1,8")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=0,
        help="replicate over this many logical CPU devices instead of the GPUs",
    )
    args = parser.parse_args()
    if args.worker is not None:
        kind, *rest = args.worker
        return {"train": worker_train, "infer": worker_infer}[kind](*rest)
    if not args.cpu_devices:
        import tensorflow as tf

        available = len(tf.config.list_physical_devices("GPU"))
        if not available:
            raise SystemExit(
                "No GPU is visible: run on a GPU machine, or give --cpu-devices N to check "
                "the distributed path on logical CPU devices."
            )
    else:
        available = args.cpu_devices
    policies = [p for p in args.policies.split(",") if p]
    unknown = sorted(set(policies) - set(POLICIES))
    if unknown:
        raise SystemExit(f"--policies: unknown {unknown}; choose from {', '.join(POLICIES)}.")
    xlas = ("off", "on") if args.xla == "both" else (args.xla,)
    common = (args.backbone, args.size)
    results, kind = {}, None
    for policy in policies:
        for xla in xlas:
            for replicas in replica_counts(available, args.replicas):
                r = run_case(
                    __file__,
                    "train",
                    *common,
                    args.batch_per_replica,
                    replicas,
                    policy,
                    xla,
                    args.steps,
                    args.cpu_devices,
                    timeout=3600,
                )
                results[(policy, xla, r["replicas"])] = r
                kind = r["kind"]
    print(f"{machine()}; replicas on {kind} devices")
    print(
        f"\nTraining, EncNet-{args.backbone}, {args.size}x{args.size}, {args.batch_per_replica} "
        "images per replica, SyncBN:"
    )
    header = ["policy", "XLA", "replicas", "step s", "images/s", "scaling efficiency"]
    print(table(header, scaling_rows(results)))
    rows = []
    for policy in policies:
        for xla in xlas:
            for batch in [int(b) for b in args.inference_batches.split(",") if b]:
                r = run_case(
                    __file__, "infer", *common, batch, policy, xla, args.steps, args.cpu_devices
                )
                rows.append([policy, xla, batch, f"{1000 * r['seconds']:.1f}"])
    print(f"\nInference (BatchNorm folded), EncNet-{args.backbone}, {args.size}x{args.size}:")
    print(table(["policy", "XLA", "batch", "latency ms"], rows))


if __name__ == "__main__":
    main()
