"""Quantization-aware fine-tuning: int8 rounding simulated, then removed."""

import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from enc_tf import build_encnet
from enc_tf.contracts.labels import presence_targets
from enc_tf.layers import Encoding
from enc_tf.training.qat import (
    QATConfig,
    QuantizationSimulator,
    fake_quantize_weights,
    finetune,
)
from enc_tf.training.qat import main as qat_main
from tests.support.tiny_models import randomise_batch_norms
from tests.support.tiny_run import tiny_overrides, train_command


def test_weights_round_per_output_channel_with_a_straight_through_gradient():
    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(size=(3, 3, 4, 5)) * rng.uniform(0.01, 2, 5), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(kernel)
        rounded = fake_quantize_weights(kernel, (3,))
        total = tf.reduce_sum(rounded * 2.0)
    scale = np.abs(kernel.numpy()).max(axis=(0, 1, 2)) / 127
    levels = rounded.numpy() / scale
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)  # on each channel's grid
    assert np.abs(levels).max() <= 127.001
    np.testing.assert_allclose(np.abs(rounded.numpy()).max(axis=(0, 1, 2)), scale * 127, rtol=1e-6)
    assert 0 < np.abs(rounded.numpy() - kernel.numpy()).max() <= scale.max() / 2 + 1e-6
    np.testing.assert_array_equal(tape.gradient(total, kernel), np.full(kernel.shape, 2.0))


@pytest.fixture()
def mobilenet():
    model = build_encnet(4, backbone="mobilenetv3_small", output_stride=16, num_codes=4)
    randomise_batch_norms(model, seed=2)
    return model


def test_simulator_rounds_while_installed_and_leaves_no_trace(mobilenet):
    model = mobilenet
    x = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype("float32")
    exact = model(x, training=False)["seg"].numpy()
    weights = [w.numpy() for w in model.weights]
    simulator = QuantizationSimulator(model)
    patched = {id(layer) for layer, _ in simulator._patched}
    encodings = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, Encoding)
    ]
    assert encodings and not patched & {id(e) for e in encodings}  # the float-kept path
    simulator.observe([x])
    assert len(simulator.ranges) > 50
    assert all(r.low.numpy() <= 0 <= r.high.numpy() for r in simulator.ranges.values())
    assert any(r.high.numpy() > 0 for r in simulator.ranges.values())
    rounded = model(x, training=False)["seg"].numpy()
    difference = np.abs(rounded - exact).max() / np.abs(exact).max()
    assert 1e-4 < difference < 0.5, difference  # int8 rounding: visible, not destructive
    simulator.remove()
    np.testing.assert_array_equal(model(x, training=False)["seg"].numpy(), exact)
    for before, after in zip(weights, model.weights):
        np.testing.assert_array_equal(before, after.numpy())


def _data(num_classes=4, size=64):
    rng = np.random.default_rng(3)
    images = rng.normal(size=(4, size, size, 3)).astype("float32")
    labels = (images[..., 0] > 0).astype("int32") + 2 * (images[..., 1] > 0)
    targets = {
        "seg": labels,
        "aux": labels,
        "se": np.asarray(presence_targets(labels, num_classes)),
    }
    return tf.data.Dataset.from_tensor_slices((images, targets)).batch(2).repeat()


def test_the_rounded_kernel_is_the_folded_kernel_tflite_holds(mobilenet):
    """conv -> BatchNorm under the simulator computes conv(x, round(folded kernel)) + shift."""
    backbone = mobilenet.get_layer("backbone")
    conv, norm = backbone.get_layer("conv_1"), backbone.get_layer("conv_1_bn")
    simulator = QuantizationSimulator(mobilenet)
    simulator.observing = False
    x = np.random.default_rng(2).normal(size=(1, 4, 4, conv.kernel.shape[2])).astype("float32")
    scale = (norm.gamma / np.sqrt(norm.moving_variance + norm.epsilon)).numpy()
    shift = norm.beta.numpy() - norm.moving_mean.numpy() * scale
    ours = conv(x).numpy() * scale + shift  # the BatchNorm's inference formula
    folded = fake_quantize_weights(conv.kernel.numpy() * scale, (3,)).numpy()
    expected = np.einsum("bhwi,io->bhwo", x, folded[0, 0]) + shift
    np.testing.assert_allclose(ours, expected, atol=1e-4 * np.abs(expected).max())
    simulator.remove()


def test_finetune_returns_the_same_model_with_adapted_kernels(mobilenet):
    config = QATConfig(epochs=1, steps_per_epoch=2, observe_batches=1)
    statistics = mobilenet.get_layer("backbone").get_layer("conv_bn").moving_mean.numpy()
    tuned = finetune(mobilenet, _data(), config)
    layers = list(tuned._flatten_layers(include_self=False, recursive=True))
    assert not any("call" in x.__dict__ or "convolution_op" in x.__dict__ for x in layers)
    norm = tuned.get_layer("backbone").get_layer("conv_bn")
    assert norm.trainable and not norm.folded  # a normal model again
    np.testing.assert_array_equal(norm.moving_mean.numpy(), statistics)  # frozen statistics
    before = mobilenet.get_layer("backbone").get_layer("conv").kernel.numpy()
    after = tuned.get_layer("backbone").get_layer("conv").kernel.numpy()
    assert 0 < np.abs(after - before).max() < 0.5 * np.abs(before).max()
    outputs = tuned(np.zeros((1, 64, 64, 3), "float32"), training=False)
    assert np.isfinite(outputs["seg"].numpy()).all()


def test_command_line_fine_tunes_a_run_into_a_new_run(tmp_path, capfd):
    run = str(tmp_path / "run")
    overrides = tiny_overrides(
        tmp_path, run, 2, "train.epochs=1", "model.backbone=mobilenetv3_small"
    )
    subprocess.run(train_command(overrides), check=True, capture_output=True)
    out = str(tmp_path / "qat")
    assert qat_main([run, "--out", out, "--epochs", "1", "--steps-per-epoch", "2"]) == 0
    assert sorted(os.listdir(out)) == ["config.yaml", "model.keras"]
    assert "enc-export" in capfd.readouterr().out
    from enc_tf.artifacts import load_keras_model

    tuned = load_keras_model(out, fold=False).keras_model
    assert not tuned.get_layer("backbone").get_layer("conv_bn").folded
    # A second fine-tuning into the same directory, or into the run itself, is refused.
    assert qat_main([run, "--out", out]) != 0
    assert qat_main([run, "--out", run]) != 0
    assert qat_main([run, "--out", str(tmp_path / "other"), "--epochs", "0"]) != 0
    errors = capfd.readouterr().err
    assert "already holds a model" in errors and "--epochs must be >= 1, got 0." in errors
    assert not os.path.exists(tmp_path / "other")  # nothing written for a refused call
