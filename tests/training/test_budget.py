"""Training to a time budget: the planner's arithmetic, the probe that leaves the model as it
was, and a short budgeted run that ends on its plan and resumes with the same plan."""

import csv
import json
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from enc_tf.errors import EncTfError
from enc_tf.training import load_config, train
from enc_tf.training.budget import (
    PLAN_FILE,
    SAFETY,
    Plan,
    measure,
    plan_schedule,
    read_plan,
    write_plan,
)
from tests.support.tiny_run import tiny_overrides

RECIPE = dict(recipe_epochs=14, steps_per_epoch=50, recipe_warmup_steps=25, val_every_epochs=7)


def test_a_budget_the_recipe_fits_in_keeps_the_recipe():
    plan = plan_schedule(1000.0, 1.0, 5.0, 1.0, **RECIPE)
    assert (plan.epochs, plan.steps_per_epoch, plan.warmup_steps) == (14, 50, 25)
    assert plan.validation_epochs == (7, 14)
    assert plan.total_steps == plan.recipe_steps == 700
    assert plan.expected_seconds == pytest.approx(14 * 51 + 2 * 5)


def test_a_short_budget_scales_the_whole_schedule_to_the_epochs_that_fit():
    # 400 s * SAFETY = 380; two validations cost 10, an epoch 51 -> 7 epochs.
    plan = plan_schedule(400.0, 1.0, 5.0, 1.0, **RECIPE)
    assert plan.epochs == 7 and plan.steps_per_epoch == 50
    assert plan.warmup_steps == round(25 * 7 / 14)  # the warm-up keeps its share
    assert plan.validation_epochs == (4, 7)  # in proportion, and the last epoch always
    assert plan.expected_seconds <= 400.0 * SAFETY
    # One epoch more would not have fitted.
    assert (plan.epochs + 1) * 51 + 2 * 5 > 400.0 * SAFETY


def test_a_budget_below_one_epoch_plans_one_shorter_epoch():
    plan = plan_schedule(20.0, 1.0, 2.0, 1.0, **RECIPE)
    # (20 s * SAFETY - two validations of 2 s - 1 s of epoch end) / 1 s per step
    assert plan.epochs == 1 and plan.steps_per_epoch == 14
    assert plan.validation_epochs == (1,) and plan.warmup_steps == 1
    spent = plan_schedule(-5.0, 1.0, 2.0, 1.0, **RECIPE)  # spent before training began
    assert (spent.epochs, spent.steps_per_epoch) == (1, 1)


def test_a_recipe_whose_last_epoch_is_not_a_validation_point_gets_one():
    plan = plan_schedule(10_000.0, 0.1, 1.0, 0.0, 10, 5, 0, 4)
    assert plan.validation_epochs == (4, 8, 10) and plan.warmup_steps == 0


@pytest.mark.parametrize(
    "args", [(100.0, 0.0, 1.0, 1.0, 14, 50, 0, 7), (100.0, 1.0, -1.0, 1.0, 14, 50, 0, 7)]
)
def test_impossible_measurements_are_refused(args):
    with pytest.raises(ValueError, match="plan_schedule"):
        plan_schedule(*args)


def test_a_plan_reads_back_and_a_damaged_one_is_a_one_line_error(tmp_path):
    plan = plan_schedule(400.0, 1.0, 5.0, 1.0, machine="test CPU", **RECIPE)
    write_plan(plan, str(tmp_path))
    assert read_plan(str(tmp_path)) == plan
    assert read_plan(str(tmp_path / "none")) is None
    (tmp_path / PLAN_FILE).write_text('{"epochs": 3')
    with pytest.raises(EncTfError, match=f"{PLAN_FILE} cannot be read.*--restart") as err:
        read_plan(str(tmp_path))
    assert "\n" not in str(err.value)


def test_the_probe_leaves_weights_optimizer_and_seeds_as_they_were(tmp_path):
    inputs = keras.Input((8,))
    x = keras.layers.Dense(16)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dropout(0.5, seed=1)(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    data = tf.data.Dataset.from_tensor_slices(
        (rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 3, 64))
    ).batch(8)
    model.optimizer.build(model.trainable_variables)
    before = [np.array(v.numpy()) for v in model.variables + model.optimizer.variables]
    step, validation, overhead, trace = measure(model, data.repeat(), data, 8, str(tmp_path))
    assert step > 0 and validation > 0 and overhead > 0 and trace >= 0
    after = [np.array(v.numpy()) for v in model.variables + model.optimizer.variables]
    assert len(before) == len(after)
    for was, now in zip(before, after):
        np.testing.assert_array_equal(was, now)
    assert list(tmp_path.iterdir()) == []  # the probe's checkpoint is gone


def _rows(run):
    with open(run / "log.csv") as f:
        return list(csv.DictReader(f))


def test_a_budgeted_run_ends_on_its_plan_and_resumes_with_it(tmp_path, caplog):
    run = tmp_path / "run"
    budget_minutes = 0.75  # room for start-up and tracing on a slow 2-core machine
    overrides = tiny_overrides(
        tmp_path,
        run,
        2,
        "model.backbone=mobilenetv3_small_minimalistic",
        "train.epochs=1000",  # far more than the budget allows
        "train.val_every_epochs=4",
        "optimizer.warmup_epochs=2",
        f"train.time_budget_minutes={budget_minutes}",
    )
    start = time.monotonic()
    with caplog.at_level("INFO", logger="enc_tf.training"):
        _, history = train(load_config(None, overrides))
    seconds = time.monotonic() - start
    plan = Plan.from_json((run / "backup" / PLAN_FILE).read_text())
    assert 1 <= plan.epochs < 1000 and plan.steps_per_epoch == 2
    assert plan.warmup_steps == round(4 * plan.epochs / 1000) or plan.warmup_steps == 1
    # It ran exactly the planned epochs, validated at the planned points, and the learning
    # rate decayed to zero on the last planned step: the schedule ended where the recipe's ends.
    assert len(history["loss"]) == plan.epochs
    rows = _rows(run)
    validated = [int(r["epoch"]) + 1 for r in rows if r.get("val_seg_mean_iou")]
    assert tuple(validated) == plan.validation_epochs
    assert history["learning_rate"][-1] == pytest.approx(0.0, abs=1e-9)
    assert f"Plan for a budget of {budget_minutes:g} min" in caplog.text
    assert seconds < budget_minutes * 60 + 30  # within the budget, give or take the noise
    # Started again, the run keeps its plan (no new measurement) and has nothing left to do.
    written = (run / "backup" / PLAN_FILE).stat().st_mtime_ns
    _, again = train(load_config(None, overrides))
    assert (run / "backup" / PLAN_FILE).stat().st_mtime_ns == written
    assert again.get("loss", []) == []
    assert json.loads((run / "backup" / PLAN_FILE).read_text())["epochs"] == plan.epochs
