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
from enc_tf.models.precision import require_bfloat16
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
    model_config = config.model
    common = dict(
        backbone=model_config.backbone,
        output_stride=model_config.output_stride,
        aux=model_config.aux,
        dropout=model_config.dropout,
        align_corners=model_config.align_corners,
        sync_batch_norm=sync_batch_norm,
        backbone_weights=None
        if model_config.init_from
        else backbone_weights_path(model_config.backbone_weights, model_config.backbone),
        class_names=list(classes.names),
        palette=[list(c) for c in classes.palette],
    )
    if model_config.arch == "encnet":
        model = build_encnet(
            num_classes,
            se_loss=model_config.se_loss,
            lateral=model_config.lateral,
            num_codes=model_config.num_codes,
            head_channels=model_config.head_channels,
            **common,
        )
    else:
        model = build_fcn(num_classes, **common)
    if model_config.init_from:
        start_from(model, model_config.init_from)
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
    data_config, train_config = config.data, config.train
    augment = AugmentConfig(
        (data_config.scale_min, data_config.scale_max),
        True,
        data_config.rotate_degrees,
        data_config.blur_probability,
        data_config.photometric,
    )
    return PipelineConfig(
        train_config.batch_size,
        data_config.base_size,
        data_config.crop_size,
        augment,
        train_config.seed,
    )


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
    from there; and Grappler must not merge additions into AddN (below). Must run
    before TensorFlow executes its first op.
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
    # Grappler's arithmetic optimizer rewrites chains of adds (the optimizer's
    # `momentum * buf + (grad + l2 * w)`) into one AddN, whose CPU kernel adds its inputs in
    # an order that depends on which input buffer it may reuse (reference counts at run
    # time): the same step then rounds differently from one process to the next (measured:
    # the demo's runs parted at step 92, in momentum slots, by 1-2 float32 ulps).
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})


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
    train_config = config.train
    if "bfloat16" in train_config.mixed_precision:
        require_bfloat16(f"train.mixed_precision {train_config.mixed_precision}")
    if train_config.deterministic:
        make_deterministic()
    keras.utils.set_random_seed(train_config.seed)
    strategy = make_strategy(train_config.strategy)
    chief, task_id = worker_role(strategy)
    if not chief:
        os.makedirs(train_config.run_dir, exist_ok=True)
        return _train(config, strategy, chief, task_id, started)
    with claim_run_directory(train_config.run_dir, config, RUN_CONFIG, restart):
        return _train(config, strategy, chief, task_id, started)


def _train(config, strategy, chief, task_id, started):
    task = TrainingTask(config, strategy, chief, task_id, started)
    task.build_inputs()
    with _dtype_policy(config.train.mixed_precision), strategy.scope():
        task.build_model()
        task.build_plan()
    task.build_callbacks()
    history = task.fit()
    task.finish(history)
    return task.model, history


