"""Training EncNet / FCN with `model.fit` from a `Config`."""

import contextlib
import dataclasses
import logging
import os

import keras

from enc_tf.convert.pytorch_encoding import load_backbone_state, read_state_dict
from enc_tf.data import (
    AugmentConfig,
    PipelineConfig,
    build_dataset,
    ensure_context_shapes,
    folder_source,
    get_source,
    read_tfrecord_source,
)
from enc_tf.losses import encnet_losses
from enc_tf.metrics import MeanIoU, PixelAccuracy
from enc_tf.models import build_encnet, build_fcn, save_model_atomic
from enc_tf.training import callbacks as cb
from enc_tf.training.config import ConfigError, save_config
from enc_tf.training.optimizer import HEAD_PREFIXES, EncNetSGD, PolyDecay
from enc_tf.training.strategy import distribute_input, fix_fit_for_multi_worker, make_strategy, worker_role

logger = logging.getLogger(__name__)


def make_sources(data):
    """The training and validation sources a `DataConfig` names."""
    if data.dataset == "context_shapes":
        root = ensure_context_shapes(
            data.root or None, data.context_shapes_train, data.context_shapes_val, data.context_shapes_size
        )
        return folder_source(root, data.train_split), folder_source(root, data.val_split)
    if data.dataset == "tfrecord":
        return (read_tfrecord_source(os.path.join(data.root, data.train_split)),
                read_tfrecord_source(os.path.join(data.root, data.val_split)))
    kwargs = {}
    if data.dataset == "folder":
        kwargs = {"classes": data.classes or None, "label_mapping": data.label_mapping}
    return (get_source(data.dataset, data.root, data.train_split, **kwargs),
            get_source(data.dataset, data.root, data.val_split, **kwargs))


def build_model(config, num_classes, sync_batch_norm):
    """The model a `ModelConfig` describes, with its backbone initialised from a local file."""
    m = config.model
    weights = None if m.backbone_weights == "none" else m.backbone_weights
    if weights is not None and not os.path.isfile(weights):
        raise ConfigError(f"model.backbone_weights: file not found: {weights}")
    common = dict(
        backbone=m.backbone, output_stride=m.output_stride, aux=m.aux, dropout=m.dropout,
        sync_batch_norm=sync_batch_norm,
        backbone_weights=weights if m.backbone in ("resnet50", "resnet101") else None,
    )
    if m.arch == "encnet":
        model = build_encnet(num_classes, se_loss=m.se_loss, lateral=m.lateral, num_codes=m.num_codes, **common)
    else:
        model = build_fcn(num_classes, **common)
    if weights is not None and m.backbone.endswith("s"):
        load_backbone_state(model.get_layer("backbone"), read_state_dict(weights), source=weights)
    return model


