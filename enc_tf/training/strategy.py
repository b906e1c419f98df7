"""Choosing the tf.distribute strategy."""

import json
import logging
import os

import tensorflow as tf

logger = logging.getLogger(__name__)


def make_strategy(name="auto"):
    """`auto`: MultiWorkerMirroredStrategy when TF_CONFIG names a cluster, MirroredStrategy
    when more than one GPU is visible, else the default strategy."""
    if name == "auto":
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
        if sum(len(v) for v in cluster.values()) > 1:
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif name == "default":
        strategy = tf.distribute.get_strategy()
    else:
        raise ValueError(f"Unknown strategy {name!r}; choose auto, default, mirrored or multi_worker.")
    logger.info("Strategy %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy
