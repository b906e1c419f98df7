import keras
import numpy as np
import pytest
import tensorflow as tf

from enc_tf.optimizers import EncNetSGD, PolyDecay, RetargetedPolyDecay


def test_poly_schedule_with_warmup():
    schedule = PolyDecay(0.01, total_steps=100, power=0.9)
    assert float(schedule(0)) == pytest.approx(0.01)
    assert float(schedule(50)) == pytest.approx(0.01 * 0.5**0.9, rel=1e-6)
    assert float(schedule(100)) == 0.0 and float(schedule(150)) == 0.0
    warm = PolyDecay(0.01, total_steps=100, warmup_steps=10)
    assert float(warm(0)) == pytest.approx(0.01 * 0.1)
    assert float(warm(20)) == pytest.approx(0.01 * 0.8**0.9, rel=1e-6)
    assert PolyDecay(**warm.get_config()).warmup_steps == 10
    with pytest.raises(ValueError, match="total_steps"):
        PolyDecay(0.01, 0)


def _reference(weights, grads, lrs, multiplier, momentum=0.9, l2=1e-4):
    """torch.optim.SGD(momentum, weight_decay) in float64."""
    w, buf = weights.astype(np.float64), np.zeros_like(weights, np.float64)
    for g, lr in zip(grads, lrs):
        d = g + l2 * w
        buf = momentum * buf + d
        w = w - lr * multiplier * buf
    return w


def _values(schedule, steps):
    return np.array([float(schedule(t)) for t in steps], np.float64)


def test_a_retargeted_schedule_keeps_its_start_and_decays_to_the_new_end():
    base, power, warmup, steps = 0.01, 0.9, 25, np.arange(0, 760, 7)
    plain = _values(PolyDecay(base, 700, power, warmup), steps)
    schedule = RetargetedPolyDecay(base, 700, power, warmup)
    np.testing.assert_array_equal(_values(schedule, steps), plain)  # not retargeted: the same
    # A traced step follows a retarget without being traced again (the step is a variable).
    traced = tf.function(lambda t: schedule(t))
    assert float(traced(300)) == pytest.approx(float(PolyDecay(base, 700, power, warmup)(300)))
    schedule.retarget(50, 500)
    t = np.arange(0, 520, dtype=np.float64)
    recipe = base * (1 - np.minimum(t, 50) / 700) ** power
    want = recipe * (1 - np.clip((t - 50) / 450, 0, 1)) ** power * np.minimum((t + 1) / warmup, 1)
    np.testing.assert_allclose(_values(schedule, t), want, rtol=1e-5, atol=1e-9)
    assert float(traced(300)) == pytest.approx(want[300], rel=1e-5)
    assert float(schedule(499)) > 0 and float(schedule(500)) == 0.0 == float(schedule(900))
    # The configuration carries the retarget; the own end is the plain schedule, exactly.
    again = RetargetedPolyDecay.from_config(schedule.get_config())
    np.testing.assert_array_equal(_values(again, t), _values(schedule, t))
    schedule.retarget(50, 700)
    np.testing.assert_array_equal(_values(schedule, steps), plain)
    for bad in [(0, 0), (60, 50), (701, 900), (-1, 100)]:
        with pytest.raises(ValueError, match="retarget needs"):
            schedule.retarget(*bad)


def test_matches_torch_sgd_with_coupled_l2_and_head_multiplier():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, name="body")(inputs)
    out = keras.layers.Dense(2, name="enc_head")(hidden)
    model = keras.Model(inputs, out)
    schedule = PolyDecay(0.1, total_steps=5)
    optimizer = EncNetSGD(schedule, lr_multipliers={"enc_head/": 10.0})
    rng = np.random.default_rng(0)
    grads = [
        [rng.normal(size=v.shape).astype("float32") for v in model.trainable_variables]
        for _ in range(3)
    ]
    start = [v.numpy().copy() for v in model.trainable_variables]
    for step in grads:
        optimizer.apply_gradients(zip(step, model.trainable_variables))
    lrs = [float(schedule(t)) for t in range(3)]
    for i, variable in enumerate(model.trainable_variables):
        multiplier = 10.0 if variable.path.startswith("enc_head/") else 1.0
        expected = _reference(start[i], [g[i] for g in grads], lrs, multiplier)
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-7)
    assert optimizer.multiplier(model.get_layer("body").kernel) == 1.0


def test_decoupled_option_and_config():
    with pytest.raises(ValueError, match="either coupled"):
        EncNetSGD(0.1, l2=1e-4, decoupled_weight_decay=1e-4)
    optimizer = EncNetSGD(0.1, l2=0.0, decoupled_weight_decay=1e-4)
    config = optimizer.get_config()
    assert config["decoupled_weight_decay"] == 1e-4 and config["l2"] == 0.0
    assert EncNetSGD.from_config(config).lr_multipliers == optimizer.lr_multipliers
