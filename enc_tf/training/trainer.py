"""Training EncNet / FCN with `model.fit` from a `Config`."""

import contextlib
import dataclasses
import logging
import math
import os
import time

import keras
import tensorflow as tf

from enc_tf.artifacts import BACKUP, RUN_CONFIG, RUN_MODEL, load_keras_model
from enc_tf.config import ConfigError, config_to_dict, save_config
from enc_tf.console import DownloadProgress
from enc_tf.data import (
    AugmentConfig,
    PipelineConfig,
    build_dataset,
    pipeline_data_error,
    sources_from_config,
)
from enc_tf.distribute import distribute_input, is_multi_worker, make_strategy, worker_role
from enc_tf.errors import EncTfError, TrainingDiverged
from enc_tf.losses import encnet_losses
from enc_tf.machine import describe_machine
from enc_tf.metrics import MeanIoU, PixelAccuracy
from enc_tf.models import build_encnet, build_fcn, save_model_atomic
from enc_tf.models.transfer import transfer_weights
from enc_tf.optimizers import HEAD_PREFIXES, EncNetSGD, PolyDecay, RetargetedPolyDecay
from enc_tf.presets import backbone_weights_path, model_path
from enc_tf.training import callbacks as cb
from enc_tf.training.budget import (
    EpochTimes,
    cached_plan,
    keep_plan,
    measure,
    plan_cache_path,
    plan_schedule,
    read_plan,
    replan,
    write_plan,
)
from enc_tf.training.multi_worker import fix_fit_for_multi_worker
from enc_tf.training.run_dir import claim_run_directory
from enc_tf.training.run_state import RunRecorder, restore_resume_point

logger = logging.getLogger(__name__)


def build_model(config, classes, sync_batch_norm):
    """The model a `ModelConfig` describes for `classes` (a `ClassInfo`, saved with the
    model), started from `model.init_from` (a trained model) or with its backbone from
    `model.backbone_weights` (ImageNet weights)."""
    num_classes = classes.num_classes
    m = config.model
    common = dict(
        backbone=m.backbone,
        output_stride=m.output_stride,
        aux=m.aux,
        dropout=m.dropout,
        align_corners=m.align_corners,
        sync_batch_norm=sync_batch_norm,
        backbone_weights=None
        if m.init_from
        else backbone_weights_path(m.backbone_weights, m.backbone),
        class_names=list(classes.names),
        palette=[list(c) for c in classes.palette],
    )
    if m.arch == "encnet":
        model = build_encnet(
            num_classes,
            se_loss=m.se_loss,
            lateral=m.lateral,
            num_codes=m.num_codes,
            head_channels=m.head_channels,
            **common,
        )
    else:
        model = build_fcn(num_classes, **common)
    if m.init_from:
        start_from(model, m.init_from)
    return model


def start_from(model, spec):
    """Copies the weights of the trained model `spec` names (preset, URL, `.keras`, run
    directory) into `model` (see `transfer_weights`) and logs what was copied and reset."""
    path = model_path(spec, DownloadProgress())
    source = load_keras_model(path, fold=False).keras_model
    try:
        report = transfer_weights(source, model, source_name=f"model.init_from {spec}")
    except ValueError as err:
        raise ConfigError(" ".join(str(err).split())) from err
    logger.info("Fine-tuning from %s: %s", spec, report.summary())
    return report


def training_pipeline(config):
    """The `PipelineConfig` of a run's training batches (augmentation as configured)."""
    d, t = config.data, config.train
    augment = AugmentConfig(
        (d.scale_min, d.scale_max), True, d.rotate_degrees, d.blur_probability, d.photometric
    )
    return PipelineConfig(t.batch_size, d.base_size, d.crop_size, augment, t.seed)


@contextlib.contextmanager
def _dtype_policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@contextlib.contextmanager
def _data_errors_as_one_line(*sources):
    """A bad sample met inside tf.data (a mask value, a damaged shard) becomes a one-line
    `DataError` naming the file. It is raised outside the `except` block, so that no
    traceback keeps the iterators (and their decoding threads) alive while the process exits."""
    failure = None
    try:
        yield
    except tf.errors.OpError as err:
        failure = next(filter(None, (pipeline_data_error(err, source) for source in sources)), None)
        if failure is None:
            raise
    if failure is not None:
        raise failure


