"""Training to a time budget (`train.time_budget_minutes`): measure, then plan.

A recipe fixes its schedule in steps (`train.epochs` x `train.steps_per_epoch`), and a
slow machine that cannot run them all in the time it has would be stopped part-way, with
the learning rate still high and the model unfinished. With a budget, the trainer first
measures this machine: a few training steps (after the one that traces the step
function), a few validation batches and one checkpoint write, on the run's own model and
data, after which the model and optimizer are put back exactly as they were. `plan_schedule`
then picks the number of epochs that fits the budget, at most the recipe's, and scales
the whole schedule to it: the first epoch follows the recipe's learning rate (its warm-up
included), after which the polynomial decay ends on the last planned step, and validation
keeps its points in proportion, with one always after the last epoch. The run ends where the
recipe ends, only sooner.

A few probe steps can misjudge a machine (another job finishing, caches still cold), so the
first epoch is timed as well and `replan` fits the epochs after it to the budget left, from
that measurement: the schedule's end moves (`RetargetedPolyDecay`), its first epoch does not.
As the first epoch is the recipe's whatever the plan, two runs that end with the same plan
train the same model (with `train.deterministic`, bit for bit).

The plan is written to the run's `backup/plan.json` before training starts and again when it
is revised, and a run started again after a kill resumes with the plan it had (not a new
measurement), so its schedule does not change half-way. The revised plan is also kept in the
cache (`$ENC_TF_HOME/plans/`, by recipe and machine): a later run of the same recipe on the
same machine starts from it without a probe, and keeps it unless its first epoch shows that it
no longer fits the budget or that the budget now fits two epochs more. Two runs on one machine
therefore follow one plan, and with `train.deterministic` give the same model, while a machine
that became much slower or faster still gets a plan of its own.
"""

import dataclasses
import hashlib
import json
import logging
import math
import os
import statistics
import time

import keras

from enc_tf.errors import EncTfError
from enc_tf.files import cache_home, temporary_path, write_text_atomic
from enc_tf.training.run_state import read_variable

logger = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
PLAN_CACHE_DIR = "plans"  # under the cache home: the plans kept per recipe and machine
PROBE_STEPS = 6  # timed training steps, after the traced first ones
PROBE_WARMUP_STEPS = 2  # the first traces the step function; the second settles caches
PROBE_VALIDATION_BATCHES = 2
SAFETY = 0.95  # the share of the remaining budget that is planned; the rest absorbs noise


@dataclasses.dataclass(frozen=True)
class Plan:
    """The schedule a run will follow. Epochs are counted from 1 in `validation_epochs`."""

    epochs: int
    steps_per_epoch: int
    warmup_steps: int
    validation_epochs: tuple
    recipe_epochs: int
    recipe_steps_per_epoch: int
    step_seconds: float
    validation_seconds: float
    epoch_overhead_seconds: float
    expected_seconds: float
    budget_seconds: float
    machine: str = ""
    replanned_after_epoch: int = 0  # 0: as first planned; else revised after this epoch

    @property
    def total_steps(self):
        return self.epochs * self.steps_per_epoch

    @property
    def recipe_steps(self):
        return self.recipe_epochs * self.recipe_steps_per_epoch

    @property
    def decay_start_step(self):
        """The step from which the learning rate decays to the plan's end; before it the
        recipe's schedule runs (None: the plan's own schedule from the start, for a run of
        one epoch)."""
        return self.steps_per_epoch if self.epochs > 1 else None

    def summary(self):
        share = self.total_steps / self.recipe_steps
        return (
            f"{self.epochs} epochs x {self.steps_per_epoch} steps = {self.total_steps} steps "
            f"({share:.0%} of the recipe's {self.recipe_steps}), warm-up {self.warmup_steps} "
            f"steps, validation after epoch(s) {', '.join(map(str, self.validation_epochs))}; "
            f"measured {self.step_seconds:.2f} s/step and {self.validation_seconds:.1f} s per "
            f"validation pass on {self.machine or 'this machine'}: expected "
            f"{self.expected_seconds / 60:.1f} min of training in the "
            f"{max(0.0, self.budget_seconds) / 60:.1f} min left of the budget"
        )

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=1)

    def kept_summary(self):
        """One line on a plan kept from an earlier run."""
        return (
            f"{self.epochs} epochs x {self.steps_per_epoch} steps = {self.total_steps} steps "
            f"({self.total_steps / self.recipe_steps:.0%} of the recipe's {self.recipe_steps}), "
            f"warm-up {self.warmup_steps} steps, validation after epoch(s) "
            f"{', '.join(map(str, self.validation_epochs))}, kept from an earlier run of this "
            f"recipe on {self.machine or 'this machine'} (it ran at {self.step_seconds:.2f} "
            "s/step); the first epoch checks that it still fits"
        )

    def replanned_summary(self):
        """One line on a revised plan: the epochs, and what the measured first epoch said."""
        return (
            f"{self.epochs} epochs x {self.steps_per_epoch} steps = {self.total_steps} steps "
            f"({self.total_steps / self.recipe_steps:.0%} of the recipe's {self.recipe_steps}), "
            f"validation after epoch(s) {', '.join(map(str, self.validation_epochs))}; epoch "
            f"{self.replanned_after_epoch} ran at {self.step_seconds:.2f} s/step: expected "
            f"{self.expected_seconds / 60:.1f} min for the rest in the "
            f"{max(0.0, self.budget_seconds) / 60:.1f} min left of the budget"
        )

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        data["validation_epochs"] = tuple(data["validation_epochs"])
        return cls(**data)


