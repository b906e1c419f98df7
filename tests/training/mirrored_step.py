"""One training step of a small EncNet on one device or under MirroredStrategy over two
logical CPU devices; writes the resulting weights and BatchNorm moving statistics (run
as a script by the tests).

The step runs in float64: at this random initialisation the float32 gradients are
ill-conditioned (merely reordering the batch on one device changes some by 20%), so
a float32 comparison could not tell a real difference from rounding."""

import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from enc_tf import build_encnet  # noqa: E402
from enc_tf.contracts.labels import presence_targets  # noqa: E402
from enc_tf.losses import encnet_losses  # noqa: E402
from enc_tf.optimizers import EncNetSGD  # noqa: E402

mode, out = sys.argv[1], sys.argv[2]  # mode: single, mirrored_sync, mirrored_local
keras.config.set_dtype_policy("float64")
strategy = (
    tf.distribute.get_strategy()
    if mode == "single"
    else tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
)
keras.utils.set_random_seed(0)
with strategy.scope():
    # No dropout: its random masks would differ between one and two devices.
    model = build_encnet(
        5,
        backbone="mobilenetv3_small",  # BatchNorm everywhere, and quick to build
        output_stride=16,
        input_shape=(64, 64, 3),
        dropout=0.0,
        sync_batch_norm=mode == "mirrored_sync",
    )
    rng = np.random.default_rng(0)
    model.set_weights(
        [
            rng.normal(0, 0.05, w.shape).astype("float64") if w.ndim > 1 else w.numpy()
            for w in model.weights
        ]
    )
    losses, weights = encnet_losses(dtype="float64")
    model.compile(optimizer=EncNetSGD(0.01), loss=losses, loss_weights=weights)
images = rng.normal(size=(4, 64, 64, 3))
images[2:] += 1.5  # the replicas' halves differ, so local and global statistics differ
labels = rng.integers(0, 5, (4, 64, 64)).astype("int32")
targets = {"seg": labels, "aux": labels, "se": np.asarray(presence_targets(labels, 5))}
model.fit(images, targets, batch_size=4, epochs=1, shuffle=False, verbose=0)
np.savez(out, **{f"w{i}": w.numpy() for i, w in enumerate(model.weights)})