def make_deterministic():
    """Same seed, data, machine and TF version -> the same weights, bit for bit.

    TensorFlow's op determinism picks deterministic kernels and orders tf.data's
    outputs; on a CPU, one intra-op thread is also needed: a multi-threaded matrix
    product (the gradient of a 1x1 convolution, say) adds its partial sums in the
    order its threads finish, which changes the last bit under load and grows
    from there. Must run before TensorFlow executes its first op.
    """
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as err:  # the runtime already started in this process
        raise EncTfError(
            "train.deterministic=true must be set before TensorFlow runs its first op in the "
            f"process (start a new one): {err}"
        ) from err
    tf.config.experimental.enable_op_determinism()


def train(config, restart=False):
    """Runs a training job; returns `(model, history)`.

    The run directory receives the resolved `config.yaml`, `checkpoints/last.keras`
    and `best.keras` (written atomically), `backup/` (resume state: a killed run
    started again with the same config continues where it stopped), `log.csv`,
    `tensorboard/` and the final `model.keras`. Under a multi-worker strategy
    the chief writes all of these; every other worker keeps only its resume
    state, in `backup/worker-<task id>/`. The chief holds the directory for the
    run's life (`enc_tf.training.run_dir`): a second training on it, or a changed
    configuration, is refused; `restart=True` moves an existing run aside first.
    """
    started = time.monotonic()
    t = config.train
    if t.deterministic:
        make_deterministic()
    keras.utils.set_random_seed(t.seed)
    strategy = make_strategy(t.strategy)
    chief, task_id = worker_role(strategy)
    if not chief:
        os.makedirs(t.run_dir, exist_ok=True)
        return _train(config, strategy, chief, task_id, started)
    with claim_run_directory(t.run_dir, config, RUN_CONFIG, restart):
        return _train(config, strategy, chief, task_id, started)


