import keras
import numpy as np

from enc_tf.layers import HardSwish, hard_swish
from tests.support.layer_test import run_layer_test


def test_hard_swish_is_keras_hard_swish():
    x = np.linspace(-6, 6, 1201).astype("float32")
    expected = x * np.clip(x + 3.0, 0.0, 6.0) / 6.0  # MobileNetV3's definition, in NumPy
    np.testing.assert_allclose(hard_swish(x), expected, atol=1e-6)
    np.testing.assert_allclose(keras.activations.hard_swish(x), expected, atol=1e-6)


def test_gradient_matches_the_definition():
    import tensorflow as tf

    x = tf.constant(np.array([-4.0, -2.0, 0.0, 1.5, 4.0], "float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(hard_swish(x))
    expected = np.where(x < -3, 0.0, np.where(x > 3, 1.0, (2 * x.numpy() + 3) / 6))
    np.testing.assert_allclose(tape.gradient(y, x), expected, atol=1e-6)


def test_layer_contract(tmp_path):
    run_layer_test(HardSwish, {}, (2, 3, 4, 5), (2, 3, 4, 5), 0, 0, tmp_path)
