"""Training to a time budget: the planner's arithmetic, the probe that leaves the model as it
was, and a short budgeted run that ends on its plan and resumes with the same plan."""

import csv
import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from enc_tf.config import load_config
from enc_tf.errors import EncTfError
from enc_tf.training import train
from enc_tf.training.budget import (
    PLAN_FILE,
    SAFETY,
    EpochTimes,
    Plan,
    cached_plan,
    keep_plan,
    measure,
    plan_cache_path,
    plan_schedule,
    read_plan,
    replan,
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
    assert plan.warmup_steps == 25  # the first epoch is the recipe's, warm-up included
    assert plan.decay_start_step == 50
    assert plan.validation_epochs == (4, 7)  # in proportion, and the last epoch always
    assert plan.expected_seconds <= 400.0 * SAFETY
    # One epoch more would not have fitted.
    assert (plan.epochs + 1) * 51 + 2 * 5 > 400.0 * SAFETY


def test_a_budget_below_one_epoch_plans_one_shorter_epoch():
    plan = plan_schedule(20.0, 1.0, 2.0, 1.0, **RECIPE)
    # (20 s * SAFETY - two validations of 2 s - 1 s of epoch end) / 1 s per step
    assert plan.epochs == 1 and plan.steps_per_epoch == 14
    assert plan.validation_epochs == (1,) and plan.warmup_steps == 1  # its share of 25
    assert plan.decay_start_step is None  # one epoch: its own schedule from the start
    spent = plan_schedule(-5.0, 1.0, 2.0, 1.0, **RECIPE)  # spent before training began
    assert (spent.epochs, spent.steps_per_epoch) == (1, 1)


def test_a_recipe_whose_last_epoch_is_not_a_validation_point_gets_one():
    plan = plan_schedule(10_000.0, 0.1, 1.0, 0.0, 10, 5, 0, 4)
    assert plan.validation_epochs == (4, 8, 10) and plan.warmup_steps == 0


def test_the_first_epoch_revises_the_plan_to_the_budget_left():
    plan = plan_schedule(400.0, 1.0, 5.0, 1.0, **RECIPE)  # 7 epochs, validations (4, 7)
    # The machine turned out twice as fast: 400 s left, epochs of 26 s -> all 13 that remain.
    faster = replan(plan, 400.0, 0.5, 1.0, 7)
    assert (faster.epochs, faster.validation_epochs) == (14, (7, 14))
    assert faster.replanned_after_epoch == 1 and faster.steps_per_epoch == 50
    assert faster.warmup_steps == plan.warmup_steps and faster.step_seconds == 0.5
    # 330 s * SAFETY - 2 validations of 5 s = 303.5 s, epochs of 26 s -> 11 more, 12 in all.
    assert replan(plan, 330.0, 0.5, 1.0, 7).epochs == 12
    middle = replan(plan, 200.0, 0.5, 1.0, 7)
    assert middle.epochs == 1 + math.floor((200.0 * SAFETY - 10.0) / 26.0) == 7
    assert middle.validation_epochs == (4, 7)
    assert middle.expected_seconds == pytest.approx(6 * 26.0 + 2 * 5.0)
    # Slower than probed: fewer epochs, but never none after the first.
    slower = replan(plan, 300.0, 2.0, 1.0, 7)
    assert slower.epochs == 1 + math.floor((300.0 * SAFETY - 10.0) / 101.0) == 3
    assert slower.validation_epochs == (2, 3)
    assert replan(plan, -10.0, 2.0, 1.0, 7).epochs == 2
    # A validation the first epoch already ran is kept.
    short = plan_schedule(130.0, 1.0, 5.0, 1.0, **RECIPE)
    assert (short.epochs, short.validation_epochs) == (2, (1, 2))
    assert 1 in replan(short, 1000.0, 1.0, 1.0, 1).validation_epochs
    # A read-back revised plan is revised no more, and one epoch is not revised at all.
    assert Plan.from_json(faster.to_json()) == faster
    with pytest.raises(ValueError, match="replan"):
        replan(plan_schedule(20.0, 1.0, 2.0, 1.0, **RECIPE), 100.0, 1.0, 1.0, 7)
    with pytest.raises(ValueError, match="replan"):
        replan(plan, 100.0, 0.0, 1.0, 7)


def test_a_kept_plan_holds_while_it_fits_and_shrinks_when_it_no_longer_does():
    kept = replan(plan_schedule(400.0, 1.0, 5.0, 1.0, **RECIPE), 330.0, 1.0, 1.0, 7)
    assert kept.epochs == 6  # (330 * SAFETY - 10) / 51 = 5.9 -> 5 more
    # The same machine slower or faster: the kept 6 epochs (5 more: 5 x 62 s + 10 s of
    # validation at 1.22 s/step) still fit 330 s.
    assert replan(kept, 330.0, 1.22, 1.0, 7, hold=True).epochs == 6
    assert replan(kept, 330.0, 1.22, 1.0, 7).epochs == 5  # without holding: one fewer
    assert replan(kept, 330.0, 0.85, 1.0, 7).epochs == 7
    assert replan(kept, 330.0, 0.85, 1.0, 7, hold=True).epochs == 6
    # Much faster (it fits 9 epochs): still the kept plan, so that runs repeat each other.
    assert replan(kept, 330.0, 0.7, 1.0, 7).epochs == 9
    assert replan(kept, 330.0, 0.7, 1.0, 7, hold=True).epochs == 6
    # No longer fitting: a plan of its own.
    assert replan(kept, 330.0, 1.5, 1.0, 7, hold=True).epochs == 4
    # With a hard limit beyond the budget, the kept plan holds until it would reach the limit
    # (5 x 76 s + 10 s = 390 s at 1.5 s/step: within 400 s, not within 380 s); a plan that no
    # longer fits the limit is revised to the budget, as above.
    assert replan(kept, 330.0, 1.5, 1.0, 7, hold=True, limit_seconds_left=400.0).epochs == 6
    assert replan(kept, 330.0, 1.5, 1.0, 7, hold=True, limit_seconds_left=380.0).epochs == 4
    assert replan(kept, 330.0, 1.5, 1.0, 7, limit_seconds_left=400.0).epochs == 4  # not held


def test_plans_are_kept_per_recipe_and_machine_and_a_damaged_one_is_ignored(tmp_path, caplog):
    monkey_home = tmp_path / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENC_TF_HOME", str(monkey_home))
        path = plan_cache_path({"train": {"epochs": 14}}, "CPU A")
        assert path.startswith(str(monkey_home / "plans"))
        assert plan_cache_path({"train": {"epochs": 14}}, "CPU A") == path
        assert plan_cache_path({"train": {"epochs": 13}}, "CPU A") != path
        assert plan_cache_path({"train": {"epochs": 14}}, "CPU B") != path
    assert cached_plan(path) is None
    plan = replan(plan_schedule(400.0, 1.0, 5.0, 1.0, **RECIPE), 330.0, 1.0, 1.0, 7)
    keep_plan(plan, path)
    again = cached_plan(path)
    assert again == dataclasses.replace(plan, replanned_after_epoch=0)  # a first plan again
    with open(path, "w") as f:
        f.write("{not json")
    with caplog.at_level("WARNING"):
        assert cached_plan(path) is None
    assert path in caplog.text and "measuring" in caplog.text
    # The cache only saves a probe: a cache that cannot be written is a warning.
    blocked = tmp_path / "file"
    blocked.write_text("")
    with caplog.at_level("WARNING"):
        keep_plan(plan, str(blocked / "plans" / "x.json"))
    assert "Could not keep the plan" in caplog.text


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


class _SlowSteps(EpochTimes):
    """The first epoch's times as a machine of 15 s a step would give them."""

    step_seconds = property(lambda self: 15.0)
    overhead_seconds = property(lambda self: 0.5)


def test_a_budgeted_run_ends_on_its_plan_and_resumes_with_it(tmp_path, caplog, monkeypatch):
    # The machine is seen through fixed measurements (15 s a step: epochs of 30.5 s in a budget
    # of 3 min), so the plan does not depend on how busy the test machine is; the run itself is
    # real and takes seconds.
    import enc_tf.training.trainer as trainer

    monkeypatch.setattr(trainer, "measure", lambda *args: (15.0, 0.0, 0.5, 0.0))
    monkeypatch.setattr(trainer, "EpochTimes", _SlowSteps)
    monkeypatch.setenv("ENC_TF_HOME", str(tmp_path / "home"))  # no plan kept from before
    run = tmp_path / "run"
    overrides = tiny_overrides(
        tmp_path,
        run,
        2,
        "train.epochs=1000",  # far more than the budget allows
        "train.val_every_epochs=4",
        "optimizer.warmup_epochs=2",
        "train.time_budget_minutes=3",
    )
    with caplog.at_level("INFO", logger="enc_tf.training"):
        _, history = train(load_config(None, overrides))
    first = next(r.message for r in caplog.records if r.message.startswith("Plan for a budget"))
    planned = int(first.split(": ")[1].split(" epochs")[0])
    # (180 s - start-up) * SAFETY / 30.5 s
    assert 3 <= planned <= math.floor(180 * SAFETY / 30.5) and "measured 15.00 s/step" in first
    plan = Plan.from_json((run / "backup" / PLAN_FILE).read_text())
    assert plan.replanned_after_epoch == 1 and "Plan after epoch 1" in caplog.text
    assert abs(plan.epochs - planned) <= 1 and plan.steps_per_epoch == 2
    assert plan.warmup_steps == 4  # the recipe's: 2 epochs of 2 steps
    # It ran exactly the planned epochs, validated at the planned points, and the learning
    # rate decayed to zero on the last planned step: the schedule ended where the recipe's ends.
    assert len(history["loss"]) == plan.epochs
    rows = _rows(run)
    validated = [int(r["epoch"]) + 1 for r in rows if r.get("val_seg_mean_iou")]
    assert tuple(validated) == plan.validation_epochs
    assert history["learning_rate"][-1] == pytest.approx(0.0, abs=1e-9)
    assert min(history["learning_rate"][:-1]) > 0
    # Started again, the run keeps its plan (no new measurement) and has nothing left to do.
    written = (run / "backup" / PLAN_FILE).stat().st_mtime_ns
    _, again = train(load_config(None, overrides))
    assert (run / "backup" / PLAN_FILE).stat().st_mtime_ns == written
    assert again.get("loss", []) == []
    # A new run of the recipe on this machine starts from the plan kept in the cache, without a
    # probe, and holds it: the same machine, the same plan.
    monkeypatch.setattr(trainer, "measure", lambda *args: pytest.fail("probed again"))
    caplog.clear()
    with caplog.at_level("INFO", logger="enc_tf.training"):
        _, third = train(load_config(None, overrides), restart=True)
    first = next(r.message for r in caplog.records if r.message.startswith("Plan for a budget"))
    assert "kept from an earlier run of this recipe" in first
    assert read_plan(str(run / "backup")).epochs == plan.epochs == len(third["loss"])


def test_two_runs_that_end_on_the_same_plan_train_the_same_model(tmp_path, monkeypatch):
    # Two runs start from different plans (2 and 6 epochs) and are both revised to 3 after the
    # first epoch: the first epoch follows the recipe's schedule whatever the plan, so both
    # learn at the same rates throughout and end with the same weights.
    import enc_tf.training.trainer as trainer

    revised = []

    def to_three_epochs(plan, *args, **kwargs):
        revised.append(plan.epochs)
        return dataclasses.replace(plan, epochs=3, validation_epochs=(3,), replanned_after_epoch=1)

    monkeypatch.setattr(trainer, "replan", to_three_epochs)
    recipe = plan_schedule(1000.0, 0.01, 0.0, 0.0, 6, 2, 2, 6)
    weights, rates = [], []
    for epochs in (2, 6):
        run = tmp_path / f"run{epochs}"
        write_plan(dataclasses.replace(recipe, epochs=epochs), str(run / "backup"))
        overrides = tiny_overrides(
            tmp_path, run, 2, "train.epochs=6", "train.time_budget_minutes=5"
        )
        model, history = train(load_config(None, overrides))
        assert len(history["loss"]) == 3 and read_plan(str(run / "backup")).epochs == 3
        weights.append([np.array(w) for w in model.weights])
        rates.append(history["learning_rate"])
    assert revised == [2, 6]
    assert rates[0] == rates[1] and rates[0][-1] == pytest.approx(0.0, abs=1e-9)
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