def recipe_validation_epochs(epochs, val_every_epochs):
    """The epochs (from 1) after which a recipe validates: every `val_every_epochs`."""
    return tuple(range(val_every_epochs, epochs + 1, val_every_epochs))


def _validation_points(recipe_epochs, val_every_epochs, epochs):
    """The validation epochs of a plan of `epochs`: the recipe's points scaled in proportion,
    and always the last epoch."""
    recipe_validations = recipe_validation_epochs(recipe_epochs, val_every_epochs)
    scale = epochs / recipe_epochs
    return tuple(sorted({max(1, round(e * scale)) for e in recipe_validations} | {epochs}))


def plan_schedule(
    budget_seconds,
    step_seconds,
    validation_seconds,
    epoch_overhead_seconds,
    recipe_epochs,
    steps_per_epoch,
    recipe_warmup_steps,
    val_every_epochs,
    machine="",
):
    """The `Plan` that fits `budget_seconds` (the time left for training) on a machine that
    takes `step_seconds` per training step, `validation_seconds` per validation pass and
    `epoch_overhead_seconds` per epoch end (checkpoints), for a recipe of `recipe_epochs` x
    `steps_per_epoch` steps with `recipe_warmup_steps` of warm-up that validates every
    `val_every_epochs` epochs.

    Keeps the recipe's epoch length and picks the number of epochs (the recipe's when they
    fit); when not even one epoch fits, one shorter epoch is planned (one step when the
    budget was spent before training began). The validation points are scaled to the planned
    epochs, and the last epoch is always validated (it is the one a schedule that ends on plan
    is judged by). A plan of several epochs keeps the recipe's warm-up (its first epoch is the
    recipe's); a single epoch scales the warm-up with its share of the recipe.
    """
    for name, value in {
        "step_seconds": step_seconds,
        "recipe_epochs": recipe_epochs,
        "steps_per_epoch": steps_per_epoch,
        "val_every_epochs": val_every_epochs,
    }.items():
        if not value > 0:
            raise ValueError(f"plan_schedule: {name} must be positive, got {value}.")
    if validation_seconds < 0 or epoch_overhead_seconds < 0 or recipe_warmup_steps < 0:
        raise ValueError(
            "plan_schedule: validation_seconds, epoch_overhead_seconds and recipe_warmup_steps "
            f"must be >= 0, got {validation_seconds}, {epoch_overhead_seconds}, "
            f"{recipe_warmup_steps}."
        )
    validations = len(_validation_points(recipe_epochs, val_every_epochs, recipe_epochs))
    available = max(0.0, budget_seconds) * SAFETY - validations * validation_seconds
    per_epoch = steps_per_epoch * step_seconds + epoch_overhead_seconds
    epochs = max(1, min(recipe_epochs, math.floor(available / per_epoch)))
    steps = steps_per_epoch
    if available < per_epoch:  # not one whole epoch: one shorter one
        steps = max(1, min(steps, math.floor((available - epoch_overhead_seconds) / step_seconds)))
    planned_validations = _validation_points(recipe_epochs, val_every_epochs, epochs)
    warmup = recipe_warmup_steps
    if epochs == 1:
        share = steps / (recipe_epochs * steps_per_epoch)
        warmup = max(1, round(recipe_warmup_steps * share)) if recipe_warmup_steps else 0
    expected = (
        epochs * (steps * step_seconds + epoch_overhead_seconds)
        + len(planned_validations) * validation_seconds
    )
    return Plan(
        epochs=epochs,
        steps_per_epoch=steps,
        warmup_steps=warmup,
        validation_epochs=planned_validations,
        recipe_epochs=recipe_epochs,
        recipe_steps_per_epoch=steps_per_epoch,
        step_seconds=float(step_seconds),
        validation_seconds=float(validation_seconds),
        epoch_overhead_seconds=float(epoch_overhead_seconds),
        expected_seconds=float(expected),
        budget_seconds=float(budget_seconds),
        machine=machine,
    )