class TrainingTask:
    """One training run in the order its parts are built (Model Garden's task seams):
    `build_inputs` (sources and pipelines), `build_model` (model, optimizer, losses and
    metrics compiled; the resume point), `build_plan` (the time budget's plan, when there is
    one), `build_callbacks`, `fit` (the `model.fit` calls), `finish` (divergence, the final
    `model.keras`). `train` runs them; each reads the config once and keeps what later parts
    need on the task.
    """

    def __init__(self, config, strategy, chief, task_id, started):
        self.config, self.strategy, self.chief, self.started = config, strategy, chief, started
        train_config = config.train
        self.run_dir = train_config.run_dir
        self.backup = (
            os.path.join(train_config.run_dir, BACKUP)
            if chief
            else os.path.join(train_config.run_dir, BACKUP, f"worker-{task_id}")
        )
        replicas = strategy.num_replicas_in_sync
        if train_config.batch_size % replicas:
            raise ConfigError(
                f"train.batch_size ({train_config.batch_size}) is not divisible by the "
                f"{replicas} replicas."
            )
        if chief:
            save_config(config, os.path.join(train_config.run_dir, RUN_CONFIG))
        self.recorder = RunRecorder(train_config.run_dir, self.backup, chief=chief)
        # A budgeted run that was started before keeps the plan it was started with.
        self.plan = read_plan(self.backup) if train_config.time_budget_minutes else None
        self.held = False  # the plan is one kept from an earlier run of the recipe

    def build_inputs(self):
        """The data sources, the training pipeline and the validation input; the steps per
        epoch of the recipe."""
        train_config = self.config.train
        self.train_source, self.val_source = sources_from_config(self.config.data)
        self.classes = self.train_source.classes
        self.pipeline = training_pipeline(self.config)
        self.steps = train_config.steps_per_epoch or max(
            1, self.train_source.num_examples // train_config.batch_size
        )
        self.val_data = self._input(self.val_source, "val")

    def _input(self, source, mode, repeat=False, start_batch=0):
        """`source`'s batches, distributed over the replicas (`start_batch`: resume a
        training stream where it left off)."""
        model_config = self.config.model

        def dataset(batch, shard):
            pipeline = dataclasses.replace(self.pipeline, batch_size=batch)
            start = start_batch * batch
            return build_dataset(
                source, mode, pipeline, model_config.aux, model_config.se_loss, repeat, shard, start
            )

        return distribute_input(self.strategy, dataset, self.config.train.batch_size)

    def build_model(self):
        """The model, compiled on the recipe's schedule (or the plan's, when resuming a
        budgeted run), with the resume point agreed. Inside the strategy's scope."""
        replicas = self.strategy.num_replicas_in_sync
        self.model = build_model(self.config, self.classes, sync_batch_norm=replicas > 1)
        self._compile()
        self.epochs_done = agree_on_resume_point(
            self.strategy, restore_resume_point(self.model, self.backup)
        )

    def _compile(self):
        self.schedule = _schedule(self.config, self.plan, self.steps)
        ignore = self.train_source.ignore_index
        compile_model(self.model, self.config, self.schedule, self.classes.num_classes, ignore)

    def build_plan(self):
        """The time budget's plan: the run's own (resumed), one kept from an earlier run of
        the recipe on this machine, or measured now; the model is compiled again on its
        schedule. Sets the epochs, steps and validation epochs the fit runs."""
        train_config = self.config.train
        self.cache = (
            plan_cache(self.config, self.strategy) if train_config.time_budget_minutes else None
        )
        if train_config.time_budget_minutes and self.plan is None:
            self.plan = cached_plan(self.cache) if self.cache else None
            self.held = self.plan is not None
            if not self.held:  # a plan kept from an earlier run saves the probe
                probe_data = self._input(self.train_source, "train", repeat=True)
                val_batches = math.ceil(self.val_source.num_examples / train_config.batch_size)
                with _data_errors_as_one_line(self.train_source, self.val_source):
                    self.plan = make_plan(
                        self.config,
                        self.model,
                        self.strategy,
                        probe_data,
                        self.val_data,
                        val_batches,
                        self.steps,
                        self.started,
                    )
            write_plan(self.plan, self.backup)
            self._compile()
        if self.plan is None:
            self.epochs, self.validation_epochs = train_config.epochs, train_config.val_every_epochs
            return
        plan = self.plan
        summary = (
            plan.replanned_summary()
            if plan.replanned_after_epoch
            else plan.kept_summary()
            if self.held
            else plan.summary()
        )
        logger.info("Plan for a budget of %g min: %s.", train_config.time_budget_minutes, summary)
        if plan.total_steps < plan.recipe_steps / 2:
            logger.warning(
                "The budget of %g min fits only %d of the recipe's %d steps on this machine; "
                "expect a weaker model than the recipe's (raise train.time_budget_minutes).",
                train_config.time_budget_minutes,
                plan.total_steps,
                plan.recipe_steps,
            )
        self.epochs, self.steps = plan.epochs, plan.steps_per_epoch
        self.validation_epochs = list(plan.validation_epochs)

    def build_callbacks(self):
        """Learning-rate logging, the time limit, the run's recorder (checkpoints, resume
        state, divergence), and on the chief TensorBoard with prediction images."""
        train_config = self.config.train
        self.recorder.prepare(self.model, self.epochs_done)
        # The recorder comes after the callbacks that add to the epoch's logs.
        self.callbacks = [cb.LearningRateLogger()]
        if train_config.time_limit_minutes:
            self.callbacks.append(cb.TimeLimit(train_config.time_limit_minutes))
        self.callbacks.append(self.recorder)
        if not self.chief:
            return
        samples = build_dataset(
            self.val_source, "val", dataclasses.replace(self.pipeline, batch_size=4), False, False
        )
        with _data_errors_as_one_line(self.val_source):
            sample_images, sample_targets = next(iter(samples.take(1)))
        board = os.path.join(self.run_dir, "tensorboard")
        self.callbacks += [
            keras.callbacks.TensorBoard(board),
            cb.PredictionImages(
                board,
                sample_images,
                sample_targets["seg"],
                self.classes.palette,
                train_config.image_log_every_epochs,
            ),
        ]

    def fit(self):
        """Runs `model.fit` to the planned end and returns the joined history. A plan of
        several epochs is revised after the first, from its measured time; Ctrl-C keeps the
        best model of a run with a scored epoch."""
        model_config, optimizer_config = self.config.model, self.config.optimizer
        logger.info(
            "Training %s-%s on %s: %d classes, %d steps/epoch x %d epochs, lr %.5f (x%.0f heads)",
            model_config.arch,
            model_config.backbone,
            self.config.data.dataset,
            self.classes.num_classes,
            self.steps,
            self.epochs,
            _base_lr(self.config),
            optimizer_config.head_lr_multiplier,
        )
        plan = self.plan
        self.revised = (
            plan is not None
            and plan.epochs > 1
            and not plan.replanned_after_epoch
            and not self.epochs_done
        )
        # A resumed run continues the training stream where the committed epochs left it, so
        # every epoch sees the batches it would have seen in one uninterrupted run.
        train_data = self._training_stream(self.epochs_done)
        histories = []
        try:
            with _data_errors_as_one_line(self.train_source, self.val_source):
                if self.revised:
                    histories.append(self._first_epoch_timed(train_data))
                    if not self.model.stop_training:
                        train_data = self._training_stream(1)
                if not histories or not self.model.stop_training:
                    histories.append(
                        self._fit(train_data, self.epochs_done, self.epochs, self.validation_epochs)
                    )
        except KeyboardInterrupt:  # Ctrl-C: a run with a scored epoch keeps its best model
            recorder = self.recorder
            if self.chief and recorder.best is not None and not is_multi_worker(self.strategy):
                finish_run(
                    self.model, recorder, self.run_dir, recorder.epoch, self.epochs, "interrupted"
                )
            raise
        return _joined(histories)

    def _training_stream(self, epochs_done):
        return self._input(
            self.train_source, "train", repeat=True, start_batch=epochs_done * self.steps
        )

    def _first_epoch_timed(self, train_data):
        """Epoch 1 of a budgeted run, timed; then the plan revised from its time, the schedule
        retargeted to the revised end and the rest of the fit set to follow it."""
        logger.info("Epoch 1/%d, timed to revise the plan:", self.epochs)
        timer = EpochTimes()
        validation = [1] if 1 in self.validation_epochs else []
        history = self._fit(train_data, 0, 1, validation, [timer])
        timer.finish()
        if not self.model.stop_training:
            plan = revise_plan(
                self.config,
                self.plan,
                self.strategy,
                timer,
                self.backup,
                self.started,
                self.held,
                self.cache,
            )
            self.schedule.retarget(plan.decay_start_step, plan.total_steps)
            self.plan, self.epochs = plan, plan.epochs
            self.validation_epochs, self.epochs_done = list(plan.validation_epochs), 1
        return history

    def _fit(self, data, first, last, validation, extra=()):
        return self.model.fit(
            data,
            epochs=last,
            initial_epoch=first,
            steps_per_epoch=self.steps,
            validation_data=self.val_data if validation else None,
            validation_freq=validation or 1,
            callbacks=self.callbacks + list(extra),
            shuffle=False,
            verbose=1 if os.isatty(1) else 2,
        )

    def finish(self, history):
        """Divergence is an error; otherwise the chief writes `model.keras` (the best epoch's
        weights after an early stop)."""
        if self.recorder.diverged is not None:
            raise TrainingDiverged(_divergence_message(self.recorder, self.config))
        if not self.chief:
            return
        epochs_run = (self.epochs_done if not self.revised else 0) + len(history.get("loss", []))
        reason = "stopped at the time limit" if epochs_run < self.epochs else None
        if is_multi_worker(self.strategy):
            reason = None  # the workers' models must stay the same: the last epoch's
        finish_run(self.model, self.recorder, self.run_dir, epochs_run, self.epochs, reason)


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
    optimizer_config, train_config = config.optimizer, config.train
    base_lr = _base_lr(config)
    recipe_warmup = int(optimizer_config.warmup_epochs * steps)
    if plan is None:
        return PolyDecay(
            base_lr, steps * train_config.epochs, optimizer_config.power, recipe_warmup
        )
    if plan.decay_start_step is None:
        return PolyDecay(base_lr, plan.total_steps, optimizer_config.power, plan.warmup_steps)
    return RetargetedPolyDecay(
        base_lr,
        plan.recipe_steps,
        optimizer_config.power,
        plan.warmup_steps,
        plan.decay_start_step,
        plan.total_steps,
    )


