"""Training callbacks: atomic checkpoints, non-finite-loss stop, time limit, images, learning rate."""

import logging
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from enc_tf.data.augment import denormalize
from enc_tf.models.saving import save_model_atomic
from enc_tf.visualize import colorize

logger = logging.getLogger(__name__)


class AtomicCheckpoint(keras.callbacks.Callback):
    """Writes `last.keras` after every epoch and `best.keras` when `monitor` improves."""

    def __init__(self, directory, monitor="val_seg_mean_iou", mode="max"):
        super().__init__()
        self.directory = directory
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        self.best = -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        save_model_atomic(self.model, os.path.join(self.directory, "last.keras"))
        value = logs.get(self.monitor)
        if value is not None and self.sign * float(value) > self.best:
            self.best = self.sign * float(value)
            save_model_atomic(self.model, os.path.join(self.directory, "best.keras"))
            logger.info("New best %s = %.4f at epoch %d", self.monitor, float(value), epoch + 1)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops at the first NaN or inf loss with a clear message; the checkpoints
    written so far (the last good epoch) are kept untouched."""

    def __init__(self):
        super().__init__()
        self.stopped_at = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.stopped_at = batch
            self.model.stop_training = True
            logger.error(
                "Loss became %s at batch %d; training stopped. The last good checkpoint is kept. "
                "Lower optimizer.base_lr, check the labels, or disable mixed precision.", loss, batch,
            )


class TimeLimit(keras.callbacks.Callback):
    """Stops after the epoch during which `minutes` have passed.

    Under a multi-worker strategy the workers decide together (any worker over
    time stops all), so that none waits forever for the others' next step.
    """

    def __init__(self, minutes):
        super().__init__()
        self.seconds = minutes * 60.0
        self.start = None

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        over = time.monotonic() - self.start > self.seconds
        strategy = self.model.distribute_strategy
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            over = float(strategy.reduce("SUM", tf.constant(float(over)), axis=None)) > 0
        if over:
            logger.info("Time limit of %.1f minutes reached after epoch %d.", self.seconds / 60, epoch + 1)
            self.model.stop_training = True


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the backbone learning rate of the current step to the epoch logs."""

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        lr = optimizer.learning_rate
        if callable(lr):
            lr = lr(optimizer.iterations)
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))


class PredictionImages(keras.callbacks.Callback):
    """Logs input | ground truth | prediction images to TensorBoard every N epochs."""

    def __init__(self, log_dir, images, labels, palette, every_epochs=1):
        super().__init__()
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "images"))
        self.images, self.labels = images, labels
        self.palette, self.every = palette, every_epochs

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        logits = self.model(self.images, training=False)["seg"]
        prediction = np.argmax(np.asarray(logits), -1)
        panel = np.concatenate([denormalize(self.images), colorize(self.labels, self.palette), colorize(prediction, self.palette)], axis=2)
        with self.writer.as_default():
            tf.summary.image("input | ground truth | prediction", panel, step=epoch + 1, max_outputs=len(panel))
        self.writer.flush()
