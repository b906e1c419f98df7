"""tf.distribute for every command: the strategy, this process's role, per-worker input.

Used by training and by `enc-eval` under a `TF_CONFIG` cluster. The Keras `fit`
patch for multi-worker training lives in `enc_tf.training.multi_worker`.
"""

import json
import logging
import os

import tensorflow as tf

logger = logging.getLogger(__name__)


def tf_config_workers():
    """How many tasks the cluster in `TF_CONFIG` names (0 without one)."""
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return sum(len(v) for v in cluster.values())


def make_strategy(name="auto"):
    """`auto`: MultiWorkerMirroredStrategy when TF_CONFIG names a cluster, MirroredStrategy
    when more than one GPU is visible, else the default strategy."""
    if name == "auto":
        if tf_config_workers() > 1:
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
        raise ValueError(
            f"Unknown strategy {name!r}; choose auto, default, mirrored or multi_worker."
        )
    logger.info(
        "Strategy %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync
    )
    return strategy


def is_multi_worker(strategy):
    """Whether `strategy` is a MultiWorkerMirroredStrategy (one or more workers)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def worker_role(strategy):
    """`(is_chief, task_id)` of this process.

    The chief (task type `chief`, or worker 0 when the cluster has no chief)
    writes the run directory; the other workers only keep their own resume
    state. A single-process strategy is its own chief.
    """
    if not is_multi_worker(strategy):
        return True, 0
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type in (None, "chief") or (
        task_type == "worker" and task_id == 0 and not has_chief
    ), task_id


def distribute_input(strategy, make_dataset, global_batch_size):
    """The dataset to give `model.fit` under `strategy`.

    Under a multi-worker strategy each worker builds only its own share of the
    data: `make_dataset(batch_size, shard)` is called with the per-replica
    batch size and `shard=(input pipelines, this pipeline's index)` through
    `distribute_datasets_from_function`, so no worker reads or decodes the
    others' images. Otherwise `make_dataset(global_batch_size, None)`; Keras
    splits its batches across local replicas.
    """
    if not is_multi_worker(strategy):
        return make_dataset(global_batch_size, None)

    def per_worker(context):
        batch = context.get_per_replica_batch_size(global_batch_size)
        return make_dataset(batch, (context.num_input_pipelines, context.input_pipeline_id))

    return strategy.distribute_datasets_from_function(per_worker)