def compile_model(model, config, schedule, num_classes, ignore):
    """Compiles `model` for training with the recipe's optimizer (on `schedule`), losses and
    metrics. Call it inside the strategy's scope and the run's dtype policy."""
    optimizer_config, train_config = config.optimizer, config.train
    optimizer = EncNetSGD(
        schedule,
        optimizer_config.momentum,
        l2=optimizer_config.weight_decay
        if optimizer_config.weight_decay_mode == "coupled"
        else 0.0,
        decoupled_weight_decay=optimizer_config.weight_decay
        if optimizer_config.weight_decay_mode == "decoupled"
        else None,
        lr_multipliers={p: optimizer_config.head_lr_multiplier for p in HEAD_PREFIXES},
    )
    if train_config.mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model_config, loss = config.model, config.loss
    losses, weights = encnet_losses(
        model_config.aux, model_config.se_loss, loss.aux_weight, loss.se_weight, ignore
    )
    model.compile(
        optimizer=optimizer,
        loss=losses,
        loss_weights=weights,
        jit_compile=train_config.xla,
        metrics={"seg": [PixelAccuracy(num_classes, ignore), MeanIoU(num_classes, ignore)]},
    )
    fix_fit_for_multi_worker(model)


def make_plan(config, model, strategy, train_data, val_data, val_batches, steps, started):
    """Measures this machine on the run's model and data (`budget.measure`) and plans the
    schedule that fits what is left of `train.time_budget_minutes` (`budget.plan_schedule`).
    `started` is the run's start (`time.monotonic()`): the budget counts from there. Under
    several workers the measurements are averaged, so that every worker plans the same.
    """
    train_config, optimizer_config = config.train, config.optimizer
    measured = measure(model, train_data, val_data, val_batches, train_config.run_dir)
    values = _workers_mean(strategy, [*measured, time.monotonic() - started])
    step, validation, overhead, trace, elapsed = values
    # The planned optimizer traces the step functions again (`trace`).
    return plan_schedule(
        train_config.time_budget_minutes * 60.0 - elapsed - trace,
        step,
        validation,
        overhead,
        train_config.epochs,
        steps,
        int(optimizer_config.warmup_epochs * steps),
        train_config.val_every_epochs,
        machine=describe_machine(),
    )


def _workers_mean(strategy, values):
    """`values` (floats) averaged over the workers, so that every worker plans the same;
    as they are with one worker."""
    if is_multi_worker(strategy):  # every replica contributes its worker's measurements
        local = strategy.run(lambda: tf.constant(values, tf.float32))
        values = strategy.reduce("MEAN", local, axis=None).numpy()
    return [float(x) for x in values]


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
    train_config = config.train
    values = [timer.step_seconds, timer.overhead_seconds, time.monotonic() - started]
    step, overhead, elapsed = _workers_mean(strategy, values)
    left = train_config.time_budget_minutes * 60.0 - elapsed
    limit = train_config.time_limit_minutes
    limit_left = None if limit is None else limit * 60.0 - elapsed
    revised = replan(
        plan,
        left,
        step,
        overhead,
        train_config.val_every_epochs,
        hold=held,
        limit_seconds_left=limit_left,
    )
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
