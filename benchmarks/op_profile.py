"""Where the time goes: the top ops of one EncNet forward and one training step.

TensorFlow side: the TF profiler's trace (XPlane) of a `tf.function` forward at
480x480 batch 1 and of one `model.fit` step at 256x256 batch 2, summed by op type.
MMSegmentation side (when its interpreter is given, see benchmarks/vs_mmseg.py):
`torch.profiler` over the same two workloads of its EncNet R-50-D8.

Run: .venv/bin/python benchmarks/op_profile.py [--backbone resnet50v1c] [--mmseg-python PATH]
"""

import argparse
import collections
import glob
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NUM_CLASSES = 150
FORWARD = (1, 480)  # batch, size
TRAIN = (2, 256)
TOP = 12


def op_type(name):
    """`encnet/backbone/layer1_0_conv1/convolution:_MklNativeConv2D` -> `_MklNativeConv2D`;
    TF's own op names lose their oneDNN prefixes so that the two sides read alike."""
    kind = name.rsplit(":", 1)[-1] if ":" in name else name
    for prefix in ("_MklNative", "_Mkl", "_"):
        if kind.startswith(prefix) and kind != prefix:
            kind = kind[len(prefix) :]
    return kind


def xplane_op_seconds(logdir):
    """`{op type: seconds}` over the TensorFlow ops of the host plane of a profiler run."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    (path,) = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if line.name != "tf_Compute" and not line.name.startswith("tf_"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # TF op events are `node name:op type`; "Process" spans a whole function.
                if ":" in name and not name.endswith(":Process"):
                    totals[op_type(name)] += event.duration_ps * 1e-12
    return dict(totals)


def worker_tf(backbone, what):
    import numpy as np
    import tensorflow as tf

    from benchmarks.common import emit
    from enc_tf import build_encnet
    from enc_tf.contracts.labels import presence_targets
    from enc_tf.losses import encnet_losses
    from enc_tf.models.transforms import fold_batch_norms
    from enc_tf.optimizers import EncNetSGD

    batch, size = FORWARD if what == "forward" else TRAIN
    model = build_encnet(NUM_CLASSES, backbone=backbone, input_shape=(size, size, 3))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, size, size, 3)).astype("float32"))
    if what == "forward":  # as enc-eval runs a model: BatchNorm folded
        folded = fold_batch_norms(model)
        fn = tf.function(lambda images: folded(images, training=False)["seg"])

        def step():
            fn(x).numpy()

    else:
        losses, weights = encnet_losses()
        model.compile(optimizer=EncNetSGD(0.01), loss=losses, loss_weights=weights)
        labels = rng.integers(0, NUM_CLASSES, size=(batch, size, size)).astype("int32")
        y = {"seg": labels, "aux": labels, "se": np.asarray(presence_targets(labels, NUM_CLASSES))}

        def step():
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0)

    for _ in range(2):
        step()
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    step()
    tf.profiler.experimental.stop()
    totals = xplane_op_seconds(logdir)
    emit({"ops": totals})


def table(title, totals):
    total = sum(totals.values())
    lines = [f"{title}: {total:.2f} s of op time", "", "| op | share | seconds |", "|---|---|---|"]
    for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1])[:TOP]:
        lines.append(f"| {name} | {100 * seconds / total:.1f}% | {seconds:.3f} |")
    return "\n".join(lines)


def main():
    from benchmarks.common import machine, run_case

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", nargs="*")
    parser.add_argument("--backbone", default="resnet50v1c")
    parser.add_argument("--mmseg-python", help="interpreter with mmsegmentation (vs_mmseg.py)")
    args = parser.parse_args()
    if args.worker is not None:
        return worker_tf(*args.worker)
    print(machine())
    for what, (batch, size) in (("forward", FORWARD), ("train", TRAIN)):
        result = run_case(__file__, args.backbone, what)
        print(table(f"\nenc_tf {what} b{batch} {size}x{size} ({args.backbone})", result["ops"]))
        if args.mmseg_python:
            from benchmarks.vs_mmseg import run_peer

            peer = run_peer(args.mmseg_python, "profile", what, batch, size)
            print(table(f"\nMMSegmentation {what} b{batch} {size}x{size}", peer["ops"]))


if __name__ == "__main__":
    main()