def replan(
    plan,
    seconds_left,
    step_seconds,
    epoch_overhead_seconds,
    val_every_epochs,
    done=1,
    hold=False,
    limit_seconds_left=None,
):
    """`plan` revised after its first `done` epochs ran at `step_seconds` per step and
    `epoch_overhead_seconds` per epoch end, with `seconds_left` of the budget: the epochs that
    fit (at least one more, at most the recipe's), the same epoch length and warm-up, the
    validation points scaled to the new length (those already passed kept), and
    `replanned_after_epoch=done`. Only a plan of several epochs is revised.

    `hold=True` (a plan kept from an earlier run) keeps the plan's epochs while they still fit
    before the run's hard time limit (`limit_seconds_left`; the budget's `seconds_left` when
    there is none), without the safety share: runs on one machine then train the same steps
    on the same schedule (with `train.deterministic`, the same model), although a run that
    starts from a kept plan saves the probe's time and could fit a little more, and a shared
    machine that is slower today by up to the gap between budget and limit keeps the plan
    (it overruns the budget, not the limit). Only a plan that would reach the limit is
    revised, to the budget."""
    if plan.epochs < 2 or not 1 <= done < plan.epochs:
        raise ValueError(
            f"replan: a plan of {plan.epochs} epoch(s) cannot be revised after {done}."
        )
    if not step_seconds > 0 or epoch_overhead_seconds < 0:
        raise ValueError(
            f"replan: step_seconds must be positive and epoch_overhead_seconds >= 0, got "
            f"{step_seconds}, {epoch_overhead_seconds}."
        )
    per_epoch = plan.steps_per_epoch * step_seconds + epoch_overhead_seconds
    later = [e for e in plan.validation_epochs if e > done]
    available = max(0.0, seconds_left) * SAFETY - len(later) * plan.validation_seconds
    epochs = done + math.floor(max(0.0, available) / per_epoch)
    epochs = max(done + 1, min(plan.recipe_epochs, epochs))
    if hold:
        rest = (plan.epochs - done) * per_epoch + len(later) * plan.validation_seconds
        if rest <= (seconds_left if limit_seconds_left is None else limit_seconds_left):
            epochs = plan.epochs
    points = _validation_points(plan.recipe_epochs, val_every_epochs, epochs)
    validations = tuple(
        sorted({e for e in plan.validation_epochs if e <= done} | {e for e in points if e > done})
    )
    expected = (epochs - done) * per_epoch + sum(e > done for e in validations) * (
        plan.validation_seconds
    )
    return dataclasses.replace(
        plan,
        epochs=epochs,
        validation_epochs=validations,
        step_seconds=float(step_seconds),
        epoch_overhead_seconds=float(epoch_overhead_seconds),
        expected_seconds=float(expected),
        budget_seconds=float(seconds_left),
        replanned_after_epoch=done,
    )


class EpochTimes(keras.callbacks.Callback):
    """Times one `fit` call for `replan`: `step_seconds` from the second training step to the
    last (the first traces the step function), `overhead_seconds` from the last step to the
    end of `fit` without the validation pass (the epoch end's checkpoints and logs). Call
    `finish()` when `fit` returns."""

    def __init__(self):
        super().__init__()
        self.ends, self.validation, self._test_start, self.finished = [], 0.0, None, None

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())

    def on_test_begin(self, logs=None):
        self._test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self.validation += time.perf_counter() - self._test_start

    def finish(self):
        self.finished = time.perf_counter()

    @property
    def step_seconds(self):
        if len(self.ends) < 2:
            raise ValueError("EpochTimes needs two training steps or more.")
        return (self.ends[-1] - self.ends[0]) / (len(self.ends) - 1)

    @property
    def overhead_seconds(self):
        return max(0.0, self.finished - self.ends[-1] - self.validation)


