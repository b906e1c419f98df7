"""Training-pipeline throughput against what EncNet-ResNet50s training consumes.

Pipeline: decode + the paper's augmentation + batching, images/s, on an
ADE20K-like folder dataset of 683x512 JPEGs (base 520, crop 480) and on
ContextShapes (base 128, crop 112). Model: images/s of one EncNet-ResNet50s
training step (`train_on_batch`, SGD) at the same crop. The pipeline must not
be what limits training: the ratio should be well above 1.
Run: .venv/bin/python benchmarks/data.py
"""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import machine, table, write_ade_like  # noqa: E402
from enc_tf import build_encnet  # noqa: E402
from enc_tf.data import PipelineConfig, build_dataset, ensure_context_shapes, folder_source  # noqa: E402
from enc_tf.losses import encnet_losses  # noqa: E402


def pipeline_rate(source, config, batches=6):
    dataset = build_dataset(source, "train", config, repeat=True)
    iterator = iter(dataset)
    next(iterator)  # warm-up: tracing, first decode
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * config.batch_size / (time.perf_counter() - start)


def model_rate(num_classes, crop, batch, steps=2):
    model = build_encnet(num_classes, input_shape=(crop, crop, 3))
    losses, weights = encnet_losses()
    model.compile(
        optimizer=keras.optimizers.SGD(0.001, momentum=0.9), loss=losses, loss_weights=weights
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, crop, crop, 3)).astype("float32")
    labels = rng.integers(0, num_classes, (batch, crop, crop)).astype("int32")
    y = {"seg": labels, "aux": labels, "se": np.ones((batch, num_classes), "float32")}
    model.train_on_batch(x, y)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch / (time.perf_counter() - start)


def main():
    from _enc_tf_launch import _set_machine_environment

    _set_machine_environment()  # the C allocator's thresholds enc-train runs with
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_ade_like(os.path.join(tmp, "ade_like"))
        ade = folder_source(os.path.join(tmp, "ade_like"))
        ade_pipe = pipeline_rate(ade, PipelineConfig(batch_size=8, base_size=520, crop_size=480))
        ade_model = model_rate(150, 480, batch=2)
        rows.append(
            [
                "ADE20K-like 683x512 JPEG, base 520 / crop 480",
                f"{ade_pipe:.1f}",
                f"{ade_model:.2f}",
                f"{ade_pipe / ade_model:.0f}x",
            ]
        )
        shapes = ensure_context_shapes(os.path.join(tmp, "cache"), image_size=128)
        shapes = folder_source(shapes, "train")
        cs_pipe = pipeline_rate(
            shapes, PipelineConfig(batch_size=16, base_size=128, crop_size=112), batches=10
        )
        cs_model = model_rate(shapes.num_classes, 112, batch=8)
        rows.append(
            [
                "ContextShapes 128x128 PNG, base 128 / crop 112",
                f"{cs_pipe:.1f}",
                f"{cs_model:.2f}",
                f"{cs_pipe / cs_model:.0f}x",
            ]
        )
    print(f"Training pipeline vs EncNet-ResNet50s training step; {machine()}")
    print(table(["dataset", "pipeline images/s", "training images/s", "headroom"], rows))


if __name__ == "__main__":
    main()
