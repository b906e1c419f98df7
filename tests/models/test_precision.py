"""bfloat16 inference of float32-trained models: the same weights, close outputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from enc_tf.errors import ConfigError
from enc_tf.machine import BF16_CPU_FLAGS
from enc_tf.models.logits import logits_function, model_logits
from enc_tf.models.precision import resolve_precision, with_precision
from tests.support.tiny_models import tiny_segmenter


def test_auto_follows_the_hardware():
    with open("/proc/cpuinfo") as f:
        flags = next(line for line in f if line.startswith("flags")).split()
    fast = bool(tf.config.list_physical_devices("GPU")) or any(f in flags for f in BF16_CPU_FLAGS)
    assert resolve_precision("auto") == ("bfloat16" if fast else "float32")
    assert resolve_precision("float32") == "float32"
    assert resolve_precision("bfloat16") == "bfloat16"
    with pytest.raises(ConfigError, match="precision must be one of auto, float32, bfloat16"):
        resolve_precision("float16x")


def _computes_in(model):
    return {
        layer.compute_dtype
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if layer.weights
    }


def test_a_functional_model_in_bfloat16():
    model = tiny_segmenter(4, seed=1)
    assert with_precision(model, "float32") is model
    copy = with_precision(model, "bfloat16")
    assert _computes_in(copy) == {"bfloat16"} and _computes_in(model) == {"float32"}
    assert all(w.dtype == "float32" for w in copy.weights)
    for a, b in zip(model.weights, copy.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    images = np.random.default_rng(0).normal(size=(2, 24, 20, 3)).astype("float32")
    ours = logits_function(with_precision(model, "bfloat16"))(images)
    reference = model_logits(model, images)
    assert ours["seg"].dtype == tf.float32
    scale = float(np.abs(reference["seg"]).max())
    assert float(np.abs(ours["seg"] - reference["seg"]).max()) < 3e-2 * scale
    # bfloat16 really ran: the outputs are not float32-identical.
    assert float(np.abs(ours["seg"] - reference["seg"]).max()) > 0


@pytest.mark.slow
def test_encnet_in_bfloat16_agrees_with_float32():
    from enc_tf import build_encnet

    keras.utils.set_random_seed(0)
    model = build_encnet(6, backbone="resnet50v1c", output_stride=16, class_names=list("abcdef"))
    copy = with_precision(model, "bfloat16")
    assert type(copy) is type(model) and copy.class_names == model.class_names
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert "bfloat16" in _computes_in(copy)
    encoding = copy.get_layer("enc_head").enc_module.encoding
    assert encoding.codewords.dtype == "float32"  # the Encoding works in float32
    images = np.random.default_rng(1).normal(size=(1, 96, 96, 3)).astype("float32")
    ours, reference = model_logits(copy, images), model_logits(model, images)
    agreement = np.mean(ours["seg"].numpy().argmax(-1) == reference["seg"].numpy().argmax(-1))
    assert agreement > 0.95, agreement
