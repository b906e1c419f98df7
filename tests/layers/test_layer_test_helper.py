"""The layer-contract helper itself: it passes a correct layer and fails each broken one."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from tests.support.layer_test import run_layer_test

register = keras.saving.register_keras_serializable(package="enc_tf_tests")


@register
class PixelDense(keras.layers.Layer):
    """A correct layer: `(B, H, W, C) -> (B, H, W, units)`, `x @ kernel + bias + offset`."""

    def __init__(self, units, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.offset = offset

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs):
        return ops.matmul(inputs, self.kernel) + self.bias + self.offset

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "offset": self.offset}


# Broken variants, one defect each, in the order the helper checks.


@register
class BuildsSublayerInCall(PixelDense):
    def __init__(self, units, offset=0.0, **kwargs):
        super().__init__(units, offset, **kwargs)
        self.dense = keras.layers.Dense(units, dtype=self.dtype_policy)

    def build(self, input_shape):
        pass

    def call(self, inputs):
        return self.dense(inputs) + self.offset


@register
class HalfBuilt(PixelDense):
    def __init__(self, units, offset=0.0, **kwargs):
        super().__init__(units, offset, **kwargs)
        self.dense = keras.layers.Dense(units, dtype=self.dtype_policy)

    def call(self, inputs):
        return super().call(inputs) + self.dense(inputs)


@register
class DropsRows(PixelDense):
    def call(self, inputs):
        return super().call(inputs)[:, ::2]


@register
class WrongOutputShape(PixelDense):
    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units + 1)


@register
class WrongOutputSpec(PixelDense):
    def compute_output_spec(self, inputs):
        return keras.KerasTensor((*inputs.shape[:-1], self.units + 1), dtype=self.compute_dtype)


@register
class LosesStaticChannels(PixelDense):
    def call(self, inputs):
        y = super().call(inputs)
        return tf.reshape(y, tf.concat([tf.shape(y)[:-1], [-1]], 0))


@register
class LosesChannelsEverywhere(LosesStaticChannels):
    compute_output_shape = keras.layers.Layer.compute_output_shape  # Keras traces call() instead


@register
class DropsArgument(PixelDense):
    def get_config(self):
        config = super().get_config()
        del config["offset"]
        return config


@register
class RecordsDefaultValue(PixelDense):
    def get_config(self):
        return {**super().get_config(), "offset": 0.0}


@register
class FromConfigDropsKey(PixelDense):
    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("offset")
        return cls(**config)


@register
class StateOutsideConfig(PixelDense):
    def __init__(self, units, offset=0.0, **kwargs):
        super().__init__(units, offset, **kwargs)
        self.shift = float(
            np.random.default_rng().uniform(1, 2)
        )  # neither a weight nor in the config

    def call(self, inputs):
        return super().call(inputs) + self.shift


class Unregistered(PixelDense):
    pass


@register
class KeepsTupleArgument(PixelDense):
    def __init__(self, units, offset=0.0, pad=(0, 0), **kwargs):
        super().__init__(units, offset, **kwargs)
        self.pad = pad  # JSON gives a list back: the reloaded config differs

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@register
class ForgetsBiasInFile(PixelDense):
    def save_own_variables(self, store):
        store["0"] = np.asarray(self.kernel)

    def load_own_variables(self, store):
        self.kernel.assign(store["0"])


@register
class InfiniteInTraining(PixelDense):
    def call(self, inputs, training=None):
        y = super().call(inputs)
        return y + ops.log(ops.zeros_like(y)) if training else y


@register
class BlocksGradient(PixelDense):
    def call(self, inputs):
        return ops.matmul(inputs, ops.stop_gradient(self.kernel)) + self.bias + self.offset


@register
class BlocksInputGradient(PixelDense):
    def call(self, inputs):
        return super().call(ops.stop_gradient(inputs))


@register
class FrozenStatistics(PixelDense):
    def __init__(self, units, offset=0.0, **kwargs):
        super().__init__(units, offset, **kwargs)
        self.bn = keras.layers.BatchNormalization(dtype=self.dtype_policy)

    def build(self, input_shape):
        super().build(input_shape)
        self.bn.build(self.compute_output_shape(input_shape))

    def call(self, inputs):
        return self.bn(super().call(inputs), training=False)


@register
class Float16Variables(PixelDense):
    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), dtype=self.compute_dtype)
        self.bias = self.add_weight(
            shape=(self.units,), initializer="zeros", dtype=self.compute_dtype
        )


@register
class Float32Output(PixelDense):
    def call(self, inputs):
        return ops.cast(super().call(inputs), "float32")


@register
class SublayerWithoutPolicy(PixelDense):
    def __init__(self, units, offset=0.0, **kwargs):
        super().__init__(units, offset, **kwargs)
        self.dense = keras.layers.Dense(units)  # the layer's dtype is not passed on

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, inputs):
        return self.dense(inputs) + self.offset


@register
class OverflowsFloat16(PixelDense):
    def call(self, inputs):
        return super().call(inputs) * 1e5


@register
class LosesPrecision(PixelDense):
    def call(self, inputs):
        return (super().call(inputs) + 1000.0) - 1000.0


@register
class RefusesFloat16(PixelDense):
    def build(self, input_shape):
        if self.compute_dtype == "float16":
            raise ValueError("no float16 here")
        super().build(input_shape)


def _run(cls, tmp_path):
    run_layer_test(cls, {"units": 3, "offset": 0.5}, (2, 3, 4, 5), (2, 3, 4, 3), 2, 0, tmp_path)


def test_passes_a_correct_layer(tmp_path):
    _run(PixelDense, tmp_path)


BROKEN = [
    (BuildsSublayerInCall, r"build: built=True with 0 trainable"),
    (
        HalfBuilt,
        r"build: calling the built layer created weights \['half_built/dense.*/bias', .*/kernel'\]",
    ),
    (DropsRows, r"eager call: output shapes \[\(2, 2, 4, 3\)\], expected \[\(2, 3, 4, 3\)\]"),
    (WrongOutputShape, r"compute_output_shape: output shapes \[\(2, 3, 4, 4\)\]"),
    (WrongOutputSpec, r"keras.Input call: output shapes \[\(2, 3, 4, 4\)\]"),
    (
        LosesChannelsEverywhere,
        r"unknown axes: shapes \[\(None, None, None, None\)\] lose the channel axis",
    ),
    (
        LosesStaticChannels,
        r"\[\(None, None, None, 3\)\], the graph of call\(\) gives \[\(None, None, None, None",
    ),
    (DropsArgument, r"get_config: lacks constructor argument\(s\) \['offset'\]"),
    (RecordsDefaultValue, r"get_config: offset=0.0 but the layer was made with offset=0.5"),
    (
        FromConfigDropsKey,
        r"from_config: rebuilt config .*'offset': 0.0.* differs from .*'offset': 0.5",
    ),
    (StateOutsideConfig, r"from_config: .* computes other outputs"),
    (Unregistered, r"deserialize_keras_object: .*register_keras_serializable"),
    (
        KeepsTupleArgument,
        r"deserialize_keras_object: gave KeepsTupleArgument with .*'pad': \[0, 0\]",
    ),
    (ForgetsBiasInFile, r"\.keras round trip: .* computes other outputs"),
    (InfiniteInTraining, r"training step: non-finite loss"),
    (
        BlocksGradient,
        r"training step: one SGD step left trainable weights \['.*kernel'\] unchanged",
    ),
    (BlocksInputGradient, r"training step: no finite, non-zero gradient reaches the input"),
    (Float16Variables, r"mixed_float16 \(global policy\): variables .* are not float32"),
    (
        Float32Output,
        r"mixed_float16 \(global policy\): eager \+ symbolic output dtypes \['float32'",
    ),
    (SublayerWithoutPolicy, r"mixed_float16 \(dtype argument\): .*dtypes \['float32'"),
    (OverflowsFloat16, r"mixed_float16 \(global policy\): non-finite outputs"),
    (
        LosesPrecision,
        r"mixed_float16 \(global policy\): outputs differ from float32 by .* of their range",
    ),
]


@pytest.mark.parametrize("cls,message", BROKEN, ids=[cls.__name__ for cls, _ in BROKEN])
@pytest.mark.filterwarnings("ignore:Gradients do not exist")
def test_fails_a_broken_layer(cls, message, tmp_path):
    with pytest.raises(AssertionError, match=message):
        _run(cls, tmp_path)


def test_restores_the_global_dtype_policy_when_the_layer_raises(tmp_path):
    with pytest.raises(ValueError, match="no float16 here"):
        _run(RefusesFloat16, tmp_path)
    assert keras.config.dtype_policy().name == "float32"


def test_fails_batch_norm_statistics_frozen_in_training(tmp_path):
    with pytest.raises(AssertionError, match=r"left non-trainable weights .*moving_mean"):
        run_layer_test(FrozenStatistics, {"units": 3}, (2, 3, 4, 5), (2, 3, 4, 3), 4, 2, tmp_path)


def test_fails_wrong_weight_counts(tmp_path):
    with pytest.raises(
        AssertionError, match="build: .* 2 trainable and 0 non-trainable weights, expected 2 and 1"
    ):
        run_layer_test(PixelDense, {"units": 3}, (2, 3, 4, 5), (2, 3, 4, 3), 2, 1, tmp_path)