@contextlib.contextmanager
def _dtype_policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32" if name == "none" else name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def train(config):
    """Runs a training job; returns `(model, history)`.

    The run directory receives the resolved `config.yaml`, `checkpoints/last.keras`
    and `best.keras` (written atomically), `backup/` (resume state: a killed run
    started again with the same config continues where it stopped), `log.csv`,
    `tensorboard/` and the final `model.keras`. Under a multi-worker strategy
    the chief writes all of these; every other worker keeps only its resume
    state, in `backup/worker-<task id>/`.
    """
    t = config.train
    run_dir = t.run_dir
    keras.utils.set_random_seed(t.seed)
    strategy = make_strategy(t.strategy)
    chief, task_id = worker_role(strategy)
    os.makedirs(run_dir, exist_ok=True)
    if chief:
        save_config(config, os.path.join(run_dir, "config.yaml"))
    replicas = strategy.num_replicas_in_sync
    if t.batch_size % replicas:
        raise ConfigError(f"train.batch_size ({t.batch_size}) is not divisible by the {replicas} replicas.")

    train_source, val_source = make_sources(config.data)
    num_classes = train_source.classes.num_classes
    ignore = train_source.ignore_index
    d = config.data
    augment = AugmentConfig((d.scale_min, d.scale_max), True, d.rotate_degrees, d.blur_probability, d.photometric)
    pipeline = PipelineConfig(t.batch_size, d.base_size, d.crop_size, augment, t.seed)
    se_loss = config.model.se_loss  # validate() refuses se_loss for FCN

    def dataset(source, mode, repeat=False):
        return lambda batch, shard: build_dataset(
            source, mode, dataclasses.replace(pipeline, batch_size=batch), config.model.aux, se_loss, repeat, shard
        )

    train_data = distribute_input(strategy, dataset(train_source, "train", repeat=True), t.batch_size)
    val_data = distribute_input(strategy, dataset(val_source, "val"), t.batch_size)
    steps = t.steps_per_epoch or max(1, train_source.num_examples // t.batch_size)
    total_steps = steps * t.epochs

    o = config.optimizer
    base_lr = o.base_lr * t.batch_size / 16.0
    schedule = PolyDecay(base_lr, total_steps, o.power, int(o.warmup_epochs * steps))
    with _dtype_policy(t.mixed_precision), strategy.scope():
        model = build_model(config, num_classes, sync_batch_norm=replicas > 1)
        optimizer = EncNetSGD(
            schedule, o.momentum,
            l2=o.weight_decay if o.weight_decay_mode == "coupled" else 0.0,
            decoupled_weight_decay=o.weight_decay if o.weight_decay_mode == "decoupled" else None,
            lr_multipliers={p: o.head_lr_multiplier for p in HEAD_PREFIXES},
        )
        if t.mixed_precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        losses, weights = encnet_losses(config.model.aux, se_loss, config.loss.aux_weight, config.loss.se_weight, ignore)
        model.compile(
            optimizer=optimizer, loss=losses, loss_weights=weights, jit_compile=t.xla,
            metrics={"seg": [PixelAccuracy(num_classes, ignore), MeanIoU(num_classes, ignore)]},
        )
        fix_fit_for_multi_worker(model)

    backup = os.path.join(run_dir, "backup") if chief else os.path.join(run_dir, "backup", f"worker-{task_id}")
    callbacks = [
        keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False, double_checkpoint=True),
        cb.StopOnNonFiniteLoss(),
        cb.LearningRateLogger(),
    ]
    if chief:
        samples = build_dataset(val_source, "val", dataclasses.replace(pipeline, batch_size=4), False, False)
        sample_images, sample_targets = next(iter(samples.take(1)))
        callbacks += [
            cb.AtomicCheckpoint(os.path.join(run_dir, "checkpoints")),
            keras.callbacks.CSVLogger(os.path.join(run_dir, "log.csv"), append=True),
            keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard")),
            cb.PredictionImages(
                os.path.join(run_dir, "tensorboard"), sample_images, sample_targets["seg"],
                train_source.classes.palette, t.image_log_every_epochs,
            ),
        ]
    if t.time_limit_minutes:
        callbacks.append(cb.TimeLimit(t.time_limit_minutes))
    logger.info(
        "Training %s-%s on %s: %d classes, %d steps/epoch x %d epochs, lr %.5f (x%.0f heads)",
        config.model.arch, config.model.backbone, d.dataset, num_classes, steps, t.epochs, base_lr, o.head_lr_multiplier,
    )
    history = model.fit(
        train_data, epochs=t.epochs, steps_per_epoch=steps, validation_data=val_data,
        validation_freq=t.val_every_epochs, callbacks=callbacks, shuffle=False, verbose=1 if os.isatty(1) else 2,
    )
    stopped = any(isinstance(c, cb.StopOnNonFiniteLoss) and c.stopped_at is not None for c in callbacks)
    if chief and not stopped:
        save_model_atomic(model, os.path.join(run_dir, "model.keras"))
    return model, history.history
