"""`model.fit` under MultiWorkerMirroredStrategy: a per-instance fix for keras-team/keras#20585."""

import logging

import tensorflow as tf

from enc_tf.distribute import is_multi_worker

logger = logging.getLogger(__name__)


def _build_from_first_replica(model, iterator=None, data_batch=None):
    # Keras's version reduces the whole peeked batch with strategy.reduce(MEAN),
    # which MultiWorkerMirroredStrategy refuses for a nested structure
    # (keras-team/keras#20585). The batch only serves for its shapes and dtypes:
    # take the first local replica's values instead.
    if iterator is not None:
        for _, _, it in iterator:
            data_batch = tf.nest.map_structure(
                lambda v: (
                    model.distribute_strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues)
                    else v
                ),
                next(it),
            )
            break
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=data_batch)


def _logs_as_vectors(step):
    # Keras reduces each step's logs across workers with
    # strategy.reduce("MEAN", value, axis=0), which fails for the scalar logs;
    # as shape-(1,) vectors the same call returns their mean, a scalar again.
    def wrapped(data):
        return {
            k: tf.reshape(v, (1,)) if tf.is_tensor(v) and v.shape.rank == 0 else v
            for k, v in step(data).items()
        }

    return wrapped


def fix_fit_for_multi_worker(model):
    """Lets `model.fit`/`evaluate` run under a multi-worker strategy (keras-team/keras#20585).

    Two Keras 3.15 bugs stop them under `MultiWorkerMirroredStrategy`:
    `fit` peeks at the first distributed batch to build the metrics and reduces
    it with `strategy.reduce`, which fails with "Attempt to convert a value
    (PerReplica...) to a Tensor"; and the per-step logs are reduced with
    `axis=0`, which fails for scalars. On this model instance only, the peek
    reads the first local replica's batch and the step logs are returned as
    shape-(1,) vectors. Gradients, updates and metrics are untouched. A no-op
    when the model has no multi-worker strategy.
    """
    strategy = model.distribute_strategy
    if not is_multi_worker(strategy):
        return model
    if not hasattr(model, "_maybe_symbolic_build"):
        logger.warning(
            "Keras no longer has Model._maybe_symbolic_build; the keras#20585 fix is not applied."
        )
        return model
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: _build_from_first_replica(
        model, iterator, data_batch
    )
    model.train_step = _logs_as_vectors(model.train_step)
    model.test_step = _logs_as_vectors(model.test_step)
    return model
