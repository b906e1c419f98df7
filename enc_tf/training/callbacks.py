"""Training callbacks: time limit, prediction images, learning rate (the run's files:
`run_state`)."""

import logging
import os
import time

import keras
import numpy as np
import tensorflow as tf

from enc_tf.contracts.images import denormalize
from enc_tf.visualize import colorize

logger = logging.getLogger(__name__)


class TimeLimit(keras.callbacks.Callback):
    """Stops after the epoch during which `minutes` have passed.

    Under a multi-worker strategy the workers decide together (any worker over
    time stops all), so that none waits forever for the others' next step.
    """

    def __init__(self, minutes):
        super().__init__()
        self.seconds = minutes * 60.0
        self.start = None

    def on_train_begin(self, logs=None):  # the first of the run's fit calls starts the clock
        if self.start is None:
            self.start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        over = time.monotonic() - self.start > self.seconds
        strategy = self.model.distribute_strategy
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            over = float(strategy.reduce("SUM", tf.constant(float(over)), axis=None)) > 0
        if over:
            logger.info(
                "Time limit of %.1f minutes reached after epoch %d.", self.seconds / 60, epoch + 1
            )
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
        panel = np.concatenate(
            [
                denormalize(self.images),
                colorize(self.labels, self.palette),
                colorize(prediction, self.palette),
            ],
            axis=2,
        )
        with self.writer.as_default():
            tf.summary.image(
                "input | ground truth | prediction", panel, step=epoch + 1, max_outputs=len(panel)
            )
        self.writer.flush()