class _StepTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times, self._start = [], None

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_test_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)

    def on_test_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def _timed_median(times, skip):
    kept = times[skip:] or times[-1:]
    return statistics.median(kept)


def _state(model):
    """Every variable whose value training changes: weights, BatchNorm statistics, the
    dropout layers' seed states, the optimizer's slots and step counter."""
    return list(model.variables) + list(model.optimizer.variables)


def measure(model, train_data, val_data, validation_batches, scratch_dir):
    """`(step_seconds, validation_seconds, epoch_overhead_seconds, trace_seconds)` for
    `model` (compiled, inside its strategy's scope) on this machine, with `model` and its
    optimizer left as they were. `validation_batches` is the number of batches of one
    validation pass; `trace_seconds` is what tracing the training and validation steps cost
    over a traced step (paid again when the model is compiled anew)."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    saved = [read_variable(v) for v in _state(model)]
    try:
        timer = _StepTimes()
        model.fit(
            train_data,
            epochs=1,
            steps_per_epoch=PROBE_WARMUP_STEPS + PROBE_STEPS,
            callbacks=[timer],
            shuffle=False,
            verbose=0,
        )
        step = _timed_median(timer.times, PROBE_WARMUP_STEPS)
        trace = max(0.0, timer.times[0] - step)
        validation = 0.0
        if val_data is not None:
            timer = _StepTimes()
            batches = min(validation_batches, 1 + PROBE_VALIDATION_BATCHES)
            model.evaluate(val_data, steps=batches, callbacks=[timer], verbose=0)
            batch = _timed_median(timer.times, 1)
            validation = batch * validation_batches
            trace += max(0.0, timer.times[0] - batch)
        overhead = _checkpoint_seconds(model, scratch_dir)
    finally:
        for variable, value in zip(_state(model), saved):
            variable.assign(value)
    return step, validation, overhead, trace


def _checkpoint_seconds(model, scratch_dir):
    """What an epoch end costs: the run writes a resume point and one or two checkpoints,
    about three times the model's weights."""
    path = temporary_path(os.path.join(scratch_dir, "plan-probe.weights.h5"))
    start = time.perf_counter()
    try:
        model.save_weights(path)
    finally:
        if os.path.exists(path):
            os.remove(path)
    return 3 * (time.perf_counter() - start)


def plan_cache_path(recipe, machine):
    """Where the plan of `recipe` (a JSON-able description of everything that sets the
    schedule and the speed: the resolved config without its run directory) on `machine` is
    kept."""
    key = json.dumps({"recipe": recipe, "machine": machine}, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return os.path.join(cache_home(), PLAN_CACHE_DIR, f"{digest}.json")


def cached_plan(path):
    """The plan kept at `path`, as the first plan of a new run (None when there is none; a
    damaged one is logged and ignored: the run measures instead)."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            plan = Plan.from_json(f.read())
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.warning("Ignoring the kept plan %s (%s); measuring this machine instead.", path, err)
        return None
    return dataclasses.replace(plan, replanned_after_epoch=0)


def keep_plan(plan, path):
    """Keeps `plan` at `path` for later runs (a failure to write is logged, not raised: the
    cache only saves a later run its probe)."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_text_atomic(plan.to_json() + "\n", path)
    except OSError as err:
        logger.warning("Could not keep the plan at %s (%s).", path, err)


def read_plan(backup_dir):
    """The plan a run was started with (None when it has none)."""
    path = os.path.join(backup_dir, PLAN_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return Plan.from_json(f.read())
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise EncTfError(
            f"{path} cannot be read ({err}); start the run afresh with --restart.", exit_code=1
        ) from err


def write_plan(plan, backup_dir):
    os.makedirs(backup_dir, exist_ok=True)
    write_text_atomic(plan.to_json() + "\n", os.path.join(backup_dir, PLAN_FILE))