def _train(config, strategy, chief, task_id, started):
    t = config.train
    run_dir = t.run_dir
    if chief:
        save_config(config, os.path.join(run_dir, RUN_CONFIG))
    replicas = strategy.num_replicas_in_sync
    if t.batch_size % replicas:
        raise ConfigError(
            f"train.batch_size ({t.batch_size}) is not divisible by the {replicas} replicas."
        )

    train_source, val_source = sources_from_config(config.data)
    num_classes = train_source.classes.num_classes
    ignore = train_source.ignore_index
    pipeline = training_pipeline(config)
    se_loss = config.model.se_loss  # validate() refuses se_loss for FCN
    steps = t.steps_per_epoch or max(1, train_source.num_examples // t.batch_size)
    o = config.optimizer
    backup = (
        os.path.join(run_dir, BACKUP)
        if chief
        else os.path.join(run_dir, BACKUP, f"worker-{task_id}")
    )
    # A budgeted run that was started before keeps the plan it was started with.
    plan = read_plan(backup) if t.time_budget_minutes else None
    recorder = RunRecorder(run_dir, backup, chief=chief)

    def dataset(source, mode, repeat=False, start_batch=0):
        return lambda batch, shard: build_dataset(
            source,
            mode,
            dataclasses.replace(pipeline, batch_size=batch),
            config.model.aux,
            se_loss,
            repeat,
            shard,
            start=start_batch * batch,
        )

    val_data = distribute_input(strategy, dataset(val_source, "val"), t.batch_size)
    with _dtype_policy(t.mixed_precision), strategy.scope():
        model = build_model(config, train_source.classes, sync_batch_norm=replicas > 1)
        schedule = _schedule(config, plan, steps)
        compile_model(model, config, schedule, num_classes, ignore)
        epochs_done = agree_on_resume_point(strategy, restore_resume_point(model, backup))
        # A plan kept from an earlier run of this recipe on this machine saves the probe.
        cache = plan_cache(config, strategy) if t.time_budget_minutes else None
        held = False
        if t.time_budget_minutes and plan is None:
            plan = cached_plan(cache) if cache else None
            held = plan is not None
            if not held:
                probe_data = distribute_input(
                    strategy, dataset(train_source, "train", repeat=True), t.batch_size
                )
                val_batches = math.ceil(val_source.num_examples / t.batch_size)
                with _data_errors_as_one_line(train_source, val_source):
                    plan = make_plan(
                        config, model, strategy, probe_data, val_data, val_batches, steps, started
                    )
            write_plan(plan, backup)
            schedule = _schedule(config, plan, steps)
            compile_model(model, config, schedule, num_classes, ignore)
    if plan is not None:
        summary = (
            plan.replanned_summary()
            if plan.replanned_after_epoch
            else plan.kept_summary()
            if held
            else plan.summary()
        )
        logger.info("Plan for a budget of %g min: %s.", t.time_budget_minutes, summary)
        if plan.total_steps < plan.recipe_steps / 2:
            logger.warning(
                "The budget of %g min fits only %d of the recipe's %d steps on this machine; "
                "expect a weaker model than the recipe's (raise train.time_budget_minutes).",
                t.time_budget_minutes,
                plan.total_steps,
                plan.recipe_steps,
            )
        epochs, steps, validation_freq = plan.epochs, plan.steps_per_epoch, plan.validation_epochs
        validation_freq = list(validation_freq)
    else:
        epochs, validation_freq = t.epochs, t.val_every_epochs
    recorder.prepare(model, epochs_done)

    # A resumed run continues the training stream where the committed epochs left it, so
    # every epoch sees the batches it would have seen in one uninterrupted run.
    train_data = distribute_input(
        strategy,
        dataset(train_source, "train", repeat=True, start_batch=epochs_done * steps),
        t.batch_size,
    )

    # The recorder comes after the callbacks that add to the epoch's logs.
    callbacks = [cb.LearningRateLogger()]
    if t.time_limit_minutes:
        callbacks.append(cb.TimeLimit(t.time_limit_minutes))
    callbacks.append(recorder)
    if chief:
        samples = build_dataset(
            val_source, "val", dataclasses.replace(pipeline, batch_size=4), False, False
        )
        with _data_errors_as_one_line(val_source):
            sample_images, sample_targets = next(iter(samples.take(1)))
        callbacks += [
            keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard")),
            cb.PredictionImages(
                os.path.join(run_dir, "tensorboard"),
                sample_images,
                sample_targets["seg"],
                train_source.classes.palette,
                t.image_log_every_epochs,
            ),
        ]
    logger.info(
        "Training %s-%s on %s: %d classes, %d steps/epoch x %d epochs, lr %.5f (x%.0f heads)",
        config.model.arch,
        config.model.backbone,
        config.data.dataset,
        num_classes,
        steps,
        epochs,
        _base_lr(config),
        o.head_lr_multiplier,
    )
    # A plan of several epochs is revised after the first, from its measured time.
    revise = (
        plan is not None and plan.epochs > 1 and not plan.replanned_after_epoch and not epochs_done
    )

    def fit(data, first, last, validation, extra=()):
        return model.fit(
            data,
            epochs=last,
            initial_epoch=first,
            steps_per_epoch=steps,
            validation_data=val_data if validation else None,
            validation_freq=validation or 1,
            callbacks=callbacks + list(extra),
            shuffle=False,
            verbose=1 if os.isatty(1) else 2,
        )

    histories = []
    try:
        with _data_errors_as_one_line(train_source, val_source):
            if revise:
                logger.info("Epoch 1/%d, timed to revise the plan:", epochs)
                timer = EpochTimes()
                histories.append(
                    fit(train_data, 0, 1, [1] if 1 in validation_freq else [], [timer])
                )
                timer.finish()
                if not model.stop_training:
                    plan = revise_plan(config, plan, strategy, timer, backup, started, held, cache)
                    schedule.retarget(plan.decay_start_step, plan.total_steps)
                    epochs, validation_freq, epochs_done = (
                        plan.epochs,
                        list(plan.validation_epochs),
                        1,
                    )
                    train_data = distribute_input(
                        strategy,
                        dataset(train_source, "train", repeat=True, start_batch=steps),
                        t.batch_size,
                    )
            if not histories or not model.stop_training:
                histories.append(fit(train_data, epochs_done, epochs, validation_freq))
    except KeyboardInterrupt:  # Ctrl-C: a run with a scored epoch keeps its best model
        if chief and recorder.best is not None and not is_multi_worker(strategy):
            finish_run(model, recorder, run_dir, recorder.epoch, epochs, "interrupted")
        raise
    history = _joined(histories)
    if recorder.diverged is not None:
        raise TrainingDiverged(_divergence_message(recorder, config))
    if chief:
        epochs_run = (epochs_done if not revise else 0) + len(history.get("loss", []))
        reason = "stopped at the time limit" if epochs_run < epochs else None
        if is_multi_worker(strategy):
            reason = None  # the workers' models must stay the same: the last epoch's
        finish_run(model, recorder, run_dir, epochs_run, epochs, reason)
    return model, history


def _joined(histories):
    """One `History.history` of several `fit` calls, in order."""
    joined = {}
    for history in histories:
        for key, values in history.history.items():
            joined.setdefault(key, []).extend(values)
    return joined


def _base_lr(config):
    """The recipe's learning rate at its batch size (`optimizer.base_lr` is per 16 images)."""
    return config.optimizer.base_lr * config.train.batch_size / 16.0


def _schedule(config, plan, steps):
    """The learning-rate schedule: the recipe's, or the budget plan's: the recipe's first
    epoch, then the same decay ending on the last planned step (`RetargetedPolyDecay`, so that
    a revised plan moves the end); a plan of one epoch has its own schedule."""
    o, t = config.optimizer, config.train
    base_lr = _base_lr(config)
    recipe_warmup = int(o.warmup_epochs * steps)
    if plan is None:
        return PolyDecay(base_lr, steps * t.epochs, o.power, recipe_warmup)
    if plan.decay_start_step is None:
        return PolyDecay(base_lr, plan.total_steps, o.power, plan.warmup_steps)
    return RetargetedPolyDecay(
        base_lr,
        plan.recipe_steps,
        o.power,
        plan.warmup_steps,
        plan.decay_start_step,
        plan.total_steps,
    )


def compile_model(model, config, schedule, num_classes, ignore):
    """Compiles `model` for training with the recipe's optimizer (on `schedule`), losses and
    metrics. Call it inside the strategy's scope and the run's dtype policy."""
    o, t = config.optimizer, config.train
    optimizer = EncNetSGD(
        schedule,
        o.momentum,
        l2=o.weight_decay if o.weight_decay_mode == "coupled" else 0.0,
        decoupled_weight_decay=o.weight_decay if o.weight_decay_mode == "decoupled" else None,
        lr_multipliers={p: o.head_lr_multiplier for p in HEAD_PREFIXES},
    )
    if t.mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    m, loss = config.model, config.loss
    losses, weights = encnet_losses(m.aux, m.se_loss, loss.aux_weight, loss.se_weight, ignore)
    model.compile(
        optimizer=optimizer,
        loss=losses,
        loss_weights=weights,
        jit_compile=t.xla,
        metrics={"seg": [PixelAccuracy(num_classes, ignore), MeanIoU(num_classes, ignore)]},
    )
    fix_fit_for_multi_worker(model)


def make_plan(config, model, strategy, train_data, val_data, val_batches, steps, started):
    """Measures this machine on the run's model and data (`budget.measure`) and plans the
    schedule that fits what is left of `train.time_budget_minutes` (`budget.plan_schedule`).
    `started` is the run's start (`time.monotonic()`): the budget counts from there. Under
    several workers the measurements are averaged, so that every worker plans the same.
    """
    t, o = config.train, config.optimizer
    measured = measure(model, train_data, val_data, val_batches, t.run_dir)
    values = [*measured, time.monotonic() - started]
    if is_multi_worker(strategy):  # every replica contributes its worker's measurements
        local = strategy.run(lambda: tf.constant(values, tf.float32))
        values = strategy.reduce("MEAN", local, axis=None).numpy()
    step, validation, overhead, trace, elapsed = (float(x) for x in values)
    # The planned optimizer traces the step functions again (`trace`).
    return plan_schedule(
        t.time_budget_minutes * 60.0 - elapsed - trace,
        step,
        validation,
        overhead,
        t.epochs,
        steps,
        int(o.warmup_epochs * steps),
        t.val_every_epochs,
        machine=describe_machine(),
    )


def plan_cache(config, strategy):
    """Where this recipe's plan on this machine is kept (`budget.plan_cache_path`); None under
    several workers, whose plan is agreed on from all their measurements."""
    if is_multi_worker(strategy):
        return None
    recipe = config_to_dict(config)
    recipe["train"].pop("run_dir")
    return plan_cache_path(recipe, describe_machine())


def revise_plan(config, plan, strategy, timer, backup, started, held=False, cache=None):
    """`plan` revised after its first epoch (`budget.replan`, holding a plan kept from an
    earlier run when `held`) from `timer` (`EpochTimes` of that epoch) and the budget left since
    `started`, written to `backup` and kept at `cache`, and logged. Under several workers the
    measurements are averaged, so that every worker plans the same."""
    t = config.train
    values = [timer.step_seconds, timer.overhead_seconds, time.monotonic() - started]
    if is_multi_worker(strategy):
        local = strategy.run(lambda: tf.constant(values, tf.float32))
        values = strategy.reduce("MEAN", local, axis=None).numpy()
    step, overhead, elapsed = (float(x) for x in values)
    left = t.time_budget_minutes * 60.0 - elapsed
    revised = replan(plan, left, step, overhead, t.val_every_epochs, hold=held)
    write_plan(revised, backup)
    if cache:
        keep_plan(revised, cache)
    logger.info("Plan after epoch 1: %s.", revised.replanned_summary())
    return revised


def finish_run(model, recorder, run_dir, epochs_run, epochs, early=None):
    """Writes the run's `model.keras`. A run that ended normally keeps its last epoch's
    weights. One that ended early (`early` says why: the time limit, Ctrl-C) has not
    reached the end of its schedule, so its last epoch need not be its best: `model` takes
    the weights of `checkpoints/best.keras` (the best monitored score) when there is one,
    and the run says which epoch that is. Returns the epoch (0-based) `model.keras` holds.
    """
    last = epochs_run - 1
    held = last
    best_path = recorder.checkpoint_path("best")
    if early and recorder.best is not None and os.path.isfile(best_path):
        held, score = recorder.best
        if held != last:
            model.load_weights(best_path)
        logger.info(
            "Training %s after epoch %d of %d: model.keras holds the best epoch, %d "
            "(%s %.4f), not the last.",
            early,
            epochs_run,
            epochs,
            held + 1,
            recorder.monitor,
            score,
        )
    save_model_atomic(model, os.path.join(run_dir, RUN_MODEL))
    return held


def _divergence_message(recorder, config):
    epoch, batch, value = recorder.diverged
    where = f"epoch {epoch + 1}" + (f", batch {batch + 1}" if batch is not None else "")
    last = recorder.last_good_checkpoint()
    kept = (
        f"the last good checkpoint is {last[0]} (epoch {last[1] + 1})"
        if last
        else "no epoch had finished, so there is no checkpoint"
    )
    return (
        f"The loss became {value} at {where} (optimizer.base_lr={config.optimizer.base_lr}); "
        f"nothing was written for that epoch: {kept}, and starting the same run again resumes "
        "after the last good epoch. "
        "Lower optimizer.base_lr, check the labels, or turn off mixed precision."
    )


def agree_on_resume_point(strategy, epochs_done):
    """Under several workers, checks that every worker resumes after the same epoch."""
    if not is_multi_worker(strategy):
        return epochs_done
    total = float(strategy.reduce("SUM", tf.constant(float(epochs_done)), axis=None))
    count = float(strategy.reduce("SUM", tf.constant(1.0), axis=None))
    if total != epochs_done * count:
        raise EncTfError(
            f"The workers' resume points disagree: this worker's is after epoch {epochs_done}, "
            f"the mean over workers is {total / count:g}. Delete the newer epoch-*.weights.h5 "
            "files in backup/ so they agree.",
            exit_code=1,
        )
    return epochs_done
